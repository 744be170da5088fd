"""Which platforms a client may name: configured ones and those the queue has seen.

Jobs validate their items with it, and watches their platform, so a typo is a 422 and
never a job or a watch that silently waits for work no worker will do.
"""

from __future__ import annotations

from collections.abc import Collection

from gateway.core.errors import DependencyUnavailable
from gateway.work.queue import WorkQueue


async def known_platforms(configured: Collection[str], queue: WorkQueue) -> set[str]:
    """`configured` (JOB_PLATFORMS of the audience) plus every platform `queue` has
    seen (some producer or job queued work for it)."""
    try:
        seen = await queue.platforms()
    except DependencyUnavailable:
        # Redis down: the configured platforms still validate; the request itself then
        # answers 503 where it needs Redis.
        return set(configured)
    return set(configured) | set(seen)
