"""Settings of client jobs (on-demand refresh), idempotency keys and signed downloads.

A mixin of `gateway.core.settings.Settings`; environment names stay flat
(`JOB_UPLOAD_MAX_BYTES`, `IDEMPOTENCY_TTL_S`, `DOWNLOAD_SIGNING_KEYS`, ...). What a
caller may spend (credits, items per job, open jobs, jobs per hour) is per tier and lives
in the tiers file (`core/settings/tiers.py`), not here.

`DOWNLOAD_SIGNING_KEYS` is a comma-separated list of `kid:secret` pairs, newest first:
the first key signs, every listed key verifies, so a key is rotated by putting a new one
in front and dropping the old one once the longest-lived URL it signed has expired.
Without it, development and test sign with a fixed development key (public, so never
trusted in production); in production downloads then answer 503 naming the setting, and
the gateway says so once at start.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode

from gateway.core.settings.signing_keys import check_signing_keys, parse_signing_keys

Seconds = Annotated[float, Field(gt=0, le=86_400 * 31)]


class JobSettings(BaseSettings):
    """Jobs, idempotency and downloads; see the "Client jobs" section of the README."""

    # Platforms jobs may name, per audience (JSON, e.g. '{"parcel": ["miami_dade"]}').
    # Besides these, a platform some worker serves or that the queue has seen is known.
    job_platforms: dict[str, list[str]] = Field(default_factory=dict)
    # Items of one `POST /v1/jobs` body or upload are attached to the queue in chunks of
    # this many (one Lua call each), so a big job never blocks Redis for long.
    job_attach_chunk: Annotated[int, Field(ge=1, le=10_000)] = 1000
    # A job whose creation did not finish within this (the gateway died mid-way) is rolled
    # back by any replica: its rows are deleted and the tasks only it waited for removed.
    job_submit_timeout_s: Seconds = 300.0
    # Background upkeep: roll back stuck submissions, re-publish events, reconcile items,
    # expire jobs past their deadline. Every replica runs it; rows are claimed with
    # FOR UPDATE SKIP LOCKED, so each job is handled by one replica at a time.
    job_upkeep_interval_s: Annotated[float, Field(gt=0, le=600)] = 1.0
    # First reconcile of a job after creation, then every JOB_RECONCILE_INTERVAL_S.
    job_reconcile_first_s: Seconds = 15.0
    job_reconcile_interval_s: Seconds = 300.0
    # Events kept in each job's Redis Stream (approximate trim); PostgreSQL keeps all.
    job_events_max: Annotated[int, Field(ge=10, le=1_000_000)] = 1000
    # The cross-job feed every live consumer reads (streams, webhooks), also trimmed.
    job_feed_max: Annotated[int, Field(ge=100, le=10_000_000)] = 100_000
    # Uploads (`POST /v1/jobs/upload`): the whole multipart body, checked declared and read.
    job_upload_max_bytes: Annotated[int, Field(ge=1024, le=1_073_741_824)] = 20_971_520
    # Jobs per `POST /v1/jobs/batch` request.
    job_batch_max: Annotated[int, Field(ge=1, le=1000)] = 50

    # Idempotency-Key on public POSTs (draft-ietf-httpapi-idempotency-key-header).
    idempotency_ttl_s: Annotated[int, Field(ge=60, le=86_400 * 7)] = 86_400
    # How long a request may hold its key "in flight" before a repeat may take over
    # (a gateway that died mid-request must not block the key for the whole TTL).
    idempotency_lock_s: Annotated[int, Field(ge=1, le=3600)] = 60
    # Answers larger than this are not kept: the key is released (and a log line says
    # so), so a repeat runs the request again.
    idempotency_max_body_bytes: Annotated[int, Field(ge=1024, le=16_777_216)] = 1_048_576

    # Signed download URLs (`POST /v1/jobs/{id}/download`).
    download_url_ttl_s: Annotated[int, Field(ge=10, le=86_400 * 7)] = 3600
    download_signing_keys: Annotated[list[tuple[str, SecretStr]], NoDecode] = Field(
        default_factory=list
    )
    # Rows fetched per round trip while streaming a download (constant memory).
    download_fetch_rows: Annotated[int, Field(ge=100, le=100_000)] = 5000
    # Downloads streaming at once per process; past it a 503 with Retry-After, so slow
    # readers (each holds one database connection) cannot pin the whole pool.
    download_max_concurrent: Annotated[int, Field(ge=1, le=1000)] = 8
    # The longest one download may stream (its statement timeout): a reader slower than
    # this is cut off and its connection goes back to the pool.
    download_max_s: Annotated[float, Field(gt=0, le=86_400)] = 1800.0

    @field_validator("download_signing_keys", mode="before")
    @classmethod
    def _parse_keys(cls, value: object) -> object:
        return parse_signing_keys("DOWNLOAD_SIGNING_KEYS", value)

    @model_validator(mode="after")
    def _check_keys(self) -> Self:
        check_signing_keys("DOWNLOAD_SIGNING_KEYS", self.download_signing_keys)
        for audience in self.job_platforms:
            if audience not in ("parcel", "party"):
                raise ValueError("JOB_PLATFORMS keys must be 'parcel' or 'party'")
        return self
