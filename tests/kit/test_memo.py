"""`PerOwner`: one object per live owner."""

from __future__ import annotations

import gc

from gateway.kit.memo import PerOwner


class Owner:
    pass


def test_builds_once_per_owner_and_forgets_dead_owners() -> None:
    built: list[int] = []

    def build(owner: Owner) -> list[int]:
        built.append(id(owner))
        return [len(built)]

    memo: PerOwner[Owner, list[int]] = PerOwner(build)
    first, second = Owner(), Owner()
    assert memo(first) is memo(first)
    assert memo(second) is not memo(first)
    assert built == [id(first), id(second)]
    del first
    gc.collect()
    assert len(memo._built) == 1  # the dead owner's object went with it
