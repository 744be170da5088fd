"""The deterministic split: realised shares and stability per unit."""

from __future__ import annotations

import pytest

from gateway.work.routing.split import goes_to_celery, position

KEYS = [f"{i:02d}-{i * 7919 % 100000:05d}-{i % 977:03d}" for i in range(10_000)]


@pytest.mark.parametrize("share", [0.0, 0.1, 0.3, 0.5, 1.0])
def test_the_realised_share_over_10000_keys_is_within_2_points(share: float) -> None:
    routed = sum(goes_to_celery("miami_dade", k, share) for k in KEYS)
    assert abs(routed / len(KEYS) - share) <= 0.02
    if share == 0.0:
        assert routed == 0
    if share == 1.0:
        assert routed == len(KEYS)


def test_the_same_unit_always_goes_the_same_way() -> None:
    first = [goes_to_celery("broward", k, 0.3) for k in KEYS[:500]]
    again = [goes_to_celery("broward", k, 0.3) for k in KEYS[:500]]
    assert first == again


def test_raising_a_share_only_moves_units_to_celery() -> None:
    at_10 = {k for k in KEYS if goes_to_celery("alpha", k, 0.1)}
    at_50 = {k for k in KEYS if goes_to_celery("alpha", k, 0.5)}
    assert at_10 < at_50


def test_the_platform_is_part_of_the_position() -> None:
    # Same key on two platforms: independent positions (not all the same side).
    differs = sum(
        goes_to_celery("alpha", k, 0.5) != goes_to_celery("beta", k, 0.5) for k in KEYS[:1000]
    )
    assert 300 < differs < 700


def test_positions_are_in_the_unit_interval() -> None:
    assert all(0.0 <= position("alpha", k) < 1.0 for k in KEYS)
