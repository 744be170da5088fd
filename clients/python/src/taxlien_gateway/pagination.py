"""Iterators over the gateway's cursor pagination (`next_cursor`), sync and async.

A pager is lazy: nothing is requested until it is iterated. Iterating it yields the
items of every page in order, requesting the next page (the same query with
`cursor=<next_cursor>`) only when the previous one is used up; `pages()` yields whole
pages instead. Each page is one request, retried like any other. A pager can be
iterated again: it starts over from the first page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Generic, TypeVar

from taxlien_gateway._call import Call
from taxlien_gateway.models import Page

T = TypeVar("T")


class Pager(Generic[T]):
    """Every item of a paginated list (sync)."""

    def __init__(self, send: Callable[[Call[Page[T]]], Page[T]], first: Call[Page[T]]) -> None:
        self._send = send
        self._first = first

    def pages(self) -> Iterator[Page[T]]:
        """Each page in turn, the last one included."""
        page_call = self._first
        while True:
            page = self._send(page_call)
            yield page
            if not page.next_cursor:
                return
            page_call = page_call.with_params(cursor=page.next_cursor)

    def __iter__(self) -> Iterator[T]:
        for page in self.pages():
            yield from page.items

    def first_page(self) -> Page[T]:
        """Just the first page (its `next_cursor` says whether there are more)."""
        return self._send(self._first)


class AsyncPager(Generic[T]):
    """Every item of a paginated list (async: `async for`)."""

    def __init__(
        self, send: Callable[[Call[Page[T]]], Awaitable[Page[T]]], first: Call[Page[T]]
    ) -> None:
        self._send = send
        self._first = first

    async def pages(self) -> AsyncIterator[Page[T]]:
        """Each page in turn, the last one included."""
        page_call = self._first
        while True:
            page = await self._send(page_call)
            yield page
            if not page.next_cursor:
                return
            page_call = page_call.with_params(cursor=page.next_cursor)

    async def __aiter__(self) -> AsyncIterator[T]:
        async for page in self.pages():
            for item in page.items:
                yield item

    async def first_page(self) -> Page[T]:
        """Just the first page (its `next_cursor` says whether there are more)."""
        return await self._send(self._first)
