"""Settings validation: bad configuration is refused with the setting named."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.core.settings import Environment, Settings
from gateway.kit.cli_errors import describe_validation_error

REAL = {
    "redis_url": "redis://127.0.0.1:6379/0",
    "database_url": "postgresql://postgres@127.0.0.1:5432/test",
}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # CI exports REDIS_URL/DATABASE_URL for the integration tests; these tests are about
    # defaults and must not see them.
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def _errors(**values: object) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        _settings(**values)
    return describe_validation_error(caught.value)


def test_defaults_are_development_on_embedded_backends() -> None:
    settings = _settings()
    assert settings.environment is Environment.DEVELOPMENT
    assert (settings.public_port, settings.parcel_internal_port, settings.party_internal_port) == (
        8080,
        8081,
        8082,
    )
    assert settings.embedded
    assert settings.migrate_on_start


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBLIC_PORT", "9000")
    monkeypatch.setenv("LOG_FORMAT", "console")
    monkeypatch.setenv("REDIS_URL", REAL["redis_url"])
    monkeypatch.setenv("DATABASE_URL", REAL["database_url"])
    settings = _settings()
    assert settings.public_port == 9000
    assert settings.log_format is not None
    assert settings.log_format.value == "console"
    assert not settings.embedded


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"public_port": "http"}, "PUBLIC_PORT"),
        ({"parcel_internal_port": 70000}, "PARCEL_INTERNAL_PORT"),
        ({"environment": "staging"}, "ENVIRONMENT"),
        ({"log_format": "xml"}, "LOG_FORMAT"),
        ({**REAL, "redis_url": "not a url"}, "REDIS_URL"),
        ({**REAL, "database_url": "mysql://root@localhost/db"}, "DATABASE_URL"),
        ({**REAL, "database_url": "postgresql://host:notaport/db"}, "DATABASE_URL"),
        ({"parser_service_url": "ftp//nope"}, "PARSER_SERVICE_URL"),
    ],
)
def test_invalid_values_name_the_setting(values: dict[str, object], expected: str) -> None:
    lines = _errors(**values)
    assert any(line.startswith(expected) for line in lines), lines


def test_secret_values_are_not_echoed_in_errors() -> None:
    lines = _errors(**{**REAL, "redis_url": "ftp://user:hunter2@host"})
    assert lines
    assert all("hunter2" not in line for line in lines)


def test_ports_must_differ() -> None:
    assert any(
        "must differ" in line for line in _errors(public_port=9000, party_internal_port=9000)
    )


def test_production_refuses_embedded_backends() -> None:
    lines = _errors(environment="production")
    assert any("embedded" in line for line in lines)


def test_half_configured_backends_are_refused() -> None:
    lines = _errors(redis_url=REAL["redis_url"])
    assert any("DATABASE_URL" in line for line in lines)


def test_production_migrates_only_when_asked() -> None:
    production = _settings(environment="production", **REAL)
    assert not production.migrate_on_start
    assert _settings(environment="production", run_migrations=True, **REAL).migrate_on_start
