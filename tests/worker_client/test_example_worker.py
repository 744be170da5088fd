"""The example worker's fake scrape produces results the gateway accepts, via a proxy."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from gateway.core.audience import Audience
from gateway.core.resources import Resources
from gateway.proxy_pool.inventory import add_proxies
from taxlien_worker import Task, TaskContext, Worker, WorkerClient
from tests.conftest import FACTORIES, app_client
from tests.support.work import make_token

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "parcel_worker.py"


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("parcel_worker_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_example_scrape_results_are_accepted(resources: Resources) -> None:
    example = _load_example()
    await add_proxies(resources, ["http://u:p@127.0.0.2:3128"])

    async def handler(task: Task, ctx: TaskContext) -> Any:
        return await example.scrape(task, ctx, use_proxy=True, delay_s=0)

    app = FACTORIES[Audience.PARCEL](resources)
    async with app_client(app) as http:
        producer = await make_token(resources, "parcel", "producer")
        tasks = [{"platform": "alpha", "key": f"12-{i}", "payload": {}} for i in range(5)]
        response = await http.post(
            "/internal/tasks", json={"tasks": tasks}, headers={"X-Worker-Token": producer}
        )
        assert response.status_code == 200
        worker = Worker(
            WorkerClient("http://gateway.test", await make_token(resources), "ex", http=http),
            ["alpha"],
            handler,
            concurrency=2,
            wait_s=0.5,
            result_delay_s=0.01,
        )
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))
        loop = asyncio.get_running_loop()
        end = loop.time() + 30
        while worker.stats.outcomes["accepted"] < 5 and loop.time() < end:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        stop.set()
        stats = await running
    assert stats.outcomes == {"accepted": 5}
