"""The webhook body schemas (`gateway/webhooks/schemas/`) describe what receivers get.

Real deliveries are validated: jobs that complete, partly fail, fail, are cancelled and
expire, a watched parcel's first and changed results, and a test event, each sent by the
dispatcher to a real local receiver and verified with `standardwebhooks` first, as a
receiver would. Bodies that break the schema in one place are refused; every
`WebhookEventType` has its branch; the parcel-change schema follows the pydantic model;
and the gateway serves the files a receiver needs.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from sqlalchemy import text

from gateway.jobs.models import JobEvent
from gateway.watches.models import WATCHABLE_FIELDS, FieldChange, ParcelChange
from gateway.webhooks.models import WebhookEventType
from gateway.webhooks.payload_schemas import (
    ENVELOPE,
    PARCEL_CHANGE,
    SCHEMA_NAMES,
    all_schemas,
    schema,
    schema_bytes,
)
from tests.support.jobs import JobsHarness
from tests.support.wait import wait_until
from tests.support.webhook_receiver import WebhookReceiver
from tests.support.webhook_schemas import FORMATS, registry, webhook_validator
from tests.support.webhooks import (
    dispatcher,
    endpoint,
    plane_of,
    send_once,
    verified,
)
from tests.support.work import lease, parcel_data, post_results, succeeded

NOW = datetime(2026, 5, 4, 12, 30, tzinfo=UTC)
JOB_ID = "job_" + "0a" * 12
ENDPOINT_ID = "wh_" + "1b" * 12
WATCH_ID = "wat_" + "2c" * 12


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    return webhook_validator()


def branches() -> dict[str, dict[str, Any]]:
    """The envelope's `then` per event type (its `if` names one type)."""
    out = {}
    for rule in schema(ENVELOPE)["allOf"]:
        out[rule["if"]["properties"]["type"]["const"]] = rule["then"]
    return out


# Valid bodies built from the gateway's own models, the bases of the refused ones.
def job_body(kind: str = "job.completed") -> dict[str, Any]:
    event = JobEvent(
        id=f"{JOB_ID}:4",
        type="job.completed",
        job_id=JOB_ID,
        seq=4,
        at=NOW,
        owner="api_key:7",
        data={
            "state": "completed",
            "progress": {
                "total": 2,
                "succeeded": 2,
                "failed": 0,
                "cancelled": 0,
                "expired": 0,
                "pending": 0,
            },
        },
    )
    return {"type": kind, "timestamp": NOW.isoformat(), "data": event.model_dump(mode="json")}


def parcel_body() -> dict[str, Any]:
    change = ParcelChange(
        id="pc_41",
        watch_id=WATCH_ID,
        platform="alpha",
        parcel_id="P-100",
        at=NOW,
        scraped_at=NOW - timedelta(minutes=1),
        previous_scraped_at=NOW - timedelta(days=1),
        task_id="t_1",
        changes={
            "tax_amount_due": FieldChange(old="1200.50", new="0.00"),
            "lien_status": FieldChange(old="active", new=None),
        },
    )
    return {
        "type": "parcel.changed",
        "timestamp": NOW.isoformat(),
        "data": change.model_dump(mode="json"),
    }


def probe_body() -> dict[str, Any]:
    return {
        "type": "webhook.test",
        "timestamp": NOW.isoformat(),
        "data": {"endpoint_id": ENDPOINT_ID},
    }


def disabled_body() -> dict[str, Any]:
    return {
        "type": "webhook.disabled",
        "timestamp": NOW.isoformat(),
        "data": {
            "endpoint_id": ENDPOINT_ID,
            "description": "orders",
            "reason": "gone",
            "disabled_at": NOW.isoformat(),
            "failing_since": None,
            "last_attempt": {
                "delivery_id": "msg_" + "3d" * 12,
                "at": NOW.isoformat(),
                "status": 410,
                "error": None,
            },
        },
    }


SAMPLES: dict[str, Callable[[], dict[str, Any]]] = {
    "job": job_body,
    "parcel": parcel_body,
    "test": probe_body,
    "disabled": disabled_body,
}


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for name in parents:
            body = body[name]
        body[last] = value

    return change


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for name in parents:
            body = body[name]
        del body[last]

    return change


