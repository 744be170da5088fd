"""An example backend for examples/job-progress.html: serves the page and its tickets.

A browser's `EventSource` cannot send `X-API-Key`, so it opens a job's stream with a
single-use ticket from `POST /v1/stream-tickets`. This backend holds the API key on the
server and hands the page only tickets: `POST /ticket?job=<id>` asks the gateway for a
ticket that covers that one job and returns the gateway's answer. The key never reaches
the browser, and a ticket that leaks is good for one stream of one job for a minute.

    python examples/job_progress_backend.py --gateway http://127.0.0.1:8080 --port 8090
    # the key from --key or, better (a command line is visible to `ps`), GATEWAY_API_KEY
    # then open http://127.0.0.1:8090/?job=job_... (the gateway needs
    # CORS_ORIGINS=http://127.0.0.1:8090, since the page opens its stream cross-origin)

Standard library only. A real backend would first check that its signed-in user may
watch the job; this example trusts the caller, so serve it to yourself only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import urllib.error
import urllib.request
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

PAGE = Path(__file__).with_name("job-progress.html")
JOB_ID = re.compile(r"job_[0-9a-f]{24}")
PROBLEM = "application/problem+json"


class Config:
    """Where the gateway is (for this backend, and for the browser) and the API key."""

    def __init__(self, gateway: str, browser_gateway: str, key: str) -> None:
        self.gateway = gateway.rstrip("/")
        self.browser_gateway = browser_gateway.rstrip("/")
        self.key = key


def ask_ticket(config: Config, job_id: str) -> tuple[int, bytes, str]:
    """The gateway's answer to `POST /v1/stream-tickets` for `job_id`: status, body, type."""
    request = urllib.request.Request(  # noqa: S310 (the URL is the operator's --gateway)
        f"{config.gateway}/v1/stream-tickets",
        data=json.dumps({"job_ids": [job_id]}).encode(),
        headers={"X-API-Key": config.key, "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            return answer.status, answer.read(), answer.headers.get("Content-Type", "")
    except urllib.error.HTTPError as refused:
        # The gateway's problem (404 for a job that is not the key's, 429...) as it is.
        return refused.code, refused.read(), refused.headers.get("Content-Type", PROBLEM)
    except OSError as exc:
        return HTTPStatus.BAD_GATEWAY, problem(502, "Gateway unreachable", str(exc)), PROBLEM


def problem(status: int, title: str, detail: str) -> bytes:
    """An RFC 9457 problem document."""
    return json.dumps(
        {"type": "about:blank", "title": title, "status": status, "detail": detail}
    ).encode()


def make_handler(config: Config) -> type[BaseHTTPRequestHandler]:
    """The request handler class bound to `config`."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "job-progress-example"

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/":
                # The page, told where the gateway is; the job id comes from the query.
                query = {"mode": "backend", "gateway": config.browser_gateway}
                query.update({k: v[-1] for k, v in parse_qs(url.query).items()})
                self.send_response(HTTPStatus.FOUND)
                self.send_header("Location", f"/job-progress.html?{urlencode(query)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif url.path == "/job-progress.html":
                self.reply(HTTPStatus.OK, PAGE.read_bytes(), "text/html; charset=utf-8")
            else:
                self.reply(404, problem(404, "Not found", "Try /"), PROBLEM)

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            if url.path != "/ticket":
                self.reply(404, problem(404, "Not found", "POST /ticket?job=<id>"), PROBLEM)
                return
            job_id = parse_qs(url.query).get("job", [""])[-1]
            if not JOB_ID.fullmatch(job_id):
                detail = "?job= must be a job id (job_ and 24 hex digits)"
                self.reply(400, problem(400, "Bad job id", detail), PROBLEM)
                return
            status, body, content_type = ask_ticket(config, job_id)
            self.reply(status, body, content_type)

        def reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            # Tickets are credentials, if short-lived ones: never cached.
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            # The request line only (no ticket is ever in it), as http.server does.
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    return Handler


def main(argv: list[str] | None = None) -> None:
    """Parse the options and serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", required=True, help="the gateway's public URL")
    parser.add_argument(
        "--browser-gateway",
        help="the gateway's URL as the browser reaches it (default: --gateway)",
    )
    parser.add_argument("--key", default=os.environ.get("GATEWAY_API_KEY"), help="API key")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args(argv)
    if not args.key:
        parser.error("an API key is needed: --key or GATEWAY_API_KEY")
    config = Config(args.gateway, args.browser_gateway or args.gateway, args.key)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(config))
    print(f"serving http://{args.host}:{server.server_port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
