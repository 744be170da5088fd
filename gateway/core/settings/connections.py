"""Client connection bounds of every port, composed into `Settings` (flat env names).

What one client may hold open and for how long (`gateway/process/connection_limits.py`
enforces them): uvicorn bounds only the idle time between requests.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class ConnectionSettings(BaseSettings):
    """Deadlines and caps of client connections, per port."""

    # A request head (request line and headers) must be complete this long after its
    # first byte, and a new connection must complete one this long after it opened.
    http_head_timeout_s: float = Field(default=10.0, gt=0, le=300)
    # A request body gets this long, plus one second per HTTP_BODY_MIN_RATE bytes that
    # arrived: a body slower than that on average is cut. The clock stops while the
    # gateway, not the client, is the one not reading.
    http_body_timeout_s: float = Field(default=10.0, gt=0, le=300)
    http_body_min_rate: int = Field(default=1024, ge=1)
    # Per-connection write buffer: above it uvicorn waits before writing more of a
    # streamed response. A buffer that stays above it without shrinking for
    # HTTP_WRITE_STALL_TIMEOUT_S means the client stopped reading: the connection is cut.
    http_write_buffer_bytes: int = Field(default=65_536, ge=4096, le=16_777_216)
    http_write_stall_timeout_s: float = Field(default=30.0, gt=0, le=600)
    # Open client connections per port; beyond it requests get a 503 problem and the
    # connection is closed.
    max_connections_per_port: int = Field(default=4096, ge=1, le=1_000_000)