# (sample, what breaks it): each a mistake a sender could make.
REFUSED: dict[str, tuple[str, Callable[[dict[str, Any]], None]]] = {
    "no timestamp": ("job", _drop("timestamp")),
    "timestamp not a time": ("job", _set("timestamp", "yesterday")),
    "timestamp without offset": ("job", _set("timestamp", "2026-05-04T12:30:00")),
    "unknown top-level field": ("job", _set("id", "evt_1")),
    "a job event that is no webhook event": ("job", _set("type", "job.queued")),
    "unknown type": ("test", _set("type", "webhook.pinged")),
    "data not an object": ("test", _set("data", "wh_1")),
    "job type differs from its event": ("job", _set("type", "job.failed")),
    "job seq a string": ("job", _set("data.seq", "4")),
    "job without job_id": ("job", _drop("data.job_id")),
    "job progress count negative": ("job", _set("data.data.progress.failed", -1)),
    "parcel without changes": ("parcel", _drop("data.changes")),
    "parcel with empty changes": ("parcel", _set("data.changes", {})),
    "parcel change of an unwatchable field": (
        "parcel",
        _set("data.changes.zoning", {"old": "R1", "new": "R2"}),
    ),
    "parcel change value a number": ("parcel", _set("data.changes.tax_amount_due.new", 0.0)),
    "parcel change without old": ("parcel", _drop("data.changes.lien_status.old")),
    "parcel previous_scraped_at a number": ("parcel", _set("data.previous_scraped_at", 0)),
    "parcel id not a change id": ("parcel", _set("data.id", "41")),
    "parcel unknown field": ("parcel", _set("data.owner", "api_key:7")),
    "test without endpoint_id": ("test", _drop("data.endpoint_id")),
    "test endpoint_id malformed": ("test", _set("data.endpoint_id", "endpoint-1")),
    "test with more data": ("test", _set("data.job_id", JOB_ID)),
    "disabled for no known reason": ("disabled", _set("data.reason", "tired")),
    "disabled without reason": ("disabled", _drop("data.reason")),
}


def test_the_schemas_are_valid_draft_2020_12_and_resolve_each_other() -> None:
    found = all_schemas()
    assert set(found) == set(SCHEMA_NAMES)
    for name, doc in found.items():
        jsonschema.Draft202012Validator.check_schema(doc)
        assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert doc["$id"].endswith("/" + name), "relative $refs resolve against the $id"


@pytest.mark.parametrize("sample", SAMPLES)
def test_the_model_built_bodies_are_valid(
    sample: str, validator: jsonschema.Draft202012Validator
) -> None:
    validator.validate(SAMPLES[sample]())


@pytest.mark.parametrize("case", REFUSED)
def test_a_body_broken_in_one_place_is_refused(
    case: str, validator: jsonschema.Draft202012Validator
) -> None:
    sample, breaks = REFUSED[case]
    body = copy.deepcopy(SAMPLES[sample]())
    assert validator.is_valid(body)
    breaks(body)
    assert not validator.is_valid(body), f"{case}: {body}"


def test_every_event_type_has_its_branch_and_no_other() -> None:
    types = {t.value for t in WebhookEventType}
    assert set(branches()) == types
    assert set(schema(ENVELOPE)["properties"]["type"]["enum"]) == types


def test_every_job_event_branch_pins_the_job_events_own_type() -> None:
    for kind, then in branches().items():
        if kind.startswith("job."):
            data = then["properties"]["data"]
            assert data["$ref"] == "#/$defs/job_event"
            assert data["properties"]["type"] == {"const": kind}


def _types(prop: dict[str, Any]) -> set[str]:
    """The JSON types a (pydantic or hand-written) property schema allows."""
    if "anyOf" in prop:
        return set().union(*(_types(p) for p in prop["anyOf"]))
    if "$ref" in prop or "additionalProperties" in prop:
        return {"object"}
    kind = prop["type"]
    return set(kind) if isinstance(kind, list) else {kind}


def _formats(prop: dict[str, Any]) -> set[str]:
    return {p["format"] for p in prop.get("anyOf", [prop]) if "format" in p}


