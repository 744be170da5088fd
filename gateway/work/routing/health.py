"""The Celery side's health, for `GET /v1/admin/status`: who answers, what waits where.

* `workers`: the Celery workers answering `inspect ping` within `PING_TIMEOUT_S` (a
  broadcast: every worker on the broker answers, whatever queues it consumes);
* `queues`: each route's queue and each results queue, with the broker's message and
  consumer counts (nothing is created; on RabbitMQ a queue that does not exist yet has
  `messages: null`; on Redis consumers are unknown, `null`, and a missing queue is 0);
* `waiting_for_dispatch`: routed tasks in `cready` per audience (Redis), which no broker
  has seen yet;
* `results`: per audience, the latest results lag a consumer recorded (`lag.py`).

`down` when the broker does not answer, `degraded` when no worker answers a ping (the
routed tasks wait in the broker until their leases end), else `ok`; `disabled` without
routes. The broker calls are blocking (kombu), so they run in a thread, bounded by
`STATUS_TIMEOUT_S` as a whole; Celery is imported only when routes are configured.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from gateway.core.resources import Resources
from gateway.kit.status import ComponentStatus
from gateway.work.plane import celery_lag_key, work_queue
from gateway.work.queue import CELERY_READY
from gateway.work.routing.lag import latest_lags

PING_TIMEOUT_S = 1.0
CONNECT_TIMEOUT_S = 2.0
STATUS_TIMEOUT_S = 5.0
AUDIENCES = ("parcel", "party")


def _broker_side(url: str, options: dict[str, Any], queues: list[str]) -> dict[str, Any]:
    """Queue depths and ping answers (blocking; raises when the broker does not answer)."""
    from kombu.connection import Connection

    from gateway.work.routing.publisher import celery_client

    depths = []
    with Connection(url, transport_options=options, connect_timeout=CONNECT_TIMEOUT_S) as conn:
        conn.ensure_connection(max_retries=1)
        # AMQP: a passive declare (creates nothing; a missing queue raises). Redis and
        # other virtual transports: a plain declare creates nothing there either, and a
        # passive one misreads prefixed keys; they know no consumer count.
        amqp = conn.transport.driver_type == "amqp"
        for name in queues:
            entry: dict[str, Any] = {"name": name, "messages": None, "consumers": None}
            # A fresh channel per queue: on AMQP a missing queue closes its channel.
            with contextlib.suppress(Exception), conn.channel() as channel:
                declared = channel.queue_declare(queue=name, passive=amqp)
                entry["messages"] = int(declared.message_count)
                if amqp:
                    entry["consumers"] = int(declared.consumer_count)
            depths.append(entry)
        app = celery_client(url, options)
        try:
            replies = app.control.inspect(timeout=PING_TIMEOUT_S, connection=conn).ping() or {}
        finally:
            app.close()
    return {"workers": sorted(replies), "queues": depths}


async def _waiting(resources: Resources, audience: str) -> int:
    queue = work_queue(resources, audience)
    platforms = await queue.platforms()
    if not platforms:
        return 0
    async with resources.redis.pipeline(transaction=False) as pipe:
        for platform in platforms:
            pipe.zcard(queue.key(CELERY_READY + platform))
        counts = await pipe.execute()
    return sum(int(c) for c in counts)


async def celery_status(resources: Resources) -> ComponentStatus:
    """The Celery component of the admin status."""
    settings = resources.settings
    if not settings.celery_enabled or settings.celery_broker_url is None:
        return ComponentStatus("celery", "disabled")
    routed = sorted({r.audience for r in settings.celery_routes})
    queues = sorted({r.queue for r in settings.celery_routes})
    queues += [f"{settings.celery_results_queue}.{a}" for a in routed]
    details: dict[str, Any] = {"routes": [r.id for r in settings.celery_routes]}
    try:
        details["waiting_for_dispatch"] = {a: await _waiting(resources, a) for a in routed}
        details["results"] = await latest_lags(resources.redis, celery_lag_key(resources))
    except Exception as exc:  # Redis down: report what the broker says regardless
        details["redis_error"] = type(exc).__name__
    try:
        broker = await asyncio.wait_for(
            asyncio.to_thread(
                _broker_side,
                settings.celery_broker_url,
                dict(settings.celery_broker_transport_options),
                queues,
            ),
            STATUS_TIMEOUT_S,
        )
    except Exception as exc:  # unreachable or too slow: the class only (URLs in messages)
        details.update(broker="down", broker_error=type(exc).__name__, workers=[], queues=[])
        return ComponentStatus("celery", "down", details)
    details.update(broker="ok", **broker)
    return ComponentStatus("celery", "ok" if broker["workers"] else "degraded", details)
