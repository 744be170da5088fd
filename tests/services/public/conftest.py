"""Fixtures for public-plane tests: a real local upstream server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.upstream import LocalUpstream


@pytest.fixture
def upstream() -> Iterator[LocalUpstream]:
    """A real HTTP upstream on a free port, stopped after the test."""
    server = LocalUpstream()
    server.start()
    yield server
    server.stop()