def test_the_parcel_change_schema_follows_the_model() -> None:
    """Field names, required fields, JSON types and formats of `ParcelChange` and its
    `FieldChange`: a field added to or retyped in the model fails here until the schema
    file says the same."""
    model = ParcelChange.model_json_schema(mode="serialization")
    ours = schema(PARCEL_CHANGE)
    assert set(ours["properties"]) == set(model["properties"])
    assert set(ours["required"]) == set(model["required"])
    for name, prop in model["properties"].items():
        assert _types(ours["properties"][name]) == _types(prop), name
        assert _formats(ours["properties"][name]) == _formats(prop), name
    field_model = FieldChange.model_json_schema(mode="serialization")
    field_ours = ours["$defs"]["field_change"]
    assert set(field_ours["properties"]) == set(field_model["properties"])
    assert set(field_ours["required"]) == set(field_model["required"])
    for name, prop in field_model["properties"].items():
        assert _types(field_ours["properties"][name]) == _types(prop), name
    assert ours["properties"]["changes"]["propertyNames"]["enum"] == list(WATCHABLE_FIELDS)


# End to end: real events through the real delivery path.


@pytest.fixture
def h(stepped: JobsHarness) -> JobsHarness:
    return stepped


async def _job(h: JobsHarness, key: str, parcels: list[str], **extra: Any) -> str:
    submitted = await h.submit(key, parcels, **extra)
    assert submitted.status_code in (200, 201, 202), submitted.text
    job_id: str = submitted.json()["id"]
    await h.wait_state(key, job_id, "queued", "running")
    return job_id


async def _every_kind_of_event(h: JobsHarness, key: str) -> dict[str, Any]:
    """Make one of each event; what the test checks afterwards (the watch's id)."""
    public = h.public
    auth = {"X-API-Key": key}
    watch = await public.post(
        "/v1/watches", json={"platform": "alpha", "parcel_ids": ["s-watched"]}, headers=auth
    )
    assert watch.status_code == 201, watch.text
    token = await h.worker_token()

    # Expired and cancelled first, while no worker has leased their tasks.
    deadline = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    late = await _job(h, key, ["s-late"], deadline=deadline)
    async with h.resources.sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "UPDATE jobs SET deadline = now() - interval '1 s',"
                " check_at = now() - interval '1 s' WHERE id = :j"
            ),
            {"j": late},
        )
    await h.jobs.upkeep.reconcile_due()
    await h.wait_state(key, late, "expired")
    cancelled = await _job(h, key, ["s-cancelled"])
    answer = await public.post(f"/v1/jobs/{cancelled}/cancel", headers=auth)
    assert answer.status_code == 200, answer.text
    await h.wait_state(key, cancelled, "cancelled")

    # The watched parcel's first result (every field new) completes a job...
    done = await _job(h, key, ["s-watched"])
    assert await h.scrape(token)
    await h.wait_state(key, done, "completed")
    # ...and a later one changes what is due (a posted result of our own making).
    again = await _job(h, key, ["s-watched"])
    [task] = await lease(h.parcel, token)
    changed = parcel_data(task["key"], tax_amount_due="0.00", lien_status="redeemed")
    posted = await post_results(h.parcel, token, [succeeded(task, changed)])
    assert posted.status_code == 200, posted.text
    await h.wait_state(key, again, "completed")

    partly = await _job(h, key, ["s-ok", "s-bad"])
    assert await h.scrape(token, fail=lambda t: t["key"] == "s-bad")
    await h.wait_state(key, partly, "partially_failed")
    failed = await _job(h, key, ["s-failed"])
    assert await h.scrape(token, fail=lambda t: True)
    await h.wait_state(key, failed, "failed")
    return {"watch_id": watch.json()["id"]}


