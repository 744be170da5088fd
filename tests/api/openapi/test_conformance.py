"""Each port answers what its OpenAPI document says: a property-based run of schemathesis.

Schemathesis generates requests from the document (valid ones, and ones that break it:
negative mode) and checks every answer against it: no 5xx, a documented status, the
documented content type, a body matching the documented schema, the documented headers.
The three apps run on real uvicorn servers over real Redis and PostgreSQL, with an
admin API key and a producer token, so authenticated routes run past their
authentication. The example count per operation and mode is bounded
(`OPENAPI_EXAMPLES`, default 8) so the run stays well under a minute per port.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import hypothesis
import hypothesis.errors
import hypothesis.strategies as st
import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.core.audience import Audience
from gateway.core.resources import BackendUrls, open_resources
from gateway.core.settings import Settings
from gateway.proxy_pool.inventory import add_proxies
from gateway.public.plane import PublicPlane
from tests.conftest import FACTORIES
from tests.support.audit import TEST_ACTOR
from tests.support.jobs import PLATFORMS
from tests.support.streams import served
from tests.support.work import make_token

pytestmark = [
    pytest.mark.integration,
    # Schemathesis' negative strategies call `random` themselves (its issue, not ours);
    # Hypothesis warns about that now and then, and warnings are errors here.
    pytest.mark.filterwarnings(
        "ignore:Do not use the `random` module inside strategies"
        ":hypothesis.errors.HypothesisDeprecationWarning"
    ),
]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# A public address literal: endpoints may not point at private networks.
WEBHOOK_URL = "https://1.1.1.1/hooks/openapi"
_UNPARSABLE = b"Invalid HTTP request received."
EXAMPLES = int(os.environ.get("OPENAPI_EXAMPLES", "8"))


@contextlib.asynccontextmanager
async def _port(settings: Settings, audience: Audience) -> AsyncIterator[tuple[str, FastAPI]]:
    """One port's app on a real server, with its lifespan running; its URL and app."""
    tuned = settings.model_copy(
        update={
            "job_platforms": PLATFORMS,
            # Long polls would hold each generated lease request for up to 30 s.
            "work_max_wait_s": 0.0,
            # Generated bad credentials must not get the test's own address blocked.
            "auth_failure_limit": 1_000_000,
        }
    )
    assert tuned.redis_url is not None
    assert tuned.database_url is not None
    urls = BackendUrls(tuned.redis_url, tuned.database_url)
    async with open_resources(tuned, urls) as resources:
        if audience is not Audience.PUBLIC:
            # Enough proxies that leases succeed: an empty pool answers every lease 503.
            await add_proxies(resources, [f"http://127.0.0.{n}:3128" for n in range(2, 42)])
        app = FACTORIES[audience](resources)
        async with app.router.lifespan_context(app), served(app) as url:
            yield url, app


async def _credentials(app: FastAPI, audience: Audience) -> dict[str, str]:
    resources = app.state.resources
    if audience is Audience.PUBLIC:
        plane: PublicPlane = app.state.planes["public"]
        await plane.users.set_role("root", "admin", actor=TEST_ACTOR)
        issued = await plane.api_keys.create(
            name="openapi", tier="enterprise", user_uid="root", actor=TEST_ACTOR
        )
        return {"X-API-Key": issued.secret}
    return {"X-Worker-Token": await make_token(resources, audience.value, "producer")}


