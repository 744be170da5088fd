"""The hash chain: what exactly is hashed, so `record` and `verify` agree byte for byte.

Each row's `hash` is SHA-256 (hex) over the canonical JSON of its fields, the previous
row's hash (`prev_hash`) and its `seq` included: keys sorted, no whitespace, UTF-8, the
timestamp as ISO 8601 in UTC with microseconds. Changing any field of a row changes its
hash; removing or inserting a row breaks the next row's `prev_hash` (or leaves a gap
in `seq`). The first row's `prev_hash` is `GENESIS`.

The summaries are hashed as JSON values, so they are normalised (`normalise`) before
both hashing and storing: what comes back from JSONB hashes to the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64

Summary = dict[str, Any]


@dataclass(frozen=True)
class ChainedRow:
    """One audit row as stored."""

    seq: int
    at: datetime
    actor: str
    actor_role: str
    actor_user: str | None
    ip: str | None
    request_id: str | None
    action: str
    target: str
    before: Summary | None
    after: Summary | None
    prev_hash: str
    hash: str


def normalise(summary: Summary | None) -> Summary | None:
    """The summary as JSON would give it back (tuples become lists, keys strings)."""
    if summary is None:
        return None
    value: Summary = json.loads(json.dumps(summary, default=str))
    return value


def row_hash(
    *,
    seq: int,
    at: datetime,
    actor: str,
    actor_role: str,
    actor_user: str | None,
    ip: str | None,
    request_id: str | None,
    action: str,
    target: str,
    before: Summary | None,
    after: Summary | None,
    prev_hash: str,
) -> str:
    """The hash of a row with these fields."""
    document = {
        "seq": seq,
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "actor_role": actor_role,
        "actor_user": actor_user,
        "ip": ip,
        "request_id": request_id,
        "action": action,
        "target": target,
        "before": before,
        "after": after,
        "prev_hash": prev_hash,
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def hash_of(row: ChainedRow) -> str:
    """What `row.hash` must be, given the rest of the row."""
    return row_hash(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        actor_role=row.actor_role,
        actor_user=row.actor_user,
        ip=row.ip,
        request_id=row.request_id,
        action=row.action,
        target=row.target,
        before=row.before,
        after=row.after,
        prev_hash=row.prev_hash,
    )
