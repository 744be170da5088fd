"""Who holds a lease, and what happens when someone else acts on it.

A lease id alone is not a capability: `lease.lua` binds every lease to the token that
leased it (its id, never the secret) and the worker id the request named, and results,
failures and heartbeats from any other (token, worker id) are refused as `not_holder`.
A token is usually shared by a fleet, so the worker id is part of the holder: another
worker of the same fleet cannot complete, fail or extend a lease it did not take. A
worker that restarts with the same token and worker id is the same holder and carries
on with the leases it still knows.

A refusal is logged once per request (with the count and a few lease ids, enough to find
the misbehaving worker without flooding the log) and counted per operation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import structlog

from gateway.work.metrics import WorkerMetrics

log = structlog.get_logger("gateway.work.holder")

Operation = Literal["result", "heartbeat"]
# Lease ids named in the log line of one refused request.
LOGGED_LEASE_IDS = 5


@dataclass(frozen=True)
class LeaseHolder:
    """The holder of a lease: the id of the token that leased it and the worker id."""

    token_id: int
    worker_id: str

    def args(self) -> list[str]:
        """The holder as script arguments (token id, worker id)."""
        return [str(self.token_id), self.worker_id]


def report_refused(
    metrics: WorkerMetrics, operation: Operation, holder: LeaseHolder, lease_ids: Sequence[str]
) -> None:
    """Log (once) and count the leases of one request refused as not the caller's."""
    if not lease_ids:
        return
    metrics.holder_refusals.labels(operation).inc(len(lease_ids))
    log.warning(
        "not_lease_holder",
        operation=operation,
        token_id=holder.token_id,
        worker_id=holder.worker_id,
        refused=len(lease_ids),
        lease_ids=list(lease_ids[:LOGGED_LEASE_IDS]),
    )
