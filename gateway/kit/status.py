"""The shape of `GET /v1/admin/status`: one entry per component, and the overall state.

A component is anything an operator asks "is it working?" about (Redis, PostgreSQL, the
Celery side, ...). Each one reports `ok`, `degraded` (working, but something needs a
look: no Celery worker answering), `down` (not working) or `disabled` (not configured),
with details of its own. The overall state is the worst of them (`disabled` counts as
`ok`). New components are added by appending a check where the endpoint assembles
them (`gateway/api/external/admin_status.py`); this module knows none of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

State = Literal["ok", "degraded", "down", "disabled"]
_RANK = {"disabled": 0, "ok": 0, "degraded": 1, "down": 2}


@dataclass(frozen=True)
class ComponentStatus:
    """One component's state and details (JSON-ready values only)."""

    name: str
    status: State
    details: dict[str, Any] = field(default_factory=dict)


def overall(components: list[ComponentStatus]) -> State:
    """The worst state among `components` (`ok` when all are ok or disabled)."""
    worst: State = "ok"
    for c in components:
        if _RANK[c.status] > _RANK[worst]:
            worst = c.status
    return worst
