"""A real webhook receiver (uvicorn in a thread on 127.0.0.1), optionally over TLS.

Records every request it gets (path, headers, body) and answers by path:

- `/ok` 200 `thanks`, `/fail` 500, `/gone` 410
- `/slow` holds the request until the receiver stops (a timeout that cannot be outrun)
- `/redirect?to=URL` 302 to URL
- `/big` 200 with a body of `BIG_BYTES` bytes, `/binary` 200 with a NUL and invalid UTF-8
- `/cut` 200, `partial`, then the connection drops

`tls_files(hostname)` makes a throwaway CA and a server certificate for `hostname`;
`WebhookReceiver(tls=...)` serves with it and `ca_context()` is the trust to verify it.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway.webhooks.ssrf import BAD_PORTS
from tests.support.ports import free_port
from tests.support.wait import wait_until_sync

BIG_BYTES = 1 << 20


@dataclass(frozen=True)
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class TlsFiles:
    """A CA certificate and a server certificate + key signed by it (PEM files)."""

    ca_cert: Path
    cert: Path
    key: Path

    def ca_context(self) -> ssl.SSLContext:
        """A client context that trusts only this CA (and checks hostnames)."""
        return ssl.create_default_context(cafile=str(self.ca_cert))


def tls_files(directory: Path, hostname: str) -> TlsFiles:
    """A throwaway CA and a certificate for `hostname` it signed, written to `directory`."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    files.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


@dataclass
class _State:
    received: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


def _app(state: _State) -> Starlette:
    async def record(request: Request) -> Received:
        got = Received(request.url.path, dict(request.headers), await request.body())
        state.received.append(got)
        return got

    async def ok(request: Request) -> Response:
        await record(request)
        return PlainTextResponse("thanks")

    async def fail(request: Request) -> Response:
        await record(request)
        return PlainTextResponse("receiver broke", status_code=500)

    async def gone(request: Request) -> Response:
        await record(request)
        return PlainTextResponse("endpoint removed", status_code=410)

    async def slow(request: Request) -> Response:
        await record(request)
        await asyncio.to_thread(state.release.wait, 60)
        return PlainTextResponse("late")

    async def redirect(request: Request) -> Response:
        await record(request)
        return RedirectResponse(request.query_params["to"], status_code=302)

    async def binary(request: Request) -> Response:
        await record(request)
        return Response(b"ok\x00\xffend", media_type="application/octet-stream")

    async def cut(request: Request) -> Response:
        await record(request)

        async def partial() -> AsyncIterator[bytes]:
            yield b"partial"
            raise ConnectionAbortedError("the receiver drops the connection mid-answer")

        return StreamingResponse(partial(), media_type="text/plain")

    async def big(request: Request) -> Response:
        await record(request)
        return Response(b"x" * BIG_BYTES, media_type="text/plain")

    return Starlette(
        routes=[
            Route(f"/{name}", handler, methods=["POST"])
            for name, handler in (
                ("ok", ok),
                ("fail", fail),
                ("gone", gone),
                ("slow", slow),
                ("redirect", redirect),
                ("big", big),
                ("binary", binary),
                ("cut", cut),
            )
        ]
    )


def receiver_port() -> int:
    """A free port the SSRF guard accepts (free_port may hand out 10080, a "bad port")."""
    while (port := free_port()) in BAD_PORTS:
        pass
    return port


class WebhookReceiver:
    """The receiver app on a free loopback port in a background thread."""

    def __init__(self, *, tls: TlsFiles | None = None) -> None:
        self._state = _State()
        self.port = receiver_port()
        self.scheme = "https" if tls else "http"
        config = uvicorn.Config(
            _app(self._state),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            loop="asyncio",
            ssl_certfile=str(tls.cert) if tls else None,
            ssl_keyfile=str(tls.key) if tls else None,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def received(self) -> list[Received]:
        """Every request so far, in arrival order."""
        return list(self._state.received)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        """The URL of `path` on this receiver, under `host` (a name a test resolves)."""
        return f"{self.scheme}://{host}:{self.port}{path}"

    def start(self) -> None:
        """Start and wait until it accepts connections (bounded)."""
        self._thread.start()
        wait_until_sync(lambda: self._server.started, what="the webhook receiver starting")

    def stop(self) -> None:
        """Release held requests, stop and join."""
        self._state.release.set()
        self._server.should_exit = True
        self._thread.join(timeout=10)
