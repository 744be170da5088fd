"""Walk the audit chain from its first row and report the first broken link.

Checked for every row, in `seq` order:

1. its `seq` is the previous one plus one (a gap: rows were removed);
2. its `hash` matches its contents (it was altered, or written by hand);
3. its `prev_hash` is the previous row's `hash` (the row before it was replaced, or this
   one was inserted with a hash of its own contents).

A chain can only be rebuilt from the altered row onwards by someone who recomputes every
later hash, and the newest rows can be deleted without a trace in the chain itself.
Both are caught by comparing the head this walk reports with one recorded earlier
somewhere else: `expect_head` (`gateway audit verify --head SEQ:HASH`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.audit import repository as repo
from gateway.audit.chain import GENESIS, hash_of
from gateway.kit.outage import session_scope

_BATCH = 1000


@dataclass(frozen=True)
class Verdict:
    """The outcome of a walk: rows checked, the head, and the first broken link if any."""

    rows: int
    head_seq: int
    head_hash: str
    broken_at: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        """Whether every link held."""
        return self.broken_at is None


async def verify_chain(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    expect_head: tuple[int, str] | None = None,
) -> Verdict:
    """Check every link of the trail (and, given `expect_head`, that the head is still there)."""
    seq, prev, rows = 0, GENESIS, 0
    async with session_scope(sessionmaker) as session:
        expected_hash: str | None = None
        while batch := await repo.after(session, seq, _BATCH):
            for row in batch:
                if row.seq != seq + 1:
                    gap = f"{seq + 1}" if row.seq == seq + 2 else f"{seq + 1}..{row.seq - 1}"
                    return Verdict(rows, seq, prev, seq + 1, f"row {gap} missing (removed)")
                if hash_of(row) != row.hash:
                    problem = f"row {row.seq} altered: its hash does not match its contents"
                    return Verdict(rows, seq, prev, row.seq, problem)
                if row.prev_hash != prev:
                    problem = (
                        f"row {row.seq} does not follow row {seq}: its prev_hash is not that"
                        " row's hash (a row was replaced or inserted)"
                    )
                    return Verdict(rows, seq, prev, row.seq, problem)
                seq, prev, rows = row.seq, row.hash, rows + 1
                if expect_head is not None and row.seq == expect_head[0]:
                    expected_hash = row.hash
    if expect_head is not None:
        head_seq, head_hash = expect_head
        if expected_hash is None:
            problem = f"the expected head row {head_seq} is gone (the newest rows were removed)"
            return Verdict(rows, seq, prev, seq + 1, problem)
        if expected_hash != head_hash:
            problem = f"row {head_seq} is not the expected head (the chain was rewritten)"
            return Verdict(rows, seq, prev, head_seq, problem)
    return Verdict(rows, seq, prev)
