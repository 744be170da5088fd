"""The CLI runner's one map from gateway errors to exit codes."""

from __future__ import annotations

import pytest

from gateway.core.errors import DependencyUnavailable, NotFound
from gateway.core.resources import Resources
from gateway.kit.cli_errors import EXIT_FAILURE, EXIT_USAGE, CliError
from gateway.kit.cli_runner import run_with_resources
from gateway.kit.field_errors import invalid_field
from tests.support.backends import TestBackends


@pytest.fixture
def configured(backends: TestBackends, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", backends.redis_url)
    monkeypatch.setenv("DATABASE_URL", backends.database_url)
    monkeypatch.setenv("ENVIRONMENT", "test")


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (invalid_field("tier", msg="unknown tier"), EXIT_USAGE, "unknown tier"),
        (NotFound("API key k1 not found"), EXIT_FAILURE, "API key k1 not found"),
        (DependencyUnavailable("redis"), EXIT_FAILURE, "redis"),
    ],
)
def test_gateway_errors_become_one_line_and_an_exit_code(
    configured: None, error: Exception, code: int, message: str
) -> None:
    async def command(resources: Resources) -> int:
        raise error

    with pytest.raises(CliError) as caught:
        run_with_resources(command)
    assert caught.value.exit_code == code
    assert message in str(caught.value)


def test_the_command_runs_on_open_resources(configured: None) -> None:
    async def command(resources: Resources) -> str:
        return str(await resources.redis.ping())

    assert run_with_resources(command) == "True"


def test_embedded_backends_that_cannot_start_are_one_line(
    configured: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import contextlib
    from collections.abc import Iterator

    import gateway.core.backends
    from gateway.embedded.errors import EmbeddedBackendError

    @contextlib.contextmanager
    def failing(settings: object, **_: object) -> Iterator[None]:
        raise EmbeddedBackendError("embedded mode needs the embedded extra")
        yield

    monkeypatch.setattr(gateway.core.backends, "backends", failing)

    async def command(resources: Resources) -> int:
        return 0

    with pytest.raises(CliError) as caught:
        run_with_resources(command)
    assert caught.value.exit_code == EXIT_FAILURE
    assert "embedded extra" in str(caught.value)
