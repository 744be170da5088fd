"""The Celery side of the worker-plane benchmark: a no-op task on the local Redis.

Imported by the Celery worker (`celery -A celery_noop worker`) and by the benchmark,
configured through environment variables so both agree on broker and key prefix. The
task counts completions in Redis (one INCR) and stamps the first and the last, so the
measured window starts at the first task executed (worker boot excluded) and ends when
the last one finished. `task_acks_late` gives Celery the at-least-once semantics the
gateway has (a task is acknowledged after it ran, not when it was fetched).
"""

from __future__ import annotations

import os
import time

import redis
from celery import Celery

BROKER = os.environ.get("BENCH_CELERY_BROKER", "redis://127.0.0.1:6379/15")
PREFIX = os.environ.get("BENCH_CELERY_PREFIX", "benchcelery:")
TOTAL = int(os.environ.get("BENCH_CELERY_TOTAL", "0"))

app = Celery("bench_noop", broker=BROKER)
app.conf.update(
    broker_transport_options={"global_keyprefix": PREFIX},
    task_ignore_result=True,
    task_acks_late=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)
_counter = redis.Redis.from_url(BROKER)


@app.task(name="bench.noop")
def noop(index: int) -> None:
    """Do nothing but count; stamp the first and the last completion."""
    done = _counter.incr(PREFIX + "done")
    if done == 1:
        _counter.set(PREFIX + "start", time.time())
    if done >= TOTAL:
        _counter.set(PREFIX + "end", time.time())
