"""The deterministic split: a task's side follows from its (platform, key) alone.

A `random() < share` switch sends a retried or re-enqueued unit to either side by chance,
so one parcel's history would mix workers and a migration could not be reasoned about.
Here the unit's position is a stable hash in [0, 1): the first 8 bytes of BLAKE2b over
platform and key (a NUL between them, which neither may contain), read as an unsigned
integer; its top 53 bits over 2^53 (exactly representable, so never 1.0). A unit goes
to Celery when its position is below the share.

Consequences: the same unit always goes the same way at a given share; raising a share
only moves units from native to Celery (those below the old share stay), lowering it
only moves them back; and over many keys the realised share is the configured one
(BLAKE2b is uniform), within ±2 percentage points over 10,000 keys (tests/work/routing).
"""

from __future__ import annotations

import hashlib

_SCALE = float(1 << 53)


def position(platform: str, key: str) -> float:
    """Where (platform, key) falls in [0, 1)."""
    digest = hashlib.blake2b(f"{platform}\0{key}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 11) / _SCALE


def goes_to_celery(platform: str, key: str, share: float) -> bool:
    """Whether the unit goes to Celery at `share` (0: never, 1: always)."""
    return position(platform, key) < share
