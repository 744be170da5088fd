"""RS256 signature checks through the production firebase-admin path, with local keys.

The only thing replaced is where Google's public certificates come from: firebase-admin
fetches `ID_TOKEN_CERT_URI` over HTTP, and here that URI points at a local server that
publishes a self-signed certificate for a key generated in the test.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import firebase_admin._token_gen
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from gateway.core.settings import Settings
from tests.support.public import metric_value, public_app

pytestmark = pytest.mark.integration

PROJECT = "demo-rs256"
KID = "test-key-1"


def _keypair() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "securetoken.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Signer:
    """Mints ID tokens with the published key (or another one)."""

    key: rsa.RSAPrivateKey
    other: rsa.RSAPrivateKey
    cert_fetches: list[float]

    def token(
        self, *, key: rsa.RSAPrivateKey | None = None, kid: str = KID, **overrides: Any
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": f"https://securetoken.google.com/{PROJECT}",
            "aud": PROJECT,
            "sub": "uid-rs256",
            "auth_time": now - 10,
            "iat": now - 10,
            "exp": now + 3600,
            "email": "rs@example.com",
            **overrides,
        }
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def signer(monkeypatch: pytest.MonkeyPatch) -> Iterator[Signer]:
    key, cert = _keypair()
    other, _ = _keypair()
    fetches: list[float] = []
    body = json.dumps({KID: cert.decode()}).encode()

    class Certs(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetches.append(time.time())
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "public, max-age=3600")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Certs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST", raising=False)
    monkeypatch.setattr(
        firebase_admin._token_gen,
        "ID_TOKEN_CERT_URI",
        f"http://127.0.0.1:{server.server_address[1]}/certs",
    )
    yield Signer(key, other, fetches)
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def rs_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"firebase_project_id": PROJECT, "firebase_auth_emulator_host": None}
    )


async def test_good_token_is_accepted_and_then_served_from_the_token_cache(
    rs_settings: Settings, signer: Signer
) -> None:
    token = signer.token()
    async with public_app(rs_settings) as app:
        verifier = app.plane.firebase
        assert verifier is not None
        calls = 0
        real = verifier._client.verify_id_token

        def counting(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            return real(*args, **kwargs)

        verifier._client.verify_id_token = counting
        first = await app.client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        second = await app.client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert first.status_code == 200, first.text
    assert first.json()["id"] == "uid-rs256"
    assert first.json()["email"] == "rs@example.com"
    assert second.status_code == 200
    assert calls == 1
    assert len(signer.cert_fetches) >= 1


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("expired", "token_expired"),
        ("wrong_audience", "wrong_project"),
        ("wrong_issuer", "wrong_project"),
        ("forged_signature", "bad_signature"),
        ("unknown_kid", "unknown_key"),
    ],
)
async def test_bad_tokens_are_rejected(
    rs_settings: Settings, signer: Signer, case: str, reason: str
) -> None:
    now = int(time.time())
    token = {
        "expired": lambda: signer.token(iat=now - 7200, auth_time=now - 7200, exp=now - 3600),
        "wrong_audience": lambda: signer.token(aud="someone-else"),
        "wrong_issuer": lambda: signer.token(iss="https://securetoken.google.com/someone-else"),
        "forged_signature": lambda: signer.token(key=signer.other),
        "unknown_kid": lambda: signer.token(kid="nobody-knows-me"),
    }[case]()
    async with public_app(rs_settings) as app:
        response = await app.client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        text = await app.metrics()
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["reason"] == reason
    assert metric_value(text, "gateway_auth_failures_total", reason=reason) == 1


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": "9999999999"},
        {"iat": "1"},
        {"exp": [9999999999]},
        {"iat": None},
    ],
    ids=["exp-string", "iat-string", "exp-list", "iat-null"],
)
async def test_correctly_signed_token_with_malformed_times_is_a_401(
    rs_settings: Settings, signer: Signer, claims: dict[str, Any]
) -> None:
    """google-auth does arithmetic on `iat`/`exp` as sent: a string raised a TypeError
    that became a 500."""
    token = signer.token(**claims)
    async with public_app(rs_settings) as app:
        response = await app.client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["reason"] == "malformed_token"