async def test_every_delivered_event_matches_the_schema(
    h: JobsHarness, receiver: WebhookReceiver, validator: jsonschema.Draft202012Validator
) -> None:
    key = await h.key()
    events = [t.value for t in WebhookEventType]
    wh = await endpoint(h, key, receiver.url("/ok"), events)
    # A second endpoint that answers 410: disabled, which `wh` hears as webhook.disabled.
    gone = await endpoint(h, key, receiver.url("/gone"), ["job.completed"])
    made = await _every_kind_of_event(h, key)
    test = await h.public.post(f"/v1/webhooks/{wh['id']}/test", headers={"X-API-Key": key})
    assert test.status_code == 202, test.text

    fanout = plane_of(h).delivery.fanout
    assert await fanout.drain() > 0

    def arrived() -> set[str]:
        return {
            verified(wh["secret"], got)["type"] for got in receiver.received if got.path == "/ok"
        }

    async with dispatcher(h) as d:
        # The endpoint's tier rate (webhook_events_per_s) spreads the sends over steps;
        # webhook.disabled is queued when /gone's 410 is recorded.
        async def every_type_arrived() -> bool:
            await fanout.drain()
            await send_once(d)
            return arrived() >= set(events)

        await wait_until(every_type_arrived, what="a delivery of every event type")

    bodies = [verified(wh["secret"], got) for got in receiver.received if got.path == "/ok"]
    for body in bodies:
        validator.validate(body)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for body in bodies:
        by_type.setdefault(body["type"], []).append(body)
    # Every event type the gateway sends today was delivered and validated.
    assert set(by_type) == set(events)
    assert by_type["webhook.test"][0]["data"] == {"endpoint_id": wh["id"]}
    [disabled] = by_type["webhook.disabled"]
    assert (disabled["data"]["endpoint_id"], disabled["data"]["reason"]) == (gone["id"], "gone")
    assert disabled["data"]["last_attempt"]["status"] == 410

    # Two changes of the watched parcel: its first data, then what the second result moved.
    first, second = sorted(by_type["parcel.changed"], key=lambda b: int(b["data"]["id"][3:]))
    assert first["data"]["previous_scraped_at"] is None
    assert first["data"]["changes"]["lien_status"] == {"old": None, "new": "active"}
    assert second["data"]["previous_scraped_at"] == first["data"]["scraped_at"]
    assert second["data"]["changes"] == {
        "tax_amount_due": {"old": "1234.50", "new": "0.00"},
        "lien_status": {"old": "active", "new": "redeemed"},
    }
    # The changes log serves the same documents, valid against the same data schema.
    log = await h.public.get(f"/v1/watches/{made['watch_id']}/changes", headers={"X-API-Key": key})
    assert log.status_code == 200, log.text
    parcel_validator = jsonschema.Draft202012Validator(
        {"$ref": schema(PARCEL_CHANGE)["$id"]},
        registry=registry(),
        format_checker=FORMATS,
    )
    logged = log.json()["items"]
    for item in logged:
        parcel_validator.validate(item)
    assert {i["id"] for i in logged} == {first["data"]["id"], second["data"]["id"]}
    # And the model reads every delivered body back.
    for body in by_type["parcel.changed"]:
        ParcelChange.model_validate(body["data"])
    for body in bodies:
        if body["type"].startswith("job."):
            JobEvent.model_validate(body["data"])


async def test_the_gateway_serves_the_schemas_a_receiver_needs(
    h: JobsHarness, validator: jsonschema.Draft202012Validator
) -> None:
    key = await h.key()
    fetched = {}
    for name in SCHEMA_NAMES:
        answer = await h.public.get(f"/v1/webhooks/schemas/{name}", headers={"X-API-Key": key})
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/schema+json"
        assert answer.content == schema_bytes(name)
        fetched[name] = answer.json()
    # What was fetched is enough on its own: it validates and refuses like the files.
    served = webhook_validator(fetched)
    for make in SAMPLES.values():
        served.validate(make())
    broken = probe_body()
    del broken["data"]["endpoint_id"]
    assert not served.is_valid(broken)

    missing = await h.public.get("/v1/webhooks/schemas/nope.json", headers={"X-API-Key": key})
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert ENVELOPE in missing.json()["detail"]
    # Like every public route: a caller the limiter admits (no anonymous tier here).
    anonymous = await h.public.get(f"/v1/webhooks/schemas/{ENVELOPE}")
    assert anonymous.status_code == 401


def test_the_readme_examples_are_valid(validator: jsonschema.Draft202012Validator) -> None:
    """The bodies shown in README.md ("Payloads"), one of each type, pass the schema."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    found = re.search(r"### Payloads\n.*?```json\n(.*?)```", readme, re.DOTALL)
    assert found, "README.md has a Payloads section with a json block"
    block = found.group(1)
    decoder, at, types = json.JSONDecoder(), 0, []
    while block[at:].strip():
        at += len(block[at:]) - len(block[at:].lstrip())
        body, at = decoder.raw_decode(block, at)
        validator.validate(body)
        types.append(body["type"])
    assert {"job.completed", "parcel.changed", "webhook.test", "webhook.disabled"} <= set(types)
