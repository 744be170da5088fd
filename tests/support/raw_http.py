"""An HTTP request that a test can prove the server has read, for in-flight tests.

"Send a request, sleep, then signal the server" assumes the server has read the request
after the sleep; on a busy machine it may not have, and the test then checks something
else (a refused or reset connection instead of a request drained on shutdown). Here the
test sends the request on a raw socket and waits until the kernel reports that the
server's end of the connection has nothing left unread (`rx_queue` in `/proc/net/tcp`):
the bytes were in that queue when `sendall` returned (loopback delivers at once), so an
empty queue means the server accepted the connection and consumed the request.
"""

from __future__ import annotations

import socket
from pathlib import Path

from tests.support.wait import wait_until_sync


class RawRequest:
    """One `GET` sent on its own connection; the answer is read with `status()`."""

    def __init__(self, port: int, path: str, host: str = "127.0.0.1") -> None:
        self.server_port = port
        self.sock = socket.create_connection((host, port), timeout=60)
        self.client_port: int = self.sock.getsockname()[1]
        request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
        self.sock.sendall(request.encode())

    def unread_by_server(self) -> int | None:
        """Bytes the server has not read yet; None when the kernel knows no such socket."""
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, queues = fields[1], fields[2], fields[4]
            if (int(local.rpartition(":")[2], 16), int(remote.rpartition(":")[2], 16)) == (
                self.server_port,
                self.client_port,
            ):
                return int(queues.rpartition(":")[2], 16)
        return None

    def wait_read_by_server(self) -> None:
        """Block until the server has consumed the whole request (bounded)."""
        wait_until_sync(lambda: self.unread_by_server() == 0, what="the server reading the request")

    def status(self) -> int:
        """The response's status code (blocks until the status line arrives)."""
        received = b""
        while b"\r\n" not in received:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"connection closed before a status line: {received!r}")
            received += chunk
        return int(received.split(b" ", 2)[1])

    def close(self) -> None:
        """Close the client end."""
        self.sock.close()
