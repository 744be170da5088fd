"""The shipped sample: valid records, history to show, and reproducible from its script."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

from gateway.demo import sample
from gateway.work.records import ParcelResult, PartyResult

ROOT = Path(__file__).resolve().parents[2]


def test_every_sample_record_is_a_valid_result() -> None:
    parcels = [ParcelResult.model_validate(r) for r in sample.parcel_scrapes()]
    parties = [PartyResult.model_validate(r) for r in sample.party_scrapes()]
    assert len({p.parcel_id for p in parcels}) == 300
    assert len({p.state for p in parcels}) == 5
    assert len(parties) > 100
    known = {p.parcel_id for p in parcels}
    assert all(set(p.parcel_ids) <= known for p in parties)


def test_parcels_have_history_with_distinct_scrape_times() -> None:
    scrapes = sample.parcel_scrapes()
    per_parcel = Counter(r["parcel_id"] for r in scrapes)
    assert min(per_parcel.values()) >= 2
    assert max(per_parcel.values()) >= 4
    # Seeding skips a scrape by (parcel, scraped_at): two alike would collapse into one.
    assert len({(r["parcel_id"], r["scraped_at"]) for r in scrapes}) == len(scrapes)
    statuses = {r["lien_status"] for r in scrapes}
    assert {"delinquent", "active", "redeemed", "none"} <= statuses


def test_the_script_reproduces_the_committed_files(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    (copy / "scripts").mkdir(parents=True)
    (copy / "scripts" / "make_demo_data.py").write_bytes(
        (ROOT / "scripts" / "make_demo_data.py").read_bytes()
    )
    subprocess.run(
        [sys.executable, str(copy / "scripts" / "make_demo_data.py")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    for name in ("parcels.jsonl.gz", "parties.jsonl.gz"):
        made = (copy / "gateway" / "demo" / "data" / name).read_bytes()
        assert made == (sample.DATA / name).read_bytes(), name
