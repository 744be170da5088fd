"""Fixtures for public-plane tests: a real local upstream server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.firebase_emulator import AuthEmulator, run_emulator
from tests.support.oidc_provider import OidcProvider, run_provider
from tests.support.upstream import LocalUpstream


@pytest.fixture
def upstream() -> Iterator[LocalUpstream]:
    """A real HTTP upstream on a free port, stopped after the test."""
    server = LocalUpstream()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def auth_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthEmulator]:
    """The real Firebase Auth emulator, started once per session."""
    yield from run_emulator(tmp_path_factory.mktemp("firebase"))


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    """A real OpenID Provider (npm oidc-provider), started once per session (never rotated)."""
    yield from run_provider(tmp_path_factory.mktemp("oidc"))


@pytest.fixture
def fresh_provider(tmp_path: Path) -> Iterator[OidcProvider]:
    """A provider of this test alone (it may rotate keys and count fetches)."""
    yield from run_provider(tmp_path)
