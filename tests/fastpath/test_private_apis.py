"""Contract tests: the private APIs the fast path (and a few other hooks) rely on.

Each test names the private attribute our code touches and checks that the installed
dependency still has it in the shape we use. A dependency upgrade that moves one fails
here, by name, instead of silently slowing or breaking a request (the bounds in
pyproject.toml keep such an upgrade from arriving unnoticed; these tests say what to
re-check when a bound is raised). See gateway/fastpath/README.md.
"""

from __future__ import annotations

import inspect

import redis.asyncio
import uvicorn
from fastapi import FastAPI
from starlette.applications import Starlette
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle


def test_uvicorn_start_asgi_task_takes_the_cycle_and_the_app() -> None:
    # gateway/fastpath/one_write.py overrides it to wrap each cycle's transport.
    hook = HttpToolsProtocol._start_asgi_task
    assert list(inspect.signature(hook).parameters) == ["self", "cycle", "app"]


def test_uvicorn_cycle_has_the_attributes_one_write_swaps() -> None:
    params = inspect.signature(RequestResponseCycle.__init__).parameters
    # The cycle keeps the transport and the completion callback it was built with.
    assert {"transport", "on_response"} <= set(params)
    source = inspect.getsource(RequestResponseCycle)
    for attribute in ("self.transport", "self.on_response", "self.waiting_for_100_continue"):
        assert attribute in source


def test_uvicorn_parser_callbacks_the_connection_bounds_extend() -> None:
    # gateway/process/connection_limits.py stamps deadlines in these callbacks.
    assert list(inspect.signature(HttpToolsProtocol.on_message_begin).parameters) == ["self"]
    assert list(inspect.signature(HttpToolsProtocol.on_headers_complete).parameters) == ["self"]
    assert list(inspect.signature(HttpToolsProtocol.on_body).parameters) == ["self", "body"]


def test_uvicorn_protocol_state_the_connection_bounds_read() -> None:
    source = inspect.getsource(HttpToolsProtocol)
    for attribute in ("self.flow", "self.cycle", "self.connections", "self.transport"):
        assert attribute in source
    # A connection over the cap swaps its own `app`: the one each request is started with.
    assert "app = self.app" in inspect.getsource(HttpToolsProtocol.on_headers_complete)
    # The body is over when the cycle says so.
    assert "self.cycle.more_body = False" in inspect.getsource(
        HttpToolsProtocol.on_message_complete
    )
    flow = inspect.getsource(FlowControl.__init__)
    assert "self.read_paused" in flow
    assert "self.write_paused" in flow


def test_uvicorn_server_hooks_the_runner_extends() -> None:
    # gateway/process/runner.py: _Server starts its deadline sweep after startup and
    # waits for cancelled requests after shutdown; both take the sockets.
    for hook in (uvicorn.Server.startup, uvicorn.Server.shutdown):
        assert list(inspect.signature(hook).parameters) == ["self", "sockets"]
    state = uvicorn.Server(uvicorn.Config(app=None)).server_state  # type: ignore[arg-type]
    assert isinstance(state.connections, set)
    assert isinstance(state.tasks, set)


def test_redis_connection_read_response_accepts_a_timeout() -> None:
    # gateway/fastpath/redis_batch.py reads each batch's reply with timeout=math.inf.
    params = inspect.signature(redis.asyncio.Connection.read_response).parameters
    assert "timeout" in params


def test_redis_pool_keeps_its_connection_lists() -> None:
    # The pool gauges (gateway/core/observability/runtime.py) read both lists.
    pool = redis.asyncio.ConnectionPool()
    assert isinstance(pool._in_use_connections, set)
    assert isinstance(pool._available_connections, list)


def test_starlette_builds_its_stack_where_gateway_app_expects() -> None:
    # gateway/apps/builder.py wraps build_middleware_stack and calls middleware_stack.
    app = FastAPI()
    assert app.middleware_stack is None  # built lazily on the first call
    assert callable(Starlette.build_middleware_stack)
    assert app.build_middleware_stack() is not None
    assert app.root_path == ""


def test_firebase_client_keeps_the_sessions_close_reaches() -> None:
    # FirebaseVerifier.close closes the auth client's HTTP sessions by hand.
    from firebase_admin import _auth_client

    source = inspect.getsource(_auth_client.Client.__init__)
    assert "self._token_verifier" in source
    assert "self._user_manager" in source
