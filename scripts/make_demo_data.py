"""Write the demo sample `gateway demo` seeds: gateway/demo/data/{parcels,parties}.jsonl.gz.

Deterministic (one seeded RNG), so re-running it reproduces the committed files byte for
byte; edit this script, not the files. The sample is invented but shaped like real
county data: parcel id formats per county, street names of the county's city, owners that
are people, trusts and LLCs, and a tax-sale story told across 2-4 scrapes per parcel
(delinquent, a certificate sold, interest accruing, redeemed).

    python scripts/make_demo_data.py
"""

from __future__ import annotations

import gzip
import json
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "gateway" / "demo" / "data"
PARCELS = 300

# platform: (state, county, city, zip prefix, parcel id format, auction date, streets)
COUNTIES = {
    "miami_dade": (
        "FL",
        "Miami-Dade",
        "Miami",
        "331",
        "{d2}-{d4}-{d3}-{d4}",
        "2027-06-01",
        ["NW 7th St", "SW 8th St", "Biscayne Blvd", "Coral Way", "NE 2nd Ave"],
    ),
    "broward": (
        "FL",
        "Broward",
        "Fort Lauderdale",
        "333",
        "{d4}{d2}{d2}{d4}",
        "2027-06-01",
        ["Las Olas Blvd", "Sunrise Blvd", "NE 15th Ave", "SW 4th St"],
    ),
    "hillsborough": (
        "FL",
        "Hillsborough",
        "Tampa",
        "336",
        "A-{d2}-{d2}-{d2}-{d3}-{d6}",
        "2027-06-01",
        ["Bayshore Blvd", "N Florida Ave", "E Columbus Dr", "W Kennedy Blvd"],
    ),
    "maricopa": (
        "AZ",
        "Maricopa",
        "Phoenix",
        "850",
        "{d3}-{d2}-{d3}A",
        "2027-02-09",
        ["E Camelback Rd", "N 7th St", "W Indian School Rd", "E McDowell Rd"],
    ),
    "pima": (
        "AZ",
        "Pima",
        "Tucson",
        "857",
        "{d3}-{d2}-{d4}",
        "2027-02-23",
        ["E Speedway Blvd", "N Oracle Rd", "S 6th Ave", "E Broadway Blvd"],
    ),
    "cook": (
        "IL",
        "Cook",
        "Chicago",
        "606",
        "{d2}-{d2}-{d3}-{d3}-0000",
        "2027-05-12",
        ["W Division St", "N Milwaukee Ave", "S Halsted St", "W 63rd St", "N Clark St"],
    ),
    "essex": (
        "NJ",
        "Essex",
        "Newark",
        "071",
        "0714-{d5}-0000-{d5}",
        "2027-10-20",
        ["Broad St", "Springfield Ave", "Bergen St", "Ferry St"],
    ),
    "denver": (
        "CO",
        "Denver",
        "Denver",
        "802",
        "{d5}{d2}{d3}000",
        "2027-11-04",
        ["E Colfax Ave", "S Broadway", "W 38th Ave", "Federal Blvd"],
    ),
    "arapahoe": (
        "CO",
        "Arapahoe",
        "Aurora",
        "800",
        "2073-{d2}-{d1}-{d2}-{d3}",
        "2027-11-18",
        ["E Iliff Ave", "S Havana St", "E Mississippi Ave"],
    ),
}
FIRST = [
    "Maria",
    "James",
    "Linda",
    "Robert",
    "Patricia",
    "Luis",
    "Aisha",
    "Wei",
    "Daniel",
    "Rosa",
    "Michael",
    "Grace",
    "Thomas",
    "Nadia",
    "Kevin",
    "Olga",
    "Samuel",
    "Priya",
]
LAST = [
    "Garcia",
    "Johnson",
    "Nguyen",
    "Smith",
    "Rodriguez",
    "Okafor",
    "Kowalski",
    "Chen",
    "Brown",
    "Martinez",
    "Patel",
    "Williams",
    "Hernandez",
    "Novak",
    "Davis",
    "Rossi",
]
COMPANIES = [
    "Sunbelt Holdings LLC",
    "Red Oak Properties LLC",
    "Lakeview Capital LLC",
    "Harbor Street Partners LP",
    "Mesa Verde Homes Inc",
    "Prairie Land Trust",
    "Northside Rentals LLC",
    "Granite Peak Investments LLC",
    "Coastal Realty Group Inc",
    "First Ward Housing LLC",
]
START = datetime(2026, 8, 17, 9, 0, tzinfo=UTC)  # first scrape of the sample


def _parcel_id(rng: random.Random, pattern: str) -> str:
    out = pattern
    for width in (6, 5, 4, 3, 2, 1):
        while f"{{d{width}}}" in out:
            out = out.replace(f"{{d{width}}}", f"{rng.randrange(10**width):0{width}d}", 1)
    return out


