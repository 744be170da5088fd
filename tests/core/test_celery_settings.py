"""Celery routing settings: JSON routes from the environment, refused with the setting
named when they cannot work."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from gateway.core.settings import Settings
from gateway.kit.cli_errors import describe_validation_error

ROUTE = {"audience": "parcel", "platform": "miami_dade", "share": 0.3, "task": "scrape_parcel"}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


def _errors(**values: object) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, **values)  # type: ignore[arg-type]
    return describe_validation_error(caught.value)


def test_without_celery_settings_nothing_is_routed() -> None:
    settings = Settings(_env_file=None)
    assert settings.celery_broker_url is None
    assert settings.celery_routes == []
    assert not settings.celery_enabled


def test_routes_come_as_json_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
    monkeypatch.setenv("CELERY_ROUTES", json.dumps([ROUTE, {**ROUTE, "kind": "producer"}]))
    settings = Settings(_env_file=None)
    assert [r.id for r in settings.celery_routes] == [
        "parcel/miami_dade",
        "parcel/miami_dade/producer",
    ]
    assert settings.celery_routes[0].queue == "celery"
    assert settings.celery_enabled


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"celery_routes": [ROUTE]}, "CELERY_ROUTES needs CELERY_BROKER_URL"),
        ({"celery_broker_url": "http://x"}, "scheme"),
        ({"celery_broker_url": "amqp:///x"}, "must name a host"),
        ({"celery_broker_url": "redis://h", "celery_routes": [ROUTE, ROUTE]}, "twice"),
        (
            {"celery_broker_url": "redis://h", "celery_routes": [{**ROUTE, "share": 1.5}]},
            "CELERY_ROUTES: Input should be less than or equal to 1",
        ),
        (
            {"celery_broker_url": "redis://h", "celery_routes": [{**ROUTE, "task": "a b"}]},
            "CELERY_ROUTES: String should match",
        ),
        (
            {"celery_broker_url": "redis://h", "celery_routes": [{**ROUTE, "audience": "x"}]},
            "CELERY_ROUTES: Input should be",
        ),
    ],
)
def test_bad_celery_settings_are_refused(values: dict[str, object], needle: str) -> None:
    assert any(needle in line for line in _errors(**values))
