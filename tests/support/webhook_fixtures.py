"""Fixtures of the webhook and watch tests (a pytest plugin of tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from gateway.core.settings import Settings
from tests.support.jobs import JobsHarness
from tests.support.webhook_receiver import WebhookReceiver
from tests.support.webhooks import stepped_harness


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A real receiver on loopback (answers by path: `tests/support/webhook_receiver.py`)."""
    server = WebhookReceiver()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def stepped(settings: Settings) -> AsyncIterator[JobsHarness]:
    """A gateway's apps whose delivery loop is stopped: the test runs the steps."""
    async with stepped_harness(settings) as harness:
        yield harness
