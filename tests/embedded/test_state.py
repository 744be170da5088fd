"""How a command finds the embedded servers of the gateway that owns a data dir: the lock
says whether an owner lives, the state file where its servers listen."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.embedded.errors import EmbeddedBackendError
from gateway.embedded.files import lock_data_dir
from gateway.embedded.state import (
    LOCK_FILE,
    STATE_FILE,
    RunningBackends,
    remove_state,
    running_backends,
    write_state,
)

REDIS = "unix:///d/redis/redis.sock?db=0"
DATABASE = "postgresql+asyncpg://postgres@/gateway?host=/d/postgres"


def test_a_data_dir_nobody_owns_has_no_running_backends(tmp_path: Path) -> None:
    assert running_backends(tmp_path) is None  # no lock file at all
    write_state(tmp_path, REDIS, DATABASE)  # left behind by a killed gateway
    (tmp_path / LOCK_FILE).write_text("999999\n")
    assert running_backends(tmp_path) is None


def test_the_owners_published_urls_are_found(tmp_path: Path) -> None:
    fd = lock_data_dir(tmp_path / LOCK_FILE)
    try:
        write_state(tmp_path, REDIS, DATABASE)
        assert running_backends(tmp_path) == RunningBackends(os.getpid(), REDIS, DATABASE)
        remove_state(tmp_path)
        assert not (tmp_path / STATE_FILE).exists()
    finally:
        os.close(fd)


def test_an_owner_still_starting_is_one_line_to_retry(tmp_path: Path) -> None:
    fd = lock_data_dir(tmp_path / LOCK_FILE)
    try:
        with pytest.raises(EmbeddedBackendError, match="still starting: try again"):
            running_backends(tmp_path)
    finally:
        os.close(fd)