async def _known_ids(url: str, headers: dict[str, str]) -> dict[str, str]:
    """Things that exist on the public port, by the path parameter that names them."""
    async with httpx.AsyncClient(base_url=url, headers=headers) as client:

        async def created(path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
            response = await client.post(path, json=body)
            assert response.status_code in (200, 201), response.text
            created: dict[str, Any] = response.json()
            return created

        job = await created(
            "/v1/jobs",
            {"kind": "parcel_refresh", "items": [{"platform": "alpha", "parcel_id": "p-1"}]},
        )
        webhook = await created("/v1/webhooks", {"url": WEBHOOK_URL, "events": ["job.completed"]})
        watch = await created("/v1/watches", {"platform": "alpha", "parcel_ids": ["p-1"]})
        key = await created("/v1/api-keys", {"name": "rotated by the run"})
        download = await created(f"/v1/jobs/{job['id']}/download")
    return {
        "job_id": job["id"],
        "endpoint_id": webhook["id"],
        "watch_id": watch["id"],
        "key_id": key["id"],
        "token": download["url"].rsplit("/", 1)[-1],
        "name": "job.completed",
        "parcel_id": "p-1",
    }


def _run(
    document: dict[str, Any],
    base_url: str,
    headers: dict[str, str],
    known: dict[str, str],
    succeeded: set[str],
) -> list[str]:
    """Every operation, positive then negative; the failures. Adds to `succeeded` each
    operation that answered a 2xx at least once."""
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an Err raises here, as it should
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failure = _check(operation, mode, base_url, headers, known, succeeded)
            if failure is not None:
                failures.append(f"{operation.label} ({mode.value}):\n{failure}")
    return failures


def _check(
    operation: Any,
    mode: GenerationMode,
    base_url: str,
    headers: dict[str, str],
    known: dict[str, str],
    succeeded: set[str],
) -> str | None:
    """Run one operation in one mode; the failure found, if any. Half the valid requests
    name things that exist (`known`), so routes get past their 404."""

    found: list[str] = []

    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        # Deterministic: CI runs the same requests until the documents or routes change.
        derandomize=True,
        suppress_health_check=list(hypothesis.HealthCheck),
        # No shrinking: a failure is recorded as it happens (below), not replayed. The
        # gateway has state (queues, leases, rate limits), so a replay may not fail again.
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode), existing=st.booleans())
    def check(case: schemathesis.Case[Any], existing: bool) -> None:
        if existing and mode is GenerationMode.POSITIVE and case.path_parameters:
            for name in case.path_parameters:
                if name in known:
                    case.path_parameters[name] = known[name]
        response = case.call(base_url=base_url, headers=headers)
        if response.status_code == 400 and response.content == _UNPARSABLE:
            # uvicorn's own answer to a request it cannot parse (a generated query
            # string of 78 KB, say): the gateway never saw the request.
            return
        if response.status_code < 300:
            succeeded.add(operation.label)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (Exception, BaseExceptionGroup) as exc:
            found.append(_summary(exc))

    try:
        check()
    except hypothesis.errors.Unsatisfiable:
        # Nothing to break in negative mode (no parameters, or unconstrained ones).
        return None
    # The first few distinct failures are enough to act on.
    distinct = list(dict.fromkeys(found))
    return "\n\n".join(distinct[:3]) if distinct else None


def _summary(exc: BaseException, width: int = 400) -> str:
    # Schemathesis reports end with a curl command repeating a generated request, which
    # can run to megabytes: keep each line short. Groups show what they hold.
    text = str(exc)
    if isinstance(exc, BaseExceptionGroup):
        text += "".join("\n  " + _summary(sub, width) for sub in exc.exceptions)
    lines = [line if len(line) <= width else line[:width] + "..." for line in text.splitlines()]
    return "\n".join(lines[:60])


@pytest.mark.parametrize("audience", list(Audience))
async def test_the_port_answers_as_its_document_says(
    settings: Settings, audience: Audience
) -> None:
    async with _port(settings, audience) as (url, app):
        headers = await _credentials(app, audience)
        document = app.openapi()
        known = await _known_ids(url, headers) if audience is Audience.PUBLIC else {}
        # Requests block (schemathesis calls with `requests`): run them off the loop
        # that serves them.
        succeeded: set[str] = set()
        failures = await asyncio.to_thread(_run, document, url, headers, known, succeeded)
    assert not failures, "\n\n".join(failures)
    # The credentials work: most operations ran past authentication to a success (the
    # rest need ids of things that exist, which generated requests rarely name).
    operations = [(m, p) for p, item in document["paths"].items() for m in item]
    print(f"{audience.value}: 2xx from {len(succeeded)} of {len(operations)}: {sorted(succeeded)}")
    assert len(succeeded) >= len(operations) // 2, sorted(succeeded)
