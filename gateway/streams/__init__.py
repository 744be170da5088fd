"""Live streams: job events to SSE and WebSocket clients, one Redis reader per process.

`hub.py` reads the cross-job feed once per process and hands each event to the
connections that follow its job (`outbox.py`, bounded); `follow.py` turns a job's
snapshot, its stream's replay and the live events into one gap-free, duplicate-free
sequence per follower; `caps.py` counts followers across replicas; `tickets.py` signs
the single-use tickets browsers use instead of headers. The HTTP and WebSocket framing
lives in `gateway/api/external/streams.py` and `ws.py`.
"""
