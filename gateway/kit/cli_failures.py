"""Backend failures an operator should expect, as one line that names the fix.

A command run before `gateway migrate`, against a database that does not exist, or while
PostgreSQL or Redis is down, fails in the drivers with a long traceback. Those are not
bugs but states of the installation, so the CLI says what is wrong and what to run:

| condition (how it is recognised)                       | message names     | exit |
|--------------------------------------------------------|-------------------|------|
| no gateway tables (SQLSTATE 42P01, undefined_table)    | `gateway migrate` | 1    |
| database missing (SQLSTATE 3D000, invalid_catalog_name)| createdb / URL    | 1    |
| login refused (SQLSTATE 28P01 / 28000)                 | DATABASE_URL      | 1    |
| a backend unreachable (connection errors, `DependencyUnavailable`) | the URL's variable | 1 |

URLs are shown with their passwords redacted (`gateway/core/logs.py`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from urllib.parse import urlsplit

from gateway.core.errors import DependencyUnavailable
from gateway.core.logs import redact_text
from gateway.core.settings import Settings
from gateway.kit.cli_errors import CliError

_UNDEFINED_TABLE = "42P01"
_MISSING_DATABASE = "3D000"
_LOGIN_REFUSED = {"28P01", "28000"}


def _sqlstate(exc: BaseException) -> str | None:
    # SQLAlchemy wraps the driver's error, which may wrap asyncpg's; the code is on one.
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for holder in (current, getattr(current, "orig", None)):
            code = getattr(holder, "sqlstate", None) or getattr(holder, "pgcode", None)
            if isinstance(code, str):
                return code
        current = current.__cause__ or current.__context__
    return None


def _where(url: str | None, variable: str) -> str:
    if url is None:
        return f"the embedded server (no {variable} set)"
    return redact_text(url)


def _database_name(url: str | None) -> str:
    path = urlsplit(url).path.lstrip("/") if url else ""
    return path or "gateway"


def explain(exc: BaseException, settings: Settings) -> CliError | None:
    """The one-line error for an expected backend failure, or None for anything else."""
    import redis.exceptions
    import sqlalchemy.exc

    database = _where(settings.database_url, "DATABASE_URL")
    cannot_reach_db = CliError(
        f"cannot reach PostgreSQL at {database}: start it, or fix DATABASE_URL"
    )
    cannot_reach_redis = CliError(
        f"cannot reach Redis at {_where(settings.redis_url, 'REDIS_URL')}: start it, "
        "or fix REDIS_URL"
    )
    if isinstance(exc, BrokenPipeError):
        return None  # our own stdout closed by its reader (`| head`): not a backend
    code = _sqlstate(exc)
    if code == _UNDEFINED_TABLE:
        return CliError("the database has no gateway tables yet: run `gateway migrate`")
    if code == _MISSING_DATABASE:
        name = _database_name(settings.database_url)
        return CliError(
            f'database "{name}" does not exist on {database}: create it '
            f"(`createdb {name}`), or fix DATABASE_URL"
        )
    if code in _LOGIN_REFUSED:
        return CliError(f"PostgreSQL refused the login at {database}: fix DATABASE_URL")
    if isinstance(exc, DependencyUnavailable):
        dependency = exc.extra.get("dependency")
        if dependency == "database":
            return cannot_reach_db
        if dependency == "redis":
            return cannot_reach_redis
        return None
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return cannot_reach_redis
    if isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
        return cannot_reach_db
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and isinstance(exc.orig, OSError):
        return cannot_reach_db
    if isinstance(exc, ConnectionError):
        # Raised by asyncpg while connecting (redis-py wraps its own, above).
        return cannot_reach_db
    return None


@contextlib.contextmanager
def backend_failures_explained(settings: Settings) -> Iterator[None]:
    """Turn expected backend failures raised inside into one-line `CliError`s."""
    try:
        yield
    except CliError:
        raise
    except Exception as exc:
        explained = explain(exc, settings)
        if explained is None:
            raise
        raise explained from exc
