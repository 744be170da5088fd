"""Which app factory serves which port."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import FastAPI

from gateway.apps.parcel_internal import create_parcel_internal_app
from gateway.apps.party_internal import create_party_internal_app
from gateway.apps.public import create_public_app
from gateway.core.audience import Audience
from gateway.core.resources import Resources
from gateway.core.settings import Settings


@dataclass(frozen=True)
class AppSpec:
    """One audience: its port and its factory."""

    audience: Audience
    port: int
    factory: Callable[[Resources], FastAPI]


def app_specs(settings: Settings) -> list[AppSpec]:
    """The three audiences of the process, in start order."""
    return [
        AppSpec(Audience.PUBLIC, settings.public_port, create_public_app),
        AppSpec(Audience.PARCEL, settings.parcel_internal_port, create_parcel_internal_app),
        AppSpec(Audience.PARTY, settings.party_internal_port, create_party_internal_app),
    ]
