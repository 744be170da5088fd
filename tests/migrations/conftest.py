"""Fixtures of the migration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.backends import TestBackends
from tests.support.migrations import fresh_database as empty_database


@pytest.fixture
async def fresh_database(backends: TestBackends) -> AsyncIterator[str]:
    """An empty database of the test's own; its URL."""
    async with empty_database(backends, "mig") as url:
        yield url
