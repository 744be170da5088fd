"""Worker-plane settings (leases, reaper, retries, long-poll caps), a mixin of `Settings`.

Environment variable names stay flat (`LEASE_TIMEOUT_S`, `MAX_ATTEMPTS`, ...). Per-platform
lease timeouts come as a JSON object, e.g. `LEASE_TIMEOUT_OVERRIDES_S='{"slow_county": 900}'`.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings

PositiveSeconds = Annotated[float, Field(gt=0, le=86_400)]


class WorkerPlaneSettings(BaseSettings):
    """Timings and limits of the leased-work protocol on the internal ports."""

    lease_timeout_s: PositiveSeconds = 300.0
    lease_timeout_overrides_s: dict[str, PositiveSeconds] = Field(default_factory=dict)
    reaper_interval_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 5
    retry_backoff_base_s: Annotated[float, Field(ge=0, le=86_400)] = 10.0
    retry_backoff_cap_s: Annotated[float, Field(ge=0, le=86_400)] = 900.0
    worker_expiry_s: PositiveSeconds = 120.0
    heartbeat_interval_s: PositiveSeconds = 30.0
    work_max_limit: Annotated[int, Field(ge=1, le=1000)] = 100
    work_max_wait_s: Annotated[float, Field(ge=0, le=30)] = 30.0
    # Bytes one lease answer may hold (estimated from payload and key sizes inside the
    # lease script); `limit` is a maximum the gateway lowers to stay within it, so a
    # client that never reads its answer pins at most this much. One task always goes
    # out, however large (payloads are capped at 64 KiB at enqueue).
    lease_max_batch_bytes: Annotated[int, Field(ge=1, le=67_108_864)] = 1_048_576
    enqueue_max_batch: Annotated[int, Field(ge=1, le=10_000)] = 1000
    results_max_batch: Annotated[int, Field(ge=1, le=10_000)] = 500
    result_extra_max_bytes: Annotated[int, Field(ge=0, le=1_048_576)] = 16_384
    # Verified tokens are cached in-process (revocation is broadcast through Redis and
    # clears every cache at once); entries older than this are re-read from PostgreSQL.
    worker_token_cache_s: Annotated[float, Field(ge=0, le=3600)] = 60.0
    # Test-only fault injection (`Settings` refuses it unless ENVIRONMENT=test):
    # `exit_after_commit` SIGKILLs the process right after a result batch is committed to
    # PostgreSQL and before its leases are released in Redis; `exit_mid_submit` SIGKILLs
    # it after a job's first chunk of items was attached to the queue, before the job is
    # queued (gateway/jobs/service.py).
    fault_inject: Literal["exit_after_commit", "exit_mid_submit"] | None = None

    @model_validator(mode="after")
    def _backoff_order(self) -> Self:
        if self.retry_backoff_cap_s < self.retry_backoff_base_s:
            raise ValueError("RETRY_BACKOFF_CAP_S must be >= RETRY_BACKOFF_BASE_S")
        return self

    def lease_timeout_for(self, platform: str) -> float:
        """The lease timeout of one platform (its override, else `LEASE_TIMEOUT_S`)."""
        return self.lease_timeout_overrides_s.get(platform, self.lease_timeout_s)

    def heartbeat_interval_for(self, platforms: list[str]) -> float:
        """How often a worker on these platforms should beat: at most a third of its
        shortest lease timeout, so two lost beats still do not lose a lease."""
        shortest = min((self.lease_timeout_for(p) for p in platforms), default=self.lease_timeout_s)
        return round(min(self.heartbeat_interval_s, shortest / 3), 3)
