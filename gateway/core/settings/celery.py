"""Settings of Celery routing (a second backend next to the native worker queue).

A mixin of `gateway.core.settings.Settings`; environment names stay flat
(`CELERY_BROKER_URL`, `CELERY_ROUTES`, ...). With neither set nothing changes: every
task goes to the native queue and Celery is never imported (see the README section
"Celery routing").

`CELERY_ROUTES` is a JSON list; each route sends a share of one audience's tasks of one
platform (`"*"`: every platform without a route of its own), and optionally of one
origin (`kind`: a job kind, or `producer` for `POST /internal/tasks`), to a Celery task
on a Celery queue::

    [{"audience": "parcel", "platform": "miami_dade", "share": 0.3,
      "task": "scrape_parcel", "queue": "parcels"}]

The share here is the default; `PUT /v1/admin/routing` (or `gateway routing set`)
overrides it at runtime on every replica.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings

BROKER_SCHEMES = {"amqp", "amqps", "pyamqp", "redis", "rediss"}
# Celery task and queue names as they appear in broker routing keys and log lines.
CELERY_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,199}$"
RouteKind = Literal["producer", "parcel_refresh", "party_refresh"]
Share = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class CeleryRoute(BaseModel):
    """One routing rule: which tasks, what share of them, and where they go."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    audience: Literal["parcel", "party"]
    platform: Annotated[str, Field(pattern=r"^(\*|[a-z0-9][a-z0-9_-]{0,63})$")]
    kind: RouteKind | None = None
    share: Share = 0.0
    task: Annotated[str, Field(pattern=CELERY_NAME)]
    queue: Annotated[str, Field(pattern=CELERY_NAME)] = "celery"

    @property
    def id(self) -> str:
        """The route's name in runtime shares, the CLI and the admin API."""
        parts = [self.audience, self.platform]
        if self.kind is not None:
            parts.append(self.kind)
        return "/".join(parts)


class CelerySettings(BaseSettings):
    """Celery routing; see the "Celery routing" section of the README."""

    celery_broker_url: str | None = None
    # Passed to kombu as `transport_options` (e.g. `{"global_keyprefix": "gw:"}` for a
    # shared Redis broker, `{"visibility_timeout": 3600}`).
    celery_broker_transport_options: dict[str, Any] = Field(default_factory=dict)
    celery_routes: list[CeleryRoute] = Field(default_factory=list)
    # A Celery task's lease: the broker's queueing time counts against it, so it is
    # longer than a HTTP worker's. When it runs out the reaper retries the task (a new
    # lease, a new message); the old message's result is then `stale` and writes nothing.
    celery_lease_timeout_s: Annotated[float, Field(gt=0, le=7 * 86_400)] = 3600.0
    # Results come back on `<CELERY_RESULTS_QUEUE>.<audience>` (a durable queue the
    # gateway consumes with kombu).
    celery_results_queue: Annotated[str, Field(pattern=CELERY_NAME)] = "gateway.results"
    # Tasks leased and published per dispatch pass, and results in flight per consumer.
    celery_dispatch_batch: Annotated[int, Field(ge=1, le=1000)] = 100
    celery_results_prefetch: Annotated[int, Field(ge=1, le=1000)] = 100
    # Cancelling a job revokes its Celery tasks that nobody else waits for: a task not
    # yet started is dropped by its worker. With `terminate` a running one is killed too
    # (prefork pool only; it may leave the scrape half done), hence off by default.
    celery_revoke_terminate: bool = False

    @field_validator("celery_broker_url", mode="before")
    @classmethod
    def _broker_url(cls, value: object) -> object:
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            return value
        parts = urlsplit(value)
        if parts.scheme not in BROKER_SCHEMES:
            allowed = ", ".join(sorted(BROKER_SCHEMES))
            raise ValueError(f"CELERY_BROKER_URL must be a URL with scheme {allowed}")
        if not parts.hostname:
            raise ValueError("CELERY_BROKER_URL must name a host")
        return value

    @model_validator(mode="after")
    def _routes_need_a_broker(self) -> Self:
        if self.celery_routes and self.celery_broker_url is None:
            raise ValueError("CELERY_ROUTES needs CELERY_BROKER_URL")
        seen: set[str] = set()
        for route in self.celery_routes:
            if route.id in seen:
                raise ValueError(f"CELERY_ROUTES names {route.id} twice")
            seen.add(route.id)
        return self

    @property
    def celery_enabled(self) -> bool:
        """Whether any task can go to Celery (routes configured)."""
        return bool(self.celery_routes)
