"""A small async client for the gateway's worker protocol (httpx only, no server imports).

```python
client = WorkerClient("http://gateway:8081", token, worker_id="parser-7")
worker = Worker(client, ["miami_dade"], handler, concurrency=20)
await worker.run()
```

See the "Proxy pool and worker client" section of the README for the guarantees (no
result is dropped before the gateway acknowledged it; lost leases cancel their work;
quiet/terminate are honoured).
"""

from taxlien_worker.http import WorkerClient
from taxlien_worker.models import (
    GatewayUnavailable,
    HeartbeatReply,
    NoProxyAvailable,
    ProxyLease,
    Result,
    ResultOutcome,
    Task,
    WorkerClientError,
)
from taxlien_worker.proxy import ProxySession
from taxlien_worker.results import ResultBuffer
from taxlien_worker.worker import Handler, TaskContext, TaskFailed, Worker, WorkerStats

__all__ = [
    "GatewayUnavailable",
    "Handler",
    "HeartbeatReply",
    "NoProxyAvailable",
    "ProxyLease",
    "ProxySession",
    "Result",
    "ResultBuffer",
    "ResultOutcome",
    "Task",
    "TaskContext",
    "TaskFailed",
    "Worker",
    "WorkerClient",
    "WorkerClientError",
    "WorkerStats",
]
