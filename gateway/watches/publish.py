"""Live delivery of `parcel.changed`: onto the process-wide event feed, for sockets.

A change is published once committed, to the same feed the job events use
(`<prefix>jobs:feed`, read by every process's one stream hub, `gateway/streams/hub.py`),
addressed to its owner: the entry's `job` field is `watches:<owner>`, the key a socket
subscribed to its owner's watches follows. One reader per process serves jobs and watches
alike, and the feed's trimming (`JOB_FEED_MAX`) bounds both.

Live delivery is best-effort: a publish that fails (Redis down) is counted and logged,
and the change stays in PostgreSQL, where the webhook fan-out reads it and
`GET /v1/watches/{id}/changes` lists it. A socket that reconnects lists the changes it
missed there (the log is the resume point; the feed holds no per-owner history).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import structlog
from redis.asyncio import Redis

from gateway.jobs.events import EventKeys
from gateway.kit.outage import REDIS_FAILURE
from gateway.watches.metrics import WatchMetrics
from gateway.watches.models import PARCEL_CHANGED
from gateway.watches.repository.changes import RecordedChange

log = structlog.get_logger("gateway.watches.publish")

WATCH_KEY_PREFIX = "watches:"


def watch_key(owner: str) -> str:
    """The feed address of an owner's changes (what a subscribed socket follows)."""
    return f"{WATCH_KEY_PREFIX}{owner}"


class ChangePublisher:
    """Appends committed changes to the event feed."""

    def __init__(
        self, redis: Redis, keys: EventKeys, *, feed_max: int, metrics: WatchMetrics
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.feed_max = feed_max
        self.metrics = metrics

    async def publish(self, changes: Sequence[RecordedChange]) -> None:
        """Publish after the commit: a failure is counted and logged, never raised."""
        if not changes:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for change in changes:
                    event = json.dumps(change.event(), separators=(",", ":"))
                    fields = {
                        "job": watch_key(change.owner),
                        "type": PARCEL_CHANGED,
                        "event": event,
                    }
                    pipe.xadd(self.keys.feed, fields, maxlen=self.feed_max, approximate=True)  # type: ignore[arg-type]
                await pipe.execute()
        except REDIS_FAILURE as exc:
            self.metrics.publish_failures.inc(len(changes))
            log.warning(
                "parcel_changes_publish_failed", changes=len(changes), error=type(exc).__name__
            )
