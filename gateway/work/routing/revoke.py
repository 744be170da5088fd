"""Revoking Celery tasks of cancelled jobs, from the public port.

The public port never dispatches (it only attaches and releases waiters), so it has no
Celery client of its own; a `CeleryRevoker` exists only when routes are configured and
builds its client (importing Celery) at the first revoke. `revoke` is a broadcast to the
Celery workers online: each one drops the task when it reaches it (a task already
running goes on unless `CELERY_REVOKE_TERMINATE`). The gateway has already ended the
lease (`release.lua`), so a revoke that does not arrive (broker down, a worker started
after the broadcast) costs a scrape whose result is `stale`, never a wrong commit.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from celery import Celery

log = structlog.get_logger("gateway.work.routing")


class CeleryRevoker:
    """Revokes Celery task ids (`<task_id>.<lease_id>`) on the deployment's broker."""

    def __init__(self, broker_url: str, transport_options: dict[str, Any], terminate: bool) -> None:
        self.broker_url = broker_url
        self.transport_options = transport_options
        self.terminate = terminate
        self._app: Celery | None = None
        self._lock = threading.Lock()
        self.revoked = 0

    def _client(self) -> Celery:
        with self._lock:
            if self._app is None:
                # Imported here: a public port that never revokes never loads Celery.
                from gateway.work.routing.publisher import celery_client

                self._app = celery_client(self.broker_url, self.transport_options)
            return self._app

    def _revoke(self, ids: list[str]) -> None:
        self._client().control.revoke(ids, terminate=self.terminate)

    async def revoke(self, celery_task_ids: Sequence[str]) -> None:
        """Broadcast a revoke of these tasks; logged, never raised (see the docstring)."""
        ids = list(celery_task_ids)
        if not ids:
            return
        try:
            await asyncio.to_thread(self._revoke, ids)
        except Exception as exc:
            log.warning("celery_revoke_failed", tasks=len(ids), error=type(exc).__name__)
            return
        self.revoked += len(ids)
        log.info("celery_revoked", tasks=len(ids), terminate=self.terminate)

    async def close(self) -> None:
        """Close the client's broker connections (if it was ever built)."""
        if self._app is not None:
            await asyncio.to_thread(self._app.close)
            self._app = None
