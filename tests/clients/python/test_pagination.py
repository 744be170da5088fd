"""Iterators over cursor pagination: every item of every page, once, in the server's
order, sync and async; `pages()` shows the page boundaries."""

from __future__ import annotations

import pytest

from taxlien_gateway import AsyncClient, Client
from tests.clients.python.conftest import in_thread
from tests.support.jobs import JobsHarness

pytestmark = pytest.mark.integration


async def five_jobs(h: JobsHarness, key: str) -> list[str]:
    """Five jobs of the key's owner, newest first (the order the list answers)."""
    ids = []
    for n in range(5):
        response = await h.submit(key, [f"p-{n}"])
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids[::-1]


async def test_async_iteration_follows_next_cursor_to_the_last_page(
    h: JobsHarness, gw: AsyncClient, key: str
) -> None:
    newest_first = await five_jobs(h, key)
    pager = gw.jobs.list(limit=2)
    pages = [page async for page in pager.pages()]
    assert [len(p.items) for p in pages] == [2, 2, 1]
    assert [p.next_cursor is None for p in pages] == [False, False, True]
    assert [job.id async for job in pager] == newest_first  # again, from the start
    assert [job.id async for job in gw.jobs.list(status=["queued", "running"], limit=3)] == (
        newest_first
    )
    assert [job.id async for job in gw.jobs.list(status="completed")] == []


async def test_sync_iteration_reads_every_page(h: JobsHarness, base_url: str, key: str) -> None:
    newest_first = await five_jobs(h, key)

    def read() -> tuple[list[str], int]:
        with Client(base_url, api_key=key) as gw:
            pager = gw.jobs.list(limit=2)
            return [job.id for job in pager], len(list(pager.pages()))

    ids, page_count = await in_thread(read)
    assert ids == newest_first
    assert page_count == 3


async def test_a_jobs_items_page_by_index(h: JobsHarness, gw: AsyncClient) -> None:
    job = await gw.jobs.create(
        "parcel_refresh", [{"platform": "alpha", "parcel_id": f"i-{n}"} for n in range(5)]
    )
    items = [item async for item in gw.jobs.items(job.id, limit=2)]
    assert [item.index for item in items] == [0, 1, 2, 3, 4]
    assert {item.state for item in items} == {"pending"}
