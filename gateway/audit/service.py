"""`AuditLog`: append a row in the caller's transaction, page the trail.

`record` runs inside the transaction of the action it describes, so the row commits or
rolls back with the action: a refused or failed action leaves no row, and an action
never commits without its row. It takes the trail's advisory lock, so call it as the
*last* statement of the transaction (after the action's own row locks): the lock is then
held only for the insert and the commit, and no transaction waits for a row lock while
holding it.

Actions that live in Redis (dead letters, the response cache) have no transaction to
join; `record_alone` writes their row in a transaction of its own right after the action
succeeded. If PostgreSQL is down at that moment the action has happened and the call
fails with a 503: the row is missing, so the attempt is logged (`audit_write_failed`,
same fields) for the operator's log pipeline.

Summaries are small dicts chosen by each call site (tier, role, name, counts), never a
credential. `record` also refuses, as a bug, a summary or target that *looks* like one
(an API key, a worker token, a JWT, or a field named like a secret), so a future call
site cannot leak one by passing a whole row.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.audit import repository as repo
from gateway.audit.actions import Action
from gateway.audit.actor import Actor
from gateway.audit.chain import GENESIS, ChainedRow, Summary, normalise, row_hash
from gateway.kit.outage import session_scope

log = structlog.get_logger("gateway.audit")

_SECRET_FIELDS = frozenset(
    {"key", "secret", "secret_hash", "token", "token_hash", "hash", "password", "credential"}
)
_SECRET_VALUE = re.compile(
    r"tlk_[0-9a-f]{12}_[A-Za-z0-9_-]{20,}"  # an API key
    r"|gwt_[a-z]+_[A-Za-z0-9_-]{20,}"  # a worker token
    r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\."  # a JWT
)


def _strings(value: Any) -> Iterator[tuple[str | None, str]]:
    """Every (field name, text) inside a summary at any depth; a name alone with ""."""
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, str):
                yield str(k), v
            else:
                yield str(k), ""
                yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield None, value


def refuse_secrets(*texts: str | None, summaries: tuple[Summary | None, ...] = ()) -> None:
    """Raise `ValueError` when anything about to be recorded looks like a credential."""
    for text in texts:
        if text and _SECRET_VALUE.search(text):
            raise ValueError("an audit row must not contain a credential")
    for summary in summaries:
        for key, text in _strings(summary):
            if key is not None and key.lower() in _SECRET_FIELDS:
                raise ValueError(f"an audit summary must not carry a {key!r} field")
            if _SECRET_VALUE.search(text):
                raise ValueError("an audit summary must not contain a credential")


@dataclass(frozen=True)
class AuditPage:
    """A page of rows, newest first, and the seq to continue below (None: no more)."""

    items: list[ChainedRow]
    next_before: int | None


class AuditLog:
    """Append to and read the audit trail."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def record(
        self,
        session: AsyncSession,
        actor: Actor,
        action: Action,
        target: str,
        before: Summary | None = None,
        after: Summary | None = None,
    ) -> ChainedRow:
        """Append a row in `session`'s transaction (last in it: see the module docstring)."""
        before, after = normalise(before), normalise(after)
        refuse_secrets(target, actor.principal, summaries=(before, after))
        seq, last_hash, now = await repo.lock_head(session)
        fields: dict[str, Any] = {
            "seq": seq + 1,
            "at": now,
            "actor": actor.principal,
            "actor_role": actor.role,
            "actor_user": actor.user,
            "ip": actor.ip,
            "request_id": actor.request_id,
            "action": action.value,
            "target": target,
            "before": before,
            "after": after,
            "prev_hash": last_hash or GENESIS,
        }
        row = ChainedRow(**fields, hash=row_hash(**fields))
        await repo.append(session, row)
        return row

    async def record_alone(
        self,
        actor: Actor,
        action: Action,
        target: str,
        before: Summary | None = None,
        after: Summary | None = None,
    ) -> ChainedRow:
        """Append a row in a transaction of its own (for an action outside PostgreSQL)."""
        # Checked first: the failure log line below repeats the summary.
        refuse_secrets(target, actor.principal, summaries=(normalise(before), normalise(after)))
        try:
            async with session_scope(self._sessionmaker, write=True) as session:
                return await self.record(session, actor, action, target, before, after)
        except Exception:
            log.error(
                "audit_write_failed",
                actor=actor.principal,
                actor_role=actor.role,
                ip=actor.ip,
                audit_request_id=actor.request_id,
                action=action.value,
                target=target,
                after=normalise(after),
            )
            raise

    async def page(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since: datetime | None = None,
        before_seq: int | None = None,
        limit: int = 100,
    ) -> AuditPage:
        """Rows matching every given filter, newest first.

        `action` is an exact name (`api_key.revoke`) or a family (`api_key`); `actor`
        matches the principal or the user behind it.
        """
        exact, family = (action, None) if action is None or "." in action else (None, action)
        async with session_scope(self._sessionmaker) as session:
            rows = await repo.page(
                session,
                actor=actor,
                action=exact,
                action_family=family,
                target=target,
                since=since,
                before_seq=before_seq,
                limit=limit + 1,
            )
        more = len(rows) > limit
        rows = rows[:limit]
        return AuditPage(rows, rows[-1].seq if more else None)
