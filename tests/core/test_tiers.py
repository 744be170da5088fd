"""Tiers from TIERS_FILE (TOML or JSON) with built-in defaults; bad files fail at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.core.settings.tiers import DEFAULT_TIERS, TierConfigError, load_tiers
from tests.support.gateway_process import run_gateway


def test_builtin_defaults() -> None:
    tiers = load_tiers(None, "free")
    assert tiers.names() == ["anonymous", "enterprise", "free", "pro"]
    assert tiers.get("pro") == DEFAULT_TIERS["pro"]
    assert tiers.get("no-such-tier") is tiers.default
    assert tiers.default.name == "free"


def test_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "tiers.toml"
    path.write_text(
        "[tiers.basic]\nrate_per_s = 0.5\nburst = 5\ndaily_quota = 100\nmax_page_size = 10\n"
        "[tiers.partner]\nrate_per_s = 50\nburst = 200\ndaily_quota = 0\nmax_page_size = 200\n"
    )
    tiers = load_tiers(path, "basic")
    assert tiers.names() == ["basic", "partner"]
    assert tiers.get("partner").burst == 200
    assert tiers.get("partner").bucket_window_s == 4


@pytest.mark.parametrize(
    "body",
    [
        "not toml [",
        "[tiers]\n",
        "[tiers.x]\nrate_per_s = 0\nburst = 1\ndaily_quota = 0\nmax_page_size = 1\n",
        "[tiers.x]\nrate_per_s = 1\nburst = 1\ndaily_quota = 0\nmax_page_size = 1\nfoo = 2\n",
    ],
)
def test_invalid_files_are_refused(tmp_path: Path, body: str) -> None:
    path = tmp_path / "tiers.toml"
    path.write_text(body)
    with pytest.raises(TierConfigError, match="TIERS_FILE"):
        load_tiers(path, "x")


def test_serve_refuses_an_unknown_default_tier(tmp_path: Path) -> None:
    env = {
        "REDIS_URL": "redis://127.0.0.1:6379/15",
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test",
        "DEFAULT_TIER": "platinum",
    }
    result = run_gateway(["serve"], env, tmp_path)
    assert result.returncode == 2
    assert "DEFAULT_TIER 'platinum' is not a configured tier" in result.stderr
    assert "Traceback" not in result.stderr
