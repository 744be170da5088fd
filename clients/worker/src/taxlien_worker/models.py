"""What the worker client sends and receives, as plain dataclasses (no server imports)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Outcome = Literal["accepted", "duplicate", "rejected"]
Command = Literal["run", "quiet", "terminate"]
ProxyOutcome = Literal["ok", "banned", "error"]


def parse_time(value: str) -> datetime:
    """An RFC 3339 timestamp as the gateway writes it."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Task:
    """A leased task; `lease_id` is the proof of ownership for its result."""

    task_id: str
    lease_id: str
    platform: str
    key: str
    payload: dict[str, Any]
    attempt: int
    lease_expires_at: datetime

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Task:
        """Build from one item of `/internal/work`."""
        return cls(
            task_id=doc["task_id"],
            lease_id=doc["lease_id"],
            platform=doc["platform"],
            key=doc["key"],
            payload=doc.get("payload") or {},
            attempt=int(doc["attempt"]),
            lease_expires_at=parse_time(doc["lease_expires_at"]),
        )


@dataclass(frozen=True)
class Result:
    """One result item for `/internal/results`."""

    task_id: str
    lease_id: str
    status: Literal["succeeded", "failed"]
    data: Any = None
    error_message: str | None = None
    retryable: bool = True

    @classmethod
    def succeeded(cls, task: Task, data: Any) -> Result:
        """A succeeded result carrying the audience's result document."""
        return cls(task.task_id, task.lease_id, "succeeded", data=data)

    @classmethod
    def failed(cls, task: Task, message: str, *, retryable: bool = True) -> Result:
        """A failure; retryable ones are requeued with backoff, others dead-lettered."""
        return cls(
            task.task_id, task.lease_id, "failed", error_message=message, retryable=retryable
        )

    def to_json(self) -> dict[str, Any]:
        """The wire form."""
        doc: dict[str, Any] = {
            "task_id": self.task_id,
            "lease_id": self.lease_id,
            "status": self.status,
        }
        if self.status == "succeeded":
            doc["data"] = self.data
        else:
            doc["error"] = {"message": self.error_message or "", "retryable": self.retryable}
        return doc


@dataclass(frozen=True)
class ResultOutcome:
    """The gateway's verdict on one result item."""

    task_id: str | None
    lease_id: str | None
    outcome: Outcome
    reason: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ResultOutcome:
        """Build from one item of the `/internal/results` answer."""
        return cls(
            task_id=doc.get("task_id"),
            lease_id=doc.get("lease_id"),
            outcome=doc["outcome"],
            reason=doc.get("reason"),
            errors=list(doc.get("errors") or []),
        )


@dataclass(frozen=True)
class HeartbeatReply:
    """What a heartbeat learnt: leases extended and lost, and what to do next."""

    extended: list[str]
    lost: list[str]
    command: Command
    heartbeat_interval_s: float


@dataclass(frozen=True)
class ProxyLease:
    """An outbound proxy leased for one platform; `proxy_url` carries credentials."""

    proxy_lease_id: str
    proxy_id: str
    proxy_url: str
    platform: str
    expires_at: datetime

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ProxyLease:
        """Build from a lease or rotate answer."""
        return cls(
            proxy_lease_id=doc["proxy_lease_id"],
            proxy_id=doc["proxy_id"],
            proxy_url=doc["proxy_url"],
            platform=doc["platform"],
            expires_at=parse_time(doc["expires_at"]),
        )

    def __repr__(self) -> str:
        # Never print the credentials, even in a traceback's locals.
        return f"ProxyLease(id={self.proxy_id!r}, platform={self.platform!r})"


class WorkerClientError(Exception):
    """The gateway refused a request for good (4xx other than 404 on release)."""

    def __init__(self, message: str, status: int | None = None, problem: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem


class GatewayUnavailable(WorkerClientError):
    """Connection failure, timeout, or 5xx: the same request may be retried."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        problem: Any = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, status, problem)
        self.retry_after_s = retry_after_s


class NoProxyAvailable(GatewayUnavailable):
    """Every proxy for the platform is leased or cooling down."""
