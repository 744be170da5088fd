"""Tell every gateway process to forget what it verified about a user, and wait for it.

Each process keeps verified API keys (`API_KEY_CACHE_S`) and users' rows (`USER_CACHE_S`)
in memory, so a hot credential costs no database round trip. Disabling a user must
still refuse their credentials *at once* on every replica, without a Redis read on the
hot path. So the change is announced on a Redis pub/sub channel, and the announcer
waits until every subscribed process acknowledged it:

1. the service commits the change (the user disabled, their keys revoked) and forgets
   what this process cached;
2. `announce(subject)` publishes `<subject> <ack key>`; `PUBLISH` answers how many
   subscribers received it;
3. each process's subscriber drops its cached entries for the subject, then pushes onto
   the ack list; the announcer pops that many acks (bounded by `ACK_WAIT_S`).

When `announce` returns, every process that was subscribed has forgotten the user, so
the next request anywhere reads the database and is refused. A process whose
subscription is down could miss an announcement: while it is down (and until it is
back) that process caches nothing (`live` is false, so the services skip their cache
writes), and it drops everything it cached when the subscription is lost.

Subjects: `user:<uid>` (the user's row and their keys: disabled, enabled, a new role or
tier), `key:<id>` (one revoked API key) and `*` (everything).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable

import structlog
from redis.asyncio import Redis

log = structlog.get_logger("gateway.public.revocations")

EVERYTHING = "*"
ACK_WAIT_S = 2.0
_RECONNECT_DELAY_S = 0.5
# How long one pub/sub read waits; bounds how quickly the subscriber notices `stop()`.
_POLL_S = 0.5
_ACK_TTL_S = 30

Forget = Callable[[str], None]


def user_subject(uid: str) -> str:
    """The subject naming everything cached about a user."""
    return f"user:{uid}"


def key_subject(key_id: str) -> str:
    """The subject naming one API key."""
    return f"key:{key_id}"


class RevocationFeed:
    """Announce and receive "forget this" across gateway processes; see the docstring."""

    def __init__(self, redis: Redis, channel: str, ack_prefix: str) -> None:
        self._redis = redis
        self._channel = channel
        self._ack_prefix = ack_prefix
        self._forgetters: list[Forget] = []
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.subscribed = asyncio.Event()

    @property
    def live(self) -> bool:
        """Whether this process hears announcements (else it must not cache)."""
        return self.subscribed.is_set()

    def on_forget(self, forget: Forget) -> None:
        """Call `forget(subject)` for every announcement (and `*` on a lost subscription)."""
        self._forgetters.append(forget)

    def _forget(self, subject: str) -> None:
        for forget in self._forgetters:
            forget(subject)

    async def announce(self, subject: str) -> int:
        """Tell every subscribed process to forget `subject`; how many acknowledged."""
        ack_key = f"{self._ack_prefix}{secrets.token_hex(8)}"
        receivers = int(await self._redis.publish(self._channel, f"{subject} {ack_key}"))
        acked = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ACK_WAIT_S
        while acked < receivers:
            left = deadline - loop.time()
            if left <= 0:
                break
            # BLPOP takes whole or fractional seconds; never 0 (that waits forever).
            if await self._redis.blpop([ack_key], timeout=max(0.01, left)) is None:
                break
            acked += 1
        await self._redis.delete(ack_key)
        if acked < receivers:
            log.warning(
                "revocation_unacknowledged", subject=subject, receivers=receivers, acked=acked
            )
        return acked

    def start(self) -> None:
        """Start the subscriber task."""
        self._task = asyncio.create_task(self._run(), name=f"revocations:{self._channel}")

    async def stop(self) -> None:
        """Stop the subscriber (bounded, like `gateway/work/notifier.py`)."""
        self._closing = True
        if self._task is None:
            return
        done, _ = await asyncio.wait({self._task}, timeout=_POLL_S * 3)
        if not done:
            self._task.cancel()  # not awaited: it must not hold up shutdown
            log.warning("revocation_subscriber_stop_timeout", channel=self._channel)
        self._task = None

    async def _run(self) -> None:
        while not self._closing:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dropped subscription must not end the feed
                self.subscribed.clear()
                self._forget(EVERYTHING)
                log.warning("revocation_subscription_lost", error=type(exc).__name__)
                await asyncio.sleep(_RECONNECT_DELAY_S)

    async def _listen(self) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self._channel)
            # Announcements may have been missed while (re)subscribing.
            self._forget(EVERYTHING)
            self.subscribed.set()
            while not self._closing:
                message = await pubsub.get_message(timeout=_POLL_S)
                if message is not None and message.get("type") == "message":
                    await self._received(message["data"])
        finally:
            self.subscribed.clear()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _received(self, data: bytes | str) -> None:
        text = data.decode() if isinstance(data, bytes) else str(data)
        subject, _, ack_key = text.rpartition(" ")
        if not subject or not ack_key.startswith(self._ack_prefix):
            return
        self._forget(subject)
        pipe = self._redis.pipeline(transaction=True)
        pipe.rpush(ack_key, b"1")
        pipe.expire(ack_key, _ACK_TTL_S)
        await pipe.execute()
