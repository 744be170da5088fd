"""`POST /v1/jobs/upload`: CSV and NDJSON files of items, in process on real backends.

Size (declared, actual, chunked), request and part types, sniffed content, columns, bad
rows by line number (never echoed), the tier's cap, empty files, the happy paths, and
the same file uploaded twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.core.settings import Settings
from tests.support.jobs import JobsHarness, jobs_harness
from tests.support.public import write_tiers
from tests.support.work import lease

UPLOAD = "/v1/jobs/upload"
# Small limits, so the tests are small: the upload limit is above the general one, which
# proves the general one does not apply to uploads.
MAX_BODY = 2048
MAX_UPLOAD = 16_384


@pytest.fixture
async def h(settings: Settings, tmp_path: Path) -> AsyncIterator[JobsHarness]:
    tiers = write_tiers(
        tmp_path / "tiers.json",
        open={"rate_per_s": 1000, "burst": 1000, "daily_quota": 0, "max_page_size": 100},
        tiny={
            "rate_per_s": 1000,
            "burst": 1000,
            "daily_quota": 0,
            "max_page_size": 100,
            "max_job_items": 5,
        },
    )
    async with jobs_harness(
        settings, tiers_file=tiers, max_body_bytes=MAX_BODY, job_upload_max_bytes=MAX_UPLOAD
    ) as harness:
        yield harness


async def upload(
    h: JobsHarness,
    key: str,
    content: bytes,
    *,
    filename: str = "items.csv",
    content_type: str = "text/csv",
    kind: str = "parcel_refresh",
    **fields: str,
) -> httpx.Response:
    """POST the file as the `file` part of a multipart form with `kind` and `fields`."""
    return await h.public.post(
        UPLOAD,
        files={"file": (filename, content, content_type)},
        data={"kind": kind, **fields},
        headers={"X-API-Key": key},
    )


def csv_of(ids: list[str], platform: str = "alpha") -> bytes:
    return ("platform,parcel_id\n" + "".join(f"{platform},{i}\n" for i in ids)).encode()


def ndjson_of(ids: list[str], platform: str = "alpha") -> bytes:
    return "".join(json.dumps({"platform": platform, "parcel_id": i}) + "\n" for i in ids).encode()


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


# -- happy paths -----------------------------------------------------------------------


async def test_a_csv_upload_bigger_than_max_body_bytes_becomes_one_job(h: JobsHarness) -> None:
    key = await h.key(tier="open")
    ids = [f"csv-{i:04d}" for i in range(120)]
    # Excel's habits: a BOM, CRLF line ends, columns in another order, extra columns,
    # spaces around values, blank lines, a repeated row (merged into one item).
    rows = "".join(f"x{i},{pid} , alpha ,note\r\n" for i, pid in enumerate(ids))
    content = (
        b"\xef\xbb\xbf"
        + f"Row,Parcel_ID,Platform,Comment\r\n\r\n{rows}\r\nz,{ids[0]},alpha,again\r\n".encode()
    )
    assert MAX_BODY < len(content) < MAX_UPLOAD
    response = await upload(h, key, content, label="auction thursday", priority="5")
    assert response.status_code == 201, response.text
    job = response.json()
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["kind"] == "parcel_refresh"
    assert job["label"] == "auction thursday"
    assert job["priority"] == 5
    assert job["estimate"]["items"] == 120
    assert job["estimate"]["duplicate_items"] == 1
    assert job["progress"]["total"] == 120
    # The items are real tasks on the parcel queue, carrying the job.
    token = await h.worker_token()
    leased: list[dict[str, Any]] = []
    while batch := await lease(h.parcel, token, limit=50):
        leased += batch
    assert sorted(t["key"] for t in leased) == ids
    assert {t["payload"]["job_id"] for t in leased} == {job["id"]}
    # A JSON body of the same size is still held to MAX_BODY_BYTES.
    body = {"kind": "parcel_refresh", "items": [{"platform": "alpha", "parcel_id": i} for i in ids]}
    too_big = await h.public.post("/v1/jobs", json=body, headers={"X-API-Key": key})
    problem(too_big, 413)


async def test_an_ndjson_upload_becomes_one_job(h: JobsHarness) -> None:
    key = await h.key(tier="open")
    content = ndjson_of(["nd-1", "nd-2"]) + b"\n" + ndjson_of(["nd-3"])
    response = await upload(
        h, key, content, filename="items.ndjson", content_type="application/x-ndjson"
    )
    assert response.status_code == 201, response.text
    job = response.json()
    items = await h.public.get(f"/v1/jobs/{job['id']}/items", headers={"X-API-Key": key})
    assert [(i["platform"], i["id"]) for i in items.json()["items"]] == [
        ("alpha", "nd-1"),
        ("alpha", "nd-2"),
        ("alpha", "nd-3"),
    ]


async def test_a_party_upload_reads_the_party_id_column(h: JobsHarness) -> None:
    key = await h.key(tier="open")
    content = b"platform;party_id\nalpha;owner-1\nalpha;owner-2\n"  # a `;` spreadsheet
    response = await upload(h, key, content, kind="party_refresh")
    assert response.status_code == 201, response.text
    assert response.json()["kind"] == "party_refresh"
    assert response.json()["estimate"]["items"] == 2


async def test_the_same_file_again_answers_the_open_job_not_a_second_one(h: JobsHarness) -> None:
    key = await h.key(tier="open")
    content = csv_of(["dup-1", "dup-2"])
    first = await upload(h, key, content)
    assert first.status_code == 201, first.text
    job_id = first.json()["id"]

    again = await upload(h, key, content, filename="renamed.csv")
    assert again.status_code == 200, again.text
    assert again.json()["id"] == job_id
    assert again.headers["Job-Match"] == f"upload-sha256={hashlib.sha256(content).hexdigest()}"
    assert again.headers["Content-Location"] == f"/v1/jobs/{job_id}"
    assert "Location" not in again.headers
    assert await h.count("SELECT count(*) FROM jobs") == 1

    # Another principal's identical file is its own job.
    other = await h.key(tier="open", user="bob")
    assert (await upload(h, other, content)).status_code == 201
    # Once the first job is finished (here: cancelled), the same file is a new job.
    cancel = await h.public.post(f"/v1/jobs/{job_id}/cancel", headers={"X-API-Key": key})
    assert cancel.status_code == 200, cancel.text
    fresh = await upload(h, key, content)
    assert fresh.status_code == 201, fresh.text
    assert fresh.json()["id"] != job_id


# -- size --------------------------------------------------------------------------------


async def test_a_declared_size_over_the_limit_is_refused_before_reading(h: JobsHarness) -> None:
    key = await h.key(tier="open")
    read: list[bytes] = []

    async def body() -> AsyncIterator[bytes]:
        read.append(b"x")
        yield b"x" * 100

    response = await h.public.post(
        UPLOAD,
        content=body(),
        headers={
            "X-API-Key": key,
            "Content-Type": "multipart/form-data; boundary=b",
            "Content-Length": str(MAX_UPLOAD + 1),
        },
    )
    assert str(MAX_UPLOAD) in problem(response, 413)["detail"]
    assert read == []


async def test_a_body_longer_than_its_content_length_is_cut_off_at_the_limit(
    h: JobsHarness,
) -> None:
    key = await h.key(tier="open")
    content = csv_of([f"big-{i:05d}" for i in range(1500)])
    assert len(content) > MAX_UPLOAD
    files = {"file": ("items.csv", content, "text/csv")}
    request = h.public.build_request(
        "POST", UPLOAD, files=files, data={"kind": "parcel_refresh"}, headers={"X-API-Key": key}
    )
    request.headers["Content-Length"] = "1000"  # a lie: the body is much longer
    response = await h.public.send(request)
    assert str(MAX_UPLOAD) in problem(response, 413)["detail"]
    assert await h.count("SELECT count(*) FROM jobs") == 0


@pytest.mark.parametrize(("rows", "status"), [(30, 422), (200, 413)])
async def test_a_chunked_body_is_held_to_the_upload_limit_not_max_body_bytes(
    h: JobsHarness, rows: int, status: int
) -> None:
    key = await h.key(tier="open")
    boundary = "upload-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="kind"\r\n\r\nparcel_refresh\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
        "Content-Type: text/csv\r\n\r\nplatform,parcel_id\r\n"
    ).encode()
    # Every row is bad (upper-case platform): a body that gets through is a 422, with
    # nothing submitted.
    lines = [f"ALPHA,chunk-{i:06d}-{'x' * 80}\r\n".encode() for i in range(rows)]
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = len(head) + sum(map(len, lines)) + len(tail)

    async def body() -> AsyncIterator[bytes]:
        yield head
        for line in lines:
            yield line
        yield tail

    response = await h.public.post(
        UPLOAD,
        content=body(),
        headers={"X-API-Key": key, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    doc = problem(response, status)
    if status == 413:
        assert size > MAX_UPLOAD
        assert str(MAX_UPLOAD) in doc["detail"]
    else:
        assert MAX_BODY < size < MAX_UPLOAD
        assert len(doc["errors"]) == rows
    assert await h.count("SELECT count(*) FROM jobs") == 0


# -- types -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"kind": "parcel_refresh", "items": []}'),
        ("application/x-www-form-urlencoded", b"kind=parcel_refresh"),
        ("text/csv", b"platform,parcel_id\nalpha,p-1\n"),
    ],
)
async def test_a_request_that_is_not_multipart_is_a_415(
    h: JobsHarness, content_type: str, body: bytes
) -> None:
    key = await h.key(tier="open")
    response = await h.public.post(
        UPLOAD, content=body, headers={"X-API-Key": key, "Content-Type": content_type}
    )
    assert "multipart/form-data" in problem(response, 415)["detail"]


@pytest.mark.parametrize(
    "part_type",
    [
        "application/pdf",
        "application/json",
        "application/json-seq",
        "image/png",
        "text/csv; charset=iso-8859-1",
    ],
)
async def test_a_file_part_of_another_type_is_a_415(h: JobsHarness, part_type: str) -> None:
    key = await h.key(tier="open")
    response = await upload(h, key, csv_of(["t-1"]), content_type=part_type)
    problem(response, 415)
    assert await h.count("SELECT count(*) FROM jobs") == 0


@pytest.mark.parametrize(
    ("content_type", "content", "says"),
    [
        ("application/octet-stream", b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 40, "ZIP"),
        ("text/csv", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "PDF"),
        ("text/csv", b"platform,parcel_id\nalpha,p\x00-1\n", "binary"),
        ("text/plain", b"platform,parcel_id\nalpha,caf\xe9\n", "UTF-8"),
        ("text/csv", b'{"platform": "alpha", "parcel_id": "p-1"}\n', "JSON"),
        ("text/csv", b'[{"platform": "alpha", "parcel_id": "p-1"}]', "JSON"),
        ("application/x-ndjson", b'[{"platform": "alpha", "parcel_id": "p-1"}]', "array"),
        ("application/x-ndjson", b"platform,parcel_id\nalpha,p-1\n", "NDJSON"),
        ("text/plain", b"\xff\xfep\x00l\x00a\x00", "UTF-16"),
    ],
)
async def test_sniffed_content_that_is_not_text_of_the_declared_format_is_a_415(
    h: JobsHarness, content_type: str, content: bytes, says: str
) -> None:
    key = await h.key(tier="open")
    response = await upload(h, key, content, content_type=content_type, filename="items")
    assert says in problem(response, 415)["detail"]


async def test_a_generic_type_goes_by_the_file_name_then_the_content(h: JobsHarness) -> None:
    key = await h.key(tier="open")
    # Rows bad on purpose: the 422 shows which parser read the file, and submits nothing.
    as_ndjson = await upload(
        h,
        key,
        b'{"platform": "Bad!"}\n',
        content_type="application/octet-stream",
        filename="x.ndjson",
    )
    assert [e["loc"] for e in problem(as_ndjson, 422)["errors"]] == [
        ["line", 1, "platform"],
        ["line", 1, "parcel_id"],
    ]
    by_content = await upload(
        h,
        key,
        b'\n{"platform": "alpha", "parcel_id": ""}\n',
        content_type="text/plain",
        filename="items.txt",
    )
    assert [e["loc"] for e in problem(by_content, 422)["errors"]] == [["line", 2, "parcel_id"]]
    as_csv = await upload(h, key, b"platform\nalpha\n", content_type="application/octet-stream")
    assert "parcel_id" in problem(as_csv, 422)["detail"]


# -- content -----------------------------------------------------------------------------


async def test_missing_csv_columns_are_named(h: JobsHarness) -> None:
    key = await h.key(tier="open")
    body = problem(await upload(h, key, b"platform,id\nalpha,p-1\n"), 422)
    assert body["errors"] == [
        {"loc": ["body", "file", "header"], "msg": "missing column 'parcel_id'", "type": "missing"}
    ]
    assert "parcel_id" in body["detail"]
    party = problem(await upload(h, key, csv_of(["p-1"]), kind="party_refresh"), 422)
    assert [e["msg"] for e in party["errors"]] == ["missing column 'party_id'"]
    neither = problem(await upload(h, key, b"county,apn\nx,y\n"), 422)
    assert [e["msg"] for e in neither["errors"]] == [
        "missing column 'platform'",
        "missing column 'parcel_id'",
    ]


async def test_bad_rows_are_listed_by_line_number_without_their_content(h: JobsHarness) -> None:
    key = await h.key(tier="open")
    secret = "SSN-078-05-1120"
    content = (
        "platform,parcel_id,owner\n"  # line 1
        "alpha,good-1,x\n"  # 2
        f"Not A Platform,{secret},x\n"  # 3: platform malformed
        "\n"  # 4: blank, skipped
        f"zeta,{secret}-2,x\n"  # 5: unknown platform
        f"alpha,\n"  # 6: empty id
        "alpha\n"  # 7: id missing
        f'alpha,good-2,"{secret}\nsecond line"\n'  # 8-9: a quoted newline in a column we ignore
        f"alpha,{'k' * 513}\n"  # 10: id too long
    ).encode()
    body = problem(await upload(h, key, content), 422)
    assert [e["loc"] for e in body["errors"]] == [
        ["line", 3, "platform"],
        ["line", 5, "platform"],
        ["line", 6, "parcel_id"],
        ["line", 7, "parcel_id"],
        ["line", 10, "parcel_id"],
    ]
    assert body["detail"] == "5 item(s) are invalid"
    assert secret not in json.dumps(body)
    assert "k" * 100 not in json.dumps(body)
    assert await h.count("SELECT count(*) FROM jobs") == 0


async def test_bad_ndjson_lines_are_listed_by_line_number(h: JobsHarness) -> None:
    key = await h.key(tier="open")
    content = (
        b'{"platform": "alpha", "parcel_id": "n-1"}\n'
        b'{"platform": "alpha", "parcel_id": "secret-value-1"\n'  # not JSON
        b'{"platform": "alpha", "parcel_id": "n-2", "owner": "secret-value-2"}\n'  # extra key
        b'"secret-value-3"\n'  # not an object
        b'{"platform": "alpha", "parcel_id": 7}\n'  # not a string
    )
    body = problem(await upload(h, key, content, content_type="application/x-ndjson"), 422)
    assert [(e["loc"], e["type"]) for e in body["errors"]] == [
        (["line", 2], "json_invalid"),
        (["line", 3, "owner"], "extra_forbidden"),
        (["line", 4], "model_type"),
        (["line", 5, "parcel_id"], "string_type"),
    ]
    assert "secret-value" not in json.dumps(body)


async def test_more_than_fifty_bad_rows_list_the_first_fifty(h: JobsHarness) -> None:
    key = await h.key(tier="open")
    content = b"platform,parcel_id\n" + b"".join(b"BAD,x\n" for _ in range(60))
    body = problem(await upload(h, key, content), 422)
    assert len(body["errors"]) == 50
    assert body["errors"][0]["loc"] == ["line", 2, "platform"]
    assert body["errors"][-1]["loc"] == ["line", 51, "platform"]
    assert body["detail"] == "60 item(s) are invalid; the first 50 are listed"


async def test_more_items_than_the_tier_allows_is_a_422_naming_the_cap(h: JobsHarness) -> None:
    key = await h.key(tier="tiny")  # max_job_items 5
    five = csv_of([f"cap-{i}" for i in range(5)] + ["cap-0"])  # 5 unique items: fine
    assert (await upload(h, key, five)).status_code == 201
    # The 6th unique item stops the reading: a bad row after it is never looked at.
    six = csv_of([f"cap-{i}" for i in range(6)]) + b"BAD,row\n"
    body = problem(await upload(h, key, six), 422)
    assert "at most 5" in body["detail"]
    assert body["errors"] == [
        {
            "loc": ["body", "file"],
            "msg": "your tier allows at most 5 items per job",
            "type": "too_long",
        }
    ]


@pytest.mark.parametrize(
    "content",
    [b"", b"  \r\n\n", b"\xef\xbb\xbf", b"platform,parcel_id\r\n", b"platform,parcel_id\n,\n\n"],
)
async def test_an_empty_file_is_a_422(h: JobsHarness, content: bytes) -> None:
    key = await h.key(tier="open")
    body = problem(await upload(h, key, content), 422)
    assert body["errors"][0]["loc"] == ["body", "file"]
    assert await h.count("SELECT count(*) FROM jobs") == 0


# -- the form ----------------------------------------------------------------------------


async def test_form_fields_are_checked_like_a_job_body(h: JobsHarness) -> None:
    key = await h.key(tier="open")
    headers = {"X-API-Key": key}
    files = {"file": ("a.csv", csv_of(["f-1"]), "text/csv")}
    no_kind = await h.public.post(UPLOAD, files=files, headers=headers)
    assert problem(no_kind, 422)["errors"][0]["loc"] == ["body", "kind"]
    bad = await upload(h, key, csv_of(["f-1"]), kind="world_peace", priority="9999")
    assert sorted(e["loc"][1] for e in problem(bad, 422)["errors"]) == ["kind", "priority"]
    unknown = await upload(h, key, csv_of(["f-1"]), webhook="https://example.test")
    assert problem(unknown, 422)["errors"][0]["loc"] == ["body", "webhook"]
    no_file = await h.public.post(
        UPLOAD, data={"kind": "parcel_refresh"}, files={"other": ("x", b"y")}, headers=headers
    )
    assert problem(no_file, 422)["errors"][0]["loc"] == ["body", "other"]
    only_fields = await h.public.post(
        UPLOAD,
        content=b'--b\r\nContent-Disposition: form-data; name="kind"\r\n\r\nparcel_refresh\r\n--b--\r\n',
        headers={**headers, "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert problem(only_fields, 422)["errors"][0]["loc"] == ["body", "file"]
    cut_short = await h.public.post(
        UPLOAD,
        content=b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\nplat',
        headers={**headers, "Content-Type": "multipart/form-data; boundary=b"},
    )
    problem(cut_short, 400)
    assert await h.count("SELECT count(*) FROM jobs") == 0


async def test_uploads_need_an_account(h: JobsHarness) -> None:
    response = await h.public.post(
        UPLOAD,
        files={"file": ("a.csv", csv_of(["f-1"]), "text/csv")},
        data={"kind": "parcel_refresh"},
        headers={"X-API-Key": "not-a-key"},
    )
    problem(response, 401)
