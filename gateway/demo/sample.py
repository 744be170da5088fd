"""The demo sample shipped with the package: parcels with several scrapes, and parties.

`data/parcels.jsonl.gz` holds one parcel per line with its scrapes (`snapshots`: when,
tax due, lien status); `data/parties.jsonl.gz` one `PartyResult` per line. Both are
written by `scripts/make_demo_data.py` (deterministic; edit the script, not the files).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"
PARCELS_FILE = DATA / "parcels.jsonl.gz"
PARTIES_FILE = DATA / "parties.jsonl.gz"
# Marks every seeded record (`extra`), so a reader can tell sample data from scraped.
EXTRA = {"sample": "gateway demo"}


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def parcels() -> list[dict[str, Any]]:
    """Every sample parcel as stored: its fields and its `snapshots`."""
    return list(_lines(PARCELS_FILE))


def parcel_scrapes() -> list[dict[str, Any]]:
    """One `ParcelResult` per scrape of every sample parcel, oldest scrape first."""
    out: list[dict[str, Any]] = []
    for parcel in parcels():
        base = {k: v for k, v in parcel.items() if k != "snapshots"}
        out.extend({**base, **snap, "extra": EXTRA} for snap in parcel["snapshots"])
    return sorted(out, key=lambda r: (r["scraped_at"], r["parcel_id"]))


def party_scrapes() -> list[dict[str, Any]]:
    """One `PartyResult` per sample party."""
    return [{**party, "extra": EXTRA} for party in _lines(PARTIES_FILE)]
