"""Process configuration, built once at start-up and passed to everything that needs it.

Settings come from environment variables and an optional `.env` file. Each plane of the
product (worker plane, public plane) keeps its own settings in a mixin next to its code;
`Settings` composes them so there is still exactly one object and one flat set of
environment variable names.

Validation refuses unsafe production configurations with a message that names the
setting: embedded backends, an auth emulator, or a non-loopback bind without TLS in front
are decisions an operator must make on purpose.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Self
from urllib.parse import urlsplit

from pydantic import AnyHttpUrl, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.core.settings.backends import BackendSettings
from gateway.core.settings.celery import CelerySettings
from gateway.core.settings.connections import ConnectionSettings
from gateway.core.settings.jobs import JobSettings
from gateway.core.settings.proxy_pool import ProxyPoolSettings
from gateway.core.settings.public import PublicPlaneSettings
from gateway.core.settings.streams import StreamSettings
from gateway.core.settings.webhooks import WebhookSettings
from gateway.core.settings.work import WorkerPlaneSettings


class Environment(enum.StrEnum):
    """Where the gateway runs; production tightens validation."""

    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class LogFormat(enum.StrEnum):
    """Log rendering: one JSON object per line, or a human-readable console line."""

    JSON = "json"
    CONSOLE = "console"


class LogLevel(enum.StrEnum):
    """Minimum level written to the log."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


Port = Annotated[int, Field(ge=0, le=65535)]

_REDIS_SCHEMES = {"redis", "rediss", "unix"}
_POSTGRES_SCHEMES = {"postgresql", "postgres", "postgresql+asyncpg"}


def _check_url(value: str | None, schemes: set[str], name: str) -> str | None:
    if value is None or value == "":
        return None
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        allowed = ", ".join(sorted(schemes))
        raise ValueError(f"{name} must be a URL with scheme {allowed}")
    if parts.scheme != "unix" and not parts.hostname and "host=" not in parts.query:
        raise ValueError(f"{name} must name a host")
    try:
        _ = parts.port
    except ValueError as exc:
        raise ValueError(f"{name} has an invalid port") from exc
    return value


class CoreSettings(BaseSettings):
    """Settings of the process itself: ports, backends, logging, limits."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    environment: Environment = Environment.DEVELOPMENT
    gateway_host: str = "127.0.0.1"
    public_port: Port = 8080
    parcel_internal_port: Port = 8081
    party_internal_port: Port = 8082

    redis_url: str | None = None
    redis_key_prefix: str = Field(default="gw:", pattern=r"^[A-Za-z0-9:_.-]{0,64}$")
    database_url: str | None = None
    parser_service_url: AnyHttpUrl | None = None

    data_dir: Path = Path("var")
    run_migrations: bool | None = None

    log_level: LogLevel = LogLevel.INFO
    # None: console at a development terminal, JSON otherwise (gateway/core/logs.py).
    log_format: LogFormat | None = None

    graceful_timeout_s: float = Field(default=10.0, gt=0, le=300)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    internal_docs_enabled: bool = True
    ready_timeout_s: float = Field(default=1.0, gt=0, le=30)
    # Set by the image build (Dockerfile ARG BUILD_COMMIT); exported in gateway_build_info.
    build_commit: str = Field(default="unknown", pattern=r"^[A-Za-z0-9._-]{1,64}$")
    # FASTPATH=off serves through stock uvicorn, FastAPI and redis-py: the way to rule
    # the fast path (gateway/fastpath/README.md) in or out when something looks wrong.
    fastpath: bool = True

    redis_pool_size: int = Field(default=100, ge=1)
    database_pool_size: int = Field(default=10, ge=1)
    database_max_overflow: int = Field(default=10, ge=0)
    http_max_connections: int = Field(default=100, ge=1)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        return _check_url(value, _REDIS_SCHEMES, "REDIS_URL")

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        return _check_url(value, _POSTGRES_SCHEMES, "DATABASE_URL")

    @field_validator("log_format", mode="before")
    @classmethod
    def _empty_log_format(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("parser_service_url", mode="before")
    @classmethod
    def _empty_parser_url(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _ports_distinct(self) -> Self:
        ports = [self.public_port, self.parcel_internal_port, self.party_internal_port]
        nonzero = [p for p in ports if p != 0]
        if len(nonzero) != len(set(nonzero)):
            raise ValueError(
                "PUBLIC_PORT, PARCEL_INTERNAL_PORT and PARTY_INTERNAL_PORT must differ"
            )
        return self

    @model_validator(mode="after")
    def _backends_both_or_neither(self) -> Self:
        # Half-embedded (one real backend, one child process) would be a third mode to
        # test and operate; refuse it rather than guess which one the operator meant.
        if (self.redis_url is None) != (self.database_url is None):
            missing = "REDIS_URL" if self.redis_url is None else "DATABASE_URL"
            raise ValueError(f"{missing} is unset: set both REDIS_URL and DATABASE_URL, or neither")
        return self

    @model_validator(mode="after")
    def _production_needs_real_backends(self) -> Self:
        if self.environment is Environment.PRODUCTION and self.embedded:
            raise ValueError(
                "ENVIRONMENT=production refuses embedded backends: set REDIS_URL and DATABASE_URL"
            )
        return self

    @property
    def embedded(self) -> bool:
        """True when no backends are configured and the process runs its own servers."""
        return self.redis_url is None

    @property
    def migrate_on_start(self) -> bool:
        """Development and embedded mode migrate at start; production only when asked."""
        if self.run_migrations is not None:
            return self.run_migrations
        return self.environment is not Environment.PRODUCTION


# Plane mixins come before CoreSettings, whose model_config (env file, extra="ignore") must win.
class Settings(
    WorkerPlaneSettings,
    CelerySettings,
    PublicPlaneSettings,
    JobSettings,
    StreamSettings,
    WebhookSettings,
    ProxyPoolSettings,
    BackendSettings,
    ConnectionSettings,
    CoreSettings,
):
    """The one settings object of the process.

    Each plane adds its settings as a `BaseSettings` mixin defined next to its services
    and listed in this class's bases, so environment variable names stay flat
    (`LEASE_TIMEOUT_S`, `TIERS_FILE`) while the code stays grouped by plane.
    """

    @model_validator(mode="after")
    def _production_keeps_webhooks_public(self) -> Self:
        if self.environment is Environment.PRODUCTION and self.webhook_allow_private_networks:
            raise ValueError(
                "ENVIRONMENT=production refuses WEBHOOK_ALLOW_PRIVATE_NETWORKS=true: webhook "
                "endpoints on private networks are for development and tests only"
            )
        return self

    @model_validator(mode="after")
    def _fault_injection_only_in_tests(self) -> Self:
        # A hook that kills the process on purpose must never be one typo away in prod.
        if self.fault_inject is not None and self.environment is not Environment.TEST:
            raise ValueError("FAULT_INJECT is only accepted with ENVIRONMENT=test")
        return self


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment (and `.env`), with explicit overrides for tests."""
    return Settings(**overrides)  # type: ignore[arg-type]
