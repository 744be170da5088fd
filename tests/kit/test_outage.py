"""The one list of outage exceptions: what maps to a 503 and what stays a bug."""

from __future__ import annotations

import pytest
import redis.exceptions
import sqlalchemy.exc

from gateway.core.errors import DependencyUnavailable
from gateway.kit.outage import database_guard, is_database_down, is_redis_down, redis_guard


def _dbapi(invalidated: bool) -> sqlalchemy.exc.DBAPIError:
    return sqlalchemy.exc.DBAPIError(
        "SELECT 1", {}, Exception("x"), connection_invalidated=invalidated
    )


@pytest.mark.parametrize(
    "exc",
    [
        redis.exceptions.ConnectionError("refused"),
        redis.exceptions.TimeoutError("slow"),
        redis.exceptions.ReadOnlyError("failover"),
        ConnectionResetError(),
        TimeoutError(),
    ],
)
def test_redis_outages_become_503(exc: Exception) -> None:
    assert is_redis_down(exc)
    with pytest.raises(DependencyUnavailable) as caught, redis_guard():
        raise exc
    assert caught.value.status == 503
    assert caught.value.__cause__ is exc


def test_a_redis_command_error_is_not_an_outage() -> None:
    exc = redis.exceptions.ResponseError("WRONGTYPE")
    assert not is_redis_down(exc)
    with pytest.raises(redis.exceptions.ResponseError), redis_guard():
        raise exc


def test_database_outages_become_503_but_sql_bugs_stay_loud() -> None:
    down = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("refused"))
    with pytest.raises(DependencyUnavailable), database_guard():
        raise down
    assert is_database_down(_dbapi(invalidated=True))
    # A DBAPIError whose connection is fine is a bad statement, not an outage.
    bug = _dbapi(invalidated=False)
    assert not is_database_down(bug)
    with pytest.raises(sqlalchemy.exc.DBAPIError), database_guard():
        raise bug
    with pytest.raises(sqlalchemy.exc.ProgrammingError), database_guard():
        raise sqlalchemy.exc.ProgrammingError("SELEC 1", {}, Exception("syntax"))