def _money(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01")))


def _owners(rng: random.Random) -> list[tuple[str, str]]:
    people = [(f"{first} {last}".upper(), "person") for first in FIRST for last in LAST]
    rng.shuffle(people)
    firms = [(c.upper(), "organization") for c in COMPANIES]
    # Firms own several parcels each (as investors do), people one or two.
    return firms * 8 + people[:180]


def _story(rng: random.Random, due: Decimal) -> list[tuple[int, Decimal, str]]:
    """(days after START, tax due, lien status) per scrape."""
    scrapes = rng.choice((2, 3, 3, 4))
    days = sorted(rng.sample(range(0, 105), scrapes))
    kind = rng.random()
    out = []
    for i, day in enumerate(days):
        if kind < 0.15:  # paid on time: nothing owed
            out.append((day, Decimal(0), "none"))
        elif kind < 0.45 and i == scrapes - 1 and i > 0:  # redeemed at the end
            out.append((day, Decimal(0), "redeemed"))
        else:
            status = "delinquent" if i == 0 else "active"
            accrued = due * (1 + Decimal("0.015") * i)  # 1.5% a month, roughly
            out.append((day, accrued, status))
    return out


def _write(path: Path, rows: list[dict[str, object]]) -> None:
    # mtime=0: the same rows give the same bytes, so a re-run shows no diff.
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        for row in rows:
            f.write((json.dumps(row, separators=(",", ":")) + "\n").encode())


def main() -> None:
    rng = random.Random(17)  # noqa: S311 - reproducible sample data, not secrets
    owners = _owners(rng)
    rng.shuffle(owners)
    parcels = []
    seen: set[str] = set()
    platforms = list(COUNTIES)
    while len(parcels) < PARCELS:
        platform = platforms[len(parcels) % len(platforms)]
        state, county, city, zip3, pattern, auction, streets = COUNTIES[platform]
        pid = _parcel_id(rng, pattern)
        if pid in seen:
            continue
        seen.add(pid)
        owner, kind = owners[len(parcels) % len(owners)]
        assessed = Decimal(rng.randrange(45_000, 1_250_000, 500))
        due = assessed * Decimal(rng.uniform(0.012, 0.028)) * rng.choice((1, 1, 2, 3))
        street = f"{rng.randint(10, 9899)} {rng.choice(streets)}"
        address = f"{street}, {city}, {state} {zip3}{rng.randrange(100):02d}"
        snapshots = [
            {
                "scraped_at": (START + timedelta(days=d, minutes=rng.randrange(600))).isoformat(),
                "tax_amount_due": _money(amount),
                "lien_status": status,
            }
            for d, amount, status in _story(rng, due)
        ]
        parcels.append(
            {
                "parcel_id": pid,
                "state": state,
                "county": county,
                "platform": platform,
                "address": address,
                "owner_name": owner,
                "owner_kind": kind,
                "assessed_value": _money(assessed),
                "auction_date": auction,
                "source_url": f"https://{platform.replace('_', '')}.county.example/parcels/{pid}",
                "snapshots": snapshots,
            }
        )
    parties: dict[str, dict[str, object]] = {}
    for p in parcels:
        name = str(p["owner_name"])
        party = parties.setdefault(
            name,
            {
                "party_id": f"P-{len(parties) + 1001}",
                "name": name,
                "kind": p["owner_kind"],
                "platform": p["platform"],
                "addresses": [
                    {
                        "line1": str(p["address"]).split(",")[0],
                        "city": str(p["address"]).split(", ")[1],
                        "state": p["state"],
                        "postal_code": str(p["address"])[-5:],
                        "country": "US",
                    }
                ],
                "parcel_ids": [],
                "documents": [],
                "source_url": (
                    f"https://{str(p['platform']).replace('_', '')}.county.example"
                    f"/parties/P-{len(parties) + 1001}"
                ),
                "scraped_at": p["snapshots"][0]["scraped_at"],  # type: ignore[index]
            },
        )
        party["parcel_ids"].append(p["parcel_id"])  # type: ignore[attr-defined]
        recorded = date(2026, 1, 1) + timedelta(days=rng.randrange(200))
        party["documents"].append(  # type: ignore[attr-defined]
            {
                "document_id": f"D-{rng.randrange(10**8):08d}",
                "type": "deed",
                "recorded_date": recorded.isoformat(),
                "url": None,
            }
        )
    OUT.mkdir(parents=True, exist_ok=True)
    for p in parcels:
        del p["owner_kind"]
    _write(OUT / "parcels.jsonl.gz", parcels)
    _write(OUT / "parties.jsonl.gz", list(parties.values()))
    scrapes = sum(len(p["snapshots"]) for p in parcels)  # type: ignore[arg-type]
    print(f"{len(parcels)} parcels, {scrapes} scrapes, {len(parties)} parties -> {OUT}")


if __name__ == "__main__":
    main()
