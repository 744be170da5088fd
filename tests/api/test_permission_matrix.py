"""The README's permission matrix is the code's: every route of every port, every kind
of credential.

The expectations come from the README's two tables (what each route needs, which role
holds which scope), never from the code under test: the static tests check that the
code declares the same, the behaviour tests send each route a request with each
credential and classify the answer as allowed (anything but 401/403) or refused.
Requests carry placeholder ids and empty bodies, so an allowed one ends in a 404 or 422
from the handler without changing anything that matters.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute
from pydantic import SecretStr
from starlette.routing import Route
from websockets.exceptions import ConnectionClosed

from gateway.api.permissions import UNROUTED, permission_of, routes_of
from gateway.apps.parcel_internal import create_parcel_internal_app
from gateway.apps.party_internal import create_party_internal_app
from gateway.apps.public import create_public_app
from gateway.core.resources import Resources
from gateway.core.settings import Settings
from gateway.public.permissions import ANONYMOUS_SCOPES, ROLE_SCOPES, Scope
from gateway.public.plane import PublicPlane
from gateway.public.principal import Role
from tests.support.audit import TEST_ACTOR
from tests.support.jobs import JobsHarness, jobs_harness
from tests.support.public import public_app, write_tiers
from tests.support.streams import served
from tests.support.work import make_token
from tests.support.ws import open_ws

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"
PORTS = ("public", "parcel", "party")
ROLES = ("admin", "operator", "user", "service")
SECRET = "matrix-test-secret-of-at-least-thirty-two-characters"
ISSUER = "https://matrix.example/auth"
AUDIENCE = "gateway-matrix"

# A value each path parameter accepts (or, where it does not, a 422 is just as allowed).
PLACEHOLDERS = {
    "parcel_id": "P-1",
    "key_id": "000000000000",
    "job_id": "job_" + "0" * 24,
    "token": "not-a-real-link",
    "name": "job.completed",
    "endpoint_id": "we_" + "0" * 24,
    "delivery_id": "msg_" + "0" * 24,
    "watch_id": "wt_" + "0" * 24,
    "uid": "matrix-nobody",
}


def _table(marker: str) -> list[list[str]]:
    text = README.read_text()
    body = text.split(f"<!-- {marker}:start -->", 1)[1].split(f"<!-- {marker}:end -->", 1)[0]
    rows = [line for line in body.strip().splitlines() if line.startswith("|")]
    return [[c.strip().strip("`") for c in row.strip("|").split("|")] for row in rows[2:]]


def readme_routes() -> dict[tuple[str, str, str], str]:
    """(port, method, path) -> what it needs, from the README."""
    out = {}
    for ports, method, path, need in _table("permission-matrix"):
        names = PORTS if ports == "all" else tuple(p.strip() for p in ports.split(","))
        for port in names:
            out[(port, method, path)] = need
    return out


def readme_scopes() -> dict[str, frozenset[str]]:
    """Role (and `anonymous`) -> the scopes the README gives it."""
    rows = _table("scopes-by-role")
    header = ["scope", *ROLES, "anonymous"]
    held: dict[str, set[str]] = {role: set() for role in header[1:]}
    for row in rows:
        for role, cell in zip(header[1:], row[1:], strict=True):
            if cell == "✓":
                held[role].add(row[0])
    return {role: frozenset(scopes) for role, scopes in held.items()}


def _apps(resources: Resources) -> dict[str, FastAPI]:
    return {
        "public": create_public_app(resources),
        "parcel": create_parcel_internal_app(resources),
        "party": create_party_internal_app(resources),
    }


def declared_routes(apps: dict[str, FastAPI]) -> dict[tuple[str, str, str], str]:
    """(port, method, path) -> what the code declares; fails on an undeclared route."""
    out = {}
    for port, app in apps.items():
        for route in routes_of(app.routes):
            label = permission_of(route).label  # raises UndeclaredPermission
            # `{uid:path}` (a converter) is `{uid}` in the README.
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", getattr(route, "path", ""))
            if isinstance(route, Route) and not isinstance(route, APIRoute):
                continue  # documentation routes: UNROUTED, public (checked below)
            methods = (
                ["WS"]
                if isinstance(route, APIWebSocketRoute)
                else sorted(set(getattr(route, "methods", ())) - {"HEAD"})
            )
            for method in methods:
                out[(port, method, path)] = label
        out[(port, "GET", "/health")] = UNROUTED["/health"].label
    return out


async def test_the_readme_names_every_route_of_every_port_and_what_the_code_declares(
    resources: Resources,
) -> None:
    apps = _apps(resources)
    assert declared_routes(apps) == readme_routes()
    for app in apps.values():
        for route in routes_of(app.routes):
            if isinstance(route, Route) and not isinstance(route, APIRoute):
                assert permission_of(route).label == "public"


def test_the_readme_gives_each_role_the_scopes_the_code_does() -> None:
    held = readme_scopes()
    assert held["anonymous"] == {s.value for s in ANONYMOUS_SCOPES}
    for role in ROLES:
        assert held[role] == {s.value for s in ROLE_SCOPES[Role(role)]}, role
    # Every scope a route needs is in the table, and every scope in the table exists.
    scopes = {row[0] for row in _table("scopes-by-role")}
    assert scopes == {s.value for s in Scope}
    needs = set(readme_routes().values())
    assert needs - scopes <= {"public", "caller", "link", "worker", "producer"}


@dataclass(frozen=True)
class Credential:
    """A way of calling, and the scopes the README says it holds (None: not accepted)."""

    name: str
    headers: dict[str, str]
    held: frozenset[str] | None


def _token(role: str) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": f"matrix-{role}",
        "app_metadata": {"gateway_role": role},
        "iat": now,
        "exp": now + 3600,
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


async def _key(
    plane: PublicPlane, owner: str | None, role: str | None, scopes: frozenset[Scope] | None
) -> str:
    if owner is not None and role is not None:
        await plane.users.set_role(owner, role, actor=TEST_ACTOR)
    issued = await plane.api_keys.create(
        name="matrix", tier="free", user_uid=owner, actor=TEST_ACTOR, scopes=scopes
    )
    return issued.secret


@dataclass
class PublicCredentials:
    """The base credentials, plus keys narrowed to (or away from) each scope."""

    base: list[Credential]
    only: dict[str, Credential]
    without: dict[str, Credential]


async def _public_credentials(plane: PublicPlane) -> PublicCredentials:
    held = readme_scopes()
    base = [Credential("anonymous", {}, held["anonymous"])]
    for role in ROLES:
        base.append(
            Credential(f"{role} token", {"Authorization": f"Bearer {_token(role)}"}, held[role])
        )
    for role in ("admin", "operator", "user"):
        key = await _key(plane, f"owner-{role}", role, None)
        base.append(Credential(f"{role}'s key", {"X-API-Key": key}, held[role]))
    base.append(
        Credential(
            "service key", {"X-API-Key": await _key(plane, None, None, None)}, held["service"]
        )
    )
    await plane.users.set_role("owner-narrow", "admin", actor=TEST_ACTOR)
    only, without = {}, {}
    for scope in Scope:
        key = await _key(plane, "owner-narrow", None, frozenset({scope}))
        only[scope.value] = Credential(
            f"admin's key with only {scope}", {"X-API-Key": key}, held["admin"] & {scope.value}
        )
        rest = frozenset(Scope) - {scope}
        key = await _key(plane, "owner-narrow", None, rest)
        without[scope.value] = Credential(
            f"admin's key without {scope}",
            {"X-API-Key": key},
            held["admin"] & {s.value for s in rest},
        )
    return PublicCredentials(base, only, without)


def _path(template: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PLACEHOLDERS[m.group(1)], template)


def _expect_allowed(need: str, credential: Credential) -> bool:
    if need == "public":
        return True
    if credential.held is None:
        return False
    if need == "caller":
        return True
    return need in credential.held


async def _call(client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str]) -> int:
    body: dict[str, object] | None = {} if method in {"POST", "PUT", "PATCH"} else None
    response = await client.request(method, _path(path), headers=headers, json=body)
    return response.status_code


@pytest.fixture
def matrix_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(
        update={
            "tiers_file": write_tiers(tmp_path / "tiers.json"),
            "jwt_hs256_secret": SecretStr(SECRET),
            "jwt_hs256_issuer": ISSUER,
            "jwt_hs256_audience": AUDIENCE,
            "jwt_hs256_role_claim": "app_metadata.gateway_role",
            "anonymous_tier": "free",
            "user_cache_s": 0,
            "api_key_cache_s": 0,
        }
    )


@pytest.fixture
async def h(matrix_settings: Settings) -> AsyncIterator[JobsHarness]:
    async with jobs_harness(matrix_settings) as harness:
        yield harness


@pytest.fixture
async def creds(h: JobsHarness) -> PublicCredentials:
    return await _public_credentials(h.public_plane)


async def test_every_public_route_answers_every_credential_as_the_matrix_says(
    h: JobsHarness, creds: PublicCredentials
) -> None:
    client = h.public
    wrong = []
    for (port, method, path), need in sorted(readme_routes().items()):
        if port != "public" or method == "WS" or path == "/health":
            continue
        tried = list(creds.base)
        if need in creds.only:
            other = next(s for s in creds.only if s != need)
            tried += [creds.only[need], creds.without[need], creds.only[other]]
        answers = {}
        for credential in tried:
            status = await _call(client, method, path, credential.headers)
            answers[credential.name] = status
            if need == "link":
                continue  # the link decides, whoever calls: compared below
            allowed = status not in {401, 403}
            if allowed != _expect_allowed(need, credential):
                wrong.append(f"{method} {path} ({need}) as {credential.name}: {status}")
        if need == "link":
            assert len(set(answers.values())) == 1, (path, answers)
            assert 401 not in answers.values(), (path, answers)
    assert not wrong, "\n".join(wrong)


async def test_without_anonymous_access_only_public_routes_answer_no_credential(
    matrix_settings: Settings,
) -> None:
    wrong = []
    async with public_app(matrix_settings, anonymous_tier=None) as app:
        for (port, method, path), need in sorted(readme_routes().items()):
            if port != "public" or method == "WS" or path == "/health":
                continue
            status = await _call(app.client, method, path, {})
            if (status != 401) != (need in {"public", "link"}):
                wrong.append(f"{method} {path} ({need}) without a credential: {status}")
    assert not wrong, "\n".join(wrong)


async def test_the_socket_answers_every_credential_as_the_matrix_says(
    h: JobsHarness, creds: PublicCredentials
) -> None:
    need = readme_routes()[("public", "WS", "/v1/ws")]
    tried = [*creds.base, creds.only[need], creds.without[need]]
    wrong = []
    async with served(h.public_app) as base:
        for credential in tried:
            async with open_ws(base, headers=credential.headers) as ws:
                await ws.send({"type": "ping", "id": 1})
                try:
                    answer = (await ws.recv())["type"]
                except ConnectionClosed as exc:  # refused: the close code says why
                    answer = str(exc.rcvd.code if exc.rcvd else None)
            if (answer == "pong") != _expect_allowed(need, credential):
                wrong.append(f"WS /v1/ws as {credential.name}: {answer}")
            if answer != "pong":
                assert answer in {"4401", "4403"}, (credential.name, answer)
    assert not wrong, "\n".join(wrong)


async def test_every_worker_route_answers_every_credential_as_the_matrix_says(
    h: JobsHarness,
) -> None:
    tokens = {
        (audience, role): await make_token(h.resources, audience, role)
        for audience in ("parcel", "party")
        for role in ("worker", "producer")
    }
    wrong = []
    for port, client in (("parcel", h.parcel), ("party", h.party)):
        other = "party" if port == "parcel" else "parcel"
        tried: list[tuple[str, dict[str, str], set[str]]] = [
            ("no credential", {}, set()),
            ("worker token", {"X-Worker-Token": tokens[(port, "worker")]}, {"worker"}),
            (
                "producer token",
                {"X-Worker-Token": tokens[(port, "producer")]},
                {"worker", "producer"},
            ),
            (f"{other} producer token", {"X-Worker-Token": tokens[(other, "producer")]}, set()),
            ("public API key", {"X-API-Key": "tlk_000000000000_" + "a" * 43}, set()),
        ]
        for (p, method, path), need in sorted(readme_routes().items()):
            if p != port or path == "/health":
                continue
            for name, headers, held in tried:
                status = await _call(client, method, path, headers)
                allowed = status not in {401, 403}
                expected = need == "public" or need in held
                if allowed != expected:
                    wrong.append(f"{port} {method} {path} ({need}) as {name}: {status}")
    assert not wrong, "\n".join(wrong)
