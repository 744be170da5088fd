"""Settings of the process's backend connections: bounds on every database call, and
the Redis persistence an operator accepts (see gateway/core/redis_persistence.py)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class BackendSettings(BaseSettings):
    """Timeouts of the shared engine, and `REDIS_ALLOW_VOLATILE`."""

    # Client-side bound on every statement, COMMIT included (asyncpg `command_timeout`),
    # also sent as PostgreSQL's `statement_timeout`: a partition fails calls in this
    # time instead of hanging them until it heals.
    database_command_timeout_s: float = Field(default=15.0, gt=0, le=600)
    # How long a caller waits for a pooled connection before answering 503.
    database_pool_timeout_s: float = Field(default=5.0, gt=0, le=60)
    # Production refuses Redis without AOF unless this says the loss is accepted.
    redis_allow_volatile: bool = False
