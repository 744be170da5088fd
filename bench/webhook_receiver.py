"""The webhooks benchmark's receiver: a raw asyncio HTTP server answering 204, fast.

    python bench/webhook_receiver.py PORT HANG_PORT

On PORT every `POST` is answered `204 No Content` at once and recorded: its
`webhook-id` and the arrival time (`time.time()`, the clock PostgreSQL's `now()` uses on
this machine). Every `--sample`-th delivery is kept whole (headers and body) and verified
with the `standardwebhooks` reference library against its endpoint's secret (the path
`/ep/<n>` names the endpoint; the secrets arrive by `POST /_secrets`). `GET /_report`
answers the arrivals and the verification counts as JSON and starts a new record.

On HANG_PORT connections are accepted and read but never answered: a dead endpoint
that holds the sender until its deadline.

A hand-written protocol on uvloop rather than a web framework, so the receiver costs
little CPU next to the gateway on a 2-core machine (its CPU is reported).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import uvloop
from standardwebhooks import Webhook

_NO_CONTENT = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"


class Record:
    """What the receiver saw since the last report."""

    def __init__(self, sample: int) -> None:
        self.sample = sample
        self.secrets: dict[str, str] = {}
        self.arrivals: list[tuple[str, float]] = []
        self.kept: list[tuple[str, dict[str, str], bytes]] = []
        self.requests = 0
        self.verified = 0
        self.bad = 0

    def delivery(self, path: str, headers: dict[str, str], body: bytes, at: float) -> None:
        """Note one delivery; keep every `sample`-th for verification."""
        self.requests += 1
        message_id = headers.get("webhook-id")
        if message_id is None:  # a baseline request, not a delivery
            return
        self.arrivals.append((message_id, at))
        if len(self.arrivals) % self.sample == 1 or self.sample == 1:
            self.kept.append((path, headers, body))

    def report(self) -> dict[str, Any]:
        """Arrivals since the last report, verification counts since the start."""
        for path, headers, body in self.kept:
            secret = self.secrets.get(path)
            try:
                if secret is None:
                    raise ValueError("no secret for " + path)
                Webhook(secret).verify(body, headers)
            except Exception:  # any failure is a bad signature for the report
                self.bad += 1
            else:
                self.verified += 1
        out = {
            "requests": self.requests,
            "arrivals": self.arrivals,
            "verified": self.verified,
            "bad_signatures": self.bad,
        }
        self.arrivals, self.kept, self.requests = [], [], 0
        return out


class Receiver(asyncio.Protocol):
    """One connection: parse requests (Content-Length bodies), answer each at once."""

    def __init__(self, record: Record) -> None:
        self.record = record
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's TCPTransport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            headers: dict[str, str] = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            method, path = head[0].split(" ")[:2]
            self.handle(method, path, headers, body)

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        assert self.transport is not None
        if path == "/_secrets":
            self.record.secrets.update(json.loads(body))
            self.transport.write(_NO_CONTENT)
        elif path == "/_report":
            payload = json.dumps(self.record.report()).encode()
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(payload)).encode()
                + b"\r\n\r\n"
                + payload
            )
        else:
            self.record.delivery(path, headers, body, time.time())
            self.transport.write(_NO_CONTENT)


class Hang(asyncio.Protocol):
    """Reads whatever arrives and never answers."""

    def data_received(self, data: bytes) -> None:
        pass


async def serve(port: int, hang_port: int, sample: int) -> None:
    """Serve both ports until killed."""
    loop = asyncio.get_running_loop()
    record = Record(sample)
    await loop.create_server(lambda: Receiver(record), "127.0.0.1", port, backlog=4096)
    await loop.create_server(Hang, "127.0.0.1", hang_port, backlog=4096)
    print(f"receiver on {port}, hanging on {hang_port}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    """Parse the ports and serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("hang_port", type=int)
    parser.add_argument("--sample", type=int, default=10, help="verify every n-th delivery")
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.hang_port, args.sample))


if __name__ == "__main__":
    main()
