"""`gateway serve`: the process from start-up to exit code.

Order matters and is the point of this module: bind every port first (a clash costs
nothing yet), then start embedded backends if no real ones are configured, apply
migrations where allowed, open the shared resources, build the three apps, and run them
until a signal. Teardown runs in reverse, each step exactly once.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import structlog

from gateway.apps.registry import app_specs
from gateway.core.backends import backends
from gateway.core.observability.gc_pauses import settle_startup_heap
from gateway.core.resources import BackendUrls, Resources, open_resources
from gateway.core.settings import LogFormat, Settings
from gateway.migrations.runner import upgrade_to_head
from gateway.process.banner import announce
from gateway.process.connection_limits import ConnectionLimits
from gateway.process.monitor import ProcessMonitor
from gateway.process.runner import Runner, ServerEntry, all_accepting, bind_socket, make_server

log = structlog.get_logger("gateway.serve")


def serve(settings: Settings, *, log_format: LogFormat = LogFormat.JSON) -> int:
    """Run the gateway until stopped; returns the process exit code. `log_format` is the
    one logging was configured with: it decides how the ready block is written."""
    sockets = _bind_all(settings)
    try:
        with backends(settings) as urls:
            if settings.migrate_on_start:
                upgrade_to_head(urls.database_url)
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                return runner.run(_serve(settings, urls, sockets, log_format))
    finally:
        for sock in sockets.values():
            sock.close()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (uvicorn[standard] brings it), else asyncio's default."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a declared dependency
        return None
    return uvloop.new_event_loop


def _bind_all(settings: Settings) -> dict[str, socket.socket]:
    bound: dict[str, socket.socket] = {}
    try:
        for spec in app_specs(settings):
            bound[spec.audience.value] = bind_socket(
                settings.gateway_host, spec.port, spec.audience.value
            )
    except Exception:
        for sock in bound.values():
            sock.close()
        raise
    return bound


def process_monitor(resources: Resources) -> ProcessMonitor:
    """The process's one loop-lag sampler and dependency prober."""
    return ProcessMonitor(
        resources.metrics.runtime,
        redis=resources.redis,
        engine=resources.engine,
        probe_timeout_s=resources.settings.ready_timeout_s,
    )


async def _serve(
    settings: Settings,
    urls: BackendUrls,
    sockets: dict[str, socket.socket],
    log_format: LogFormat,
) -> int:
    async with open_resources(settings, urls) as resources, process_monitor(resources):
        entries = []
        limits = ConnectionLimits.from_settings(settings)
        for spec in app_specs(settings):
            sock = sockets[spec.audience.value]
            app = spec.factory(resources)
            server = make_server(
                app,
                sock,
                graceful_timeout_s=settings.graceful_timeout_s,
                fastpath=settings.fastpath,
                limits=limits,
                registry=resources.metrics.registry(spec.audience),
                ws_ping_interval_s=settings.ws_ping_interval_s,
                ws_max_message_bytes=settings.ws_max_message_bytes,
            )
            entries.append(ServerEntry(spec.audience.value, server, sock))
            log.info(
                "listening",
                server=spec.audience.value,
                address="{}:{}".format(*sock.getsockname()[:2]),
            )
        # Everything built so far lives until exit: keep the collector off it.
        settle_startup_heap()
        addresses = {e.name: e.sock.getsockname()[:2] for e in entries}

        async def announce_when_accepting() -> None:
            await all_accepting(entries)
            announce(settings, addresses, log_format)

        # Never set when a server fails to start; cancelled below in that case.
        announcing = asyncio.create_task(announce_when_accepting())
        try:
            code = await Runner(entries, resources.stopping).run()
        finally:
            announcing.cancel()
    log.info("stopped", exit_code=code)
    return code
