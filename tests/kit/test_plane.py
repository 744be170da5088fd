"""`running(planes)`: start in order, stop in reverse, and only what started."""

from __future__ import annotations

from typing import ClassVar, Self

import pytest

from gateway.core.audience import Audience
from gateway.core.resources import Resources
from gateway.kit.plane import running


class Recorder:
    name: ClassVar[str] = "recorder"

    def __init__(self, label: str, log: list[str], *, fail_start: bool = False) -> None:
        self.label, self.log, self.fail_start = label, log, fail_start

    @classmethod
    def build(cls, resources: Resources, audience: Audience) -> Self:
        raise NotImplementedError

    async def start(self) -> None:
        if self.fail_start:
            raise RuntimeError(f"{self.label} cannot start")
        self.log.append(f"start {self.label}")

    async def stop(self) -> None:
        self.log.append(f"stop {self.label}")


async def test_planes_start_in_order_and_stop_in_reverse() -> None:
    log: list[str] = []
    async with running([Recorder("a", log), Recorder("b", log)]):
        log.append("serving")
    assert log == ["start a", "start b", "serving", "stop b", "stop a"]


async def test_a_failed_start_stops_what_already_started() -> None:
    log: list[str] = []
    planes = [Recorder("a", log), Recorder("b", log, fail_start=True), Recorder("c", log)]
    with pytest.raises(RuntimeError, match="b cannot start"):
        async with running(planes):
            log.append("serving")
    assert log == ["start a", "stop a"]
