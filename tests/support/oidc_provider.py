"""A REAL OpenID Provider for tests: panva's certified `oidc-provider` on Node.js.

`scripts/ensure_oidc_provider.sh` installs the npm package into a per-user cache (once);
`oidc_provider/server.mjs` configures it: client_credentials clients whose access
tokens are JWTs (RFC 9068) signed RS256 or ES256 with keys this module generates, and a
second key set the test can rotate to (`rotate()`), after which the provider signs with
a new `kid` and publishes the new JWKS. The test keeps the private keys, so it can also
mint tokens the provider would never issue (expired, other audience) with the
provider's own key.

Under CI=true a provider that cannot be installed or started fails the test (never a
skip); elsewhere tests are skipped only when node/npm are missing.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
SERVER = Path(__file__).parent / "oidc_provider" / "server.mjs"
AUDIENCE = "https://gateway.test/api"
SECRET = "client-secret-for-tests-only-0123456789"
_START_TIMEOUT_S = 60

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _unavailable(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"CI=true but the OIDC provider is unavailable: {reason}")
    pytest.skip(f"OIDC provider unavailable: {reason}")


def provider_modules() -> str:
    """Install (or reuse) oidc-provider and return its node_modules folder."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        _unavailable("node/npm are not installed")
    lock_path = Path(tempfile.gettempdir()) / "gwtest-oidc-provider.lock"
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two concurrent npm installs corrupt a prefix
        result = subprocess.run(
            ["bash", str(ROOT / "scripts" / "ensure_oidc_provider.sh")],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    if result.returncode != 0:
        _unavailable(f"installing oidc-provider failed:\n{result.stderr[-3000:]}")
    return result.stdout.strip().splitlines()[-1]


@dataclass(frozen=True)
class Key:
    """A signing key the provider holds (private part kept for the test)."""

    kid: str
    alg: str
    private: PrivateKey

    def jwk(self) -> dict[str, Any]:
        """The private JWK handed to the provider."""
        if isinstance(self.private, rsa.RSAPrivateKey):
            text = RSAAlgorithm.to_jwk(self.private)
        else:
            text = ECAlgorithm.to_jwk(self.private)
        body: dict[str, Any] = json.loads(text)
        return {**body, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def public_pem(self) -> bytes:
        """The public key as PEM (what an attacker could download)."""
        from cryptography.hazmat.primitives import serialization

        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def new_key(alg: str) -> Key:
    """A fresh RS256 or ES256 key with a random kid."""
    private: PrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if alg == "RS256"
        else ec.generate_private_key(ec.SECP256R1())
    )
    return Key(f"{alg.lower()}-{uuid.uuid4().hex[:8]}", alg, private)


@dataclass
class Client:
    """A client_credentials client of the provider."""

    client_id: str
    alg: str
    claims: dict[str, Any] = field(default_factory=dict)


@dataclass
class OidcProvider:
    """A running provider and a small client for it."""

    issuer: str
    keysets: list[list[Key]]
    clients: dict[str, Client]
    keyset: int = 0

    def token(self, client_id: str, *, audience: str = AUDIENCE) -> str:
        """A real access token from the token endpoint (client_credentials grant)."""
        response = httpx.post(
            f"{self.issuer}/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": SECRET,
                "resource": audience,
            },
            timeout=10,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def discovery(self) -> dict[str, Any]:
        """The provider's OpenID configuration."""
        response = httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def counts(self) -> dict[str, int]:
        """How often discovery, JWKS and token endpoints were called."""
        return dict(httpx.get(f"{self.issuer}/__test/counts", timeout=10).json())

    def rotate(self) -> None:
        """Switch to the next key set: new kids signed and published."""
        httpx.post(f"{self.issuer}/__test/rotate", timeout=10).raise_for_status()
        self.keyset += 1

    def key(self, alg: str) -> Key:
        """The current key of that algorithm."""
        return next(k for k in self.keysets[self.keyset] if k.alg == alg)

    def mint(self, alg: str = "RS256", *, key: Key | None = None, **overrides: Any) -> str:
        """A token signed with the provider's own current key, claims overridden."""
        signer = key or self.key(alg)
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": "minted-subject",
            "iat": now,
            "exp": now + 300,
            **overrides,
        }
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, signer.private, algorithm=signer.alg, headers={"kid": signer.kid})


def _wait_ready(proc: subprocess.Popen[bytes], issuer: str, log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _unavailable(f"provider exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            # Not discovery: the tests count the gateway's discovery fetches.
            if httpx.get(f"{issuer}/__test/counts", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    _unavailable(f"provider not ready after {_START_TIMEOUT_S}s:\n{log.read_text()[-3000:]}")


def run_provider(workdir: Path, clients: list[Client] | None = None) -> Iterator[OidcProvider]:
    """Start the provider on a free port with two key sets; stop it afterwards."""
    modules = provider_modules()
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    keysets = [[new_key("RS256"), new_key("ES256")], [new_key("RS256"), new_key("ES256")]]
    clients = clients or [
        Client("rs-client", "RS256"),
        Client("es-client", "ES256"),
        Client("admin-client", "RS256", {"realm_access": {"roles": ["admin"]}, "plan": "pro"}),
    ]
    config = {
        "port": port,
        "issuer": issuer,
        "default_audience": AUDIENCE,
        "clients": [
            {"client_id": c.client_id, "client_secret": SECRET, "alg": c.alg, "claims": c.claims}
            for c in clients
        ],
        "keysets": [[k.jwk() for k in keys] for keys in keysets],
    }
    config_path = workdir / "provider.json"
    config_path.write_text(json.dumps(config))
    log = workdir / "provider.log"
    env = {**os.environ, "OIDC_PROVIDER_MODULES": modules, "NODE_ENV": "test"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["node", str(SERVER), str(config_path)],
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        _wait_ready(proc, issuer, log)
        yield OidcProvider(issuer, keysets, {c.client_id: c for c in clients})
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
