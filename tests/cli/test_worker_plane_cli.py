"""Operator commands, run as real `gateway` subprocesses against the test's backends."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from gateway.core.settings import Settings
from tests.support.gateway_process import backend_env, run_gateway
from tests.support.work import enqueue, failed, lease, make_token, post_results

pytestmark = pytest.mark.integration


def _env(settings: Settings) -> dict[str, str]:
    return {**backend_env(settings), "ENVIRONMENT": "test"}


async def test_tokens_create_list_revoke(
    settings: Settings, parcel_client: httpx.AsyncClient, tmp_path: Path
) -> None:
    env = _env(settings)
    created = run_gateway(
        ["tokens", "create", "--audience", "parcel", "--name", "scheduler", "--role", "producer"],
        env,
        tmp_path,
    )
    assert created.returncode == 0, created.stderr
    # The token alone on stdout (`T=$(gateway tokens create ...)`), what it is on stderr.
    token = created.stdout.removesuffix("\n")
    assert token.startswith("gwt_parcel_")
    assert " " not in token
    assert "\n" not in token
    assert "Created producer token 'scheduler' for the parcel port." in created.stderr

    listed = run_gateway(["tokens", "list"], env, tmp_path)
    assert listed.returncode == 0
    assert "scheduler" in listed.stdout
    assert "producer" in listed.stdout
    assert token not in listed.stdout
    as_json = run_gateway(["tokens", "list", "--json"], env, tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    (row,) = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert (row["name"], row["audience"], row["role"], row["revoked_at"]) == (
        "scheduler",
        "parcel",
        "producer",
        None,
    )
    assert token not in as_json.stdout

    clash = run_gateway(
        ["tokens", "create", "--audience", "parcel", "--name", "scheduler"], env, tmp_path
    )
    assert clash.returncode == 1
    assert "already exists" in clash.stderr

    # The printed token works on its port, and enqueues (producer role).
    assert (await enqueue(parcel_client, token, [{"platform": "alpha", "key": "k"}]))[
        "enqueued"
    ] == 1

    revoked = run_gateway(["tokens", "revoke", "scheduler"], env, tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    response = await parcel_client.get(
        "/internal/work",
        params={"worker_id": "w", "platforms": "alpha"},
        headers={"X-Worker-Token": token},
    )
    assert response.status_code == 401
    assert "scheduler" in run_gateway(["tokens", "list", "--all"], env, tmp_path).stdout
    missing = run_gateway(["tokens", "revoke", "scheduler"], env, tmp_path)
    assert missing.returncode == 1  # no live token of that name any more


async def test_enqueue_from_a_file(
    settings: Settings, parcel_client: httpx.AsyncClient, tmp_path: Path
) -> None:
    from gateway.core.resources import BackendUrls, open_resources

    env = _env(settings)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"platform": "alpha", "key": "a"}\nnot json\n{"platform": "BAD", "key": "b"}\n')
    rejected = run_gateway(["enqueue", "--audience", "parcel", str(bad)], env, tmp_path)
    assert rejected.returncode == 2
    assert "line 2" in rejected.stderr
    assert "line 3" in rejected.stderr

    good = tmp_path / "tasks.jsonl"
    lines = [
        {"platform": "alpha", "key": "a"},
        {"platform": "alpha", "key": "b", "priority": 3},
        {"platform": "alpha", "key": "a"},
    ]
    good.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    done = run_gateway(["enqueue", "--audience", "parcel", str(good)], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "enqueued=2 duplicates=1"

    assert settings.redis_url is not None
    assert settings.database_url is not None
    async with open_resources(
        settings, BackendUrls(settings.redis_url, settings.database_url)
    ) as resources:
        token = await make_token(resources, "parcel", "worker")
    tasks = await lease(parcel_client, token, limit=10)
    assert [t["key"] for t in tasks] == ["b", "a"]  # nothing from the rejected file


async def test_workers_and_dead_letters(
    settings: Settings, parcel_client: httpx.AsyncClient, tmp_path: Path
) -> None:
    from gateway.core.resources import BackendUrls, open_resources

    env = _env(settings)
    assert settings.redis_url is not None
    assert settings.database_url is not None
    async with open_resources(
        settings, BackendUrls(settings.redis_url, settings.database_url)
    ) as resources:
        token = await make_token(resources)
    headers = {"X-Worker-Token": token}
    await parcel_client.post(
        "/internal/heartbeat",
        json={"worker_id": "w-17", "platforms": ["alpha"], "version": "9.9"},
        headers=headers,
    )

    listed = run_gateway(["workers", "list", "--audience", "parcel", "--json"], env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    workers = [json.loads(line) for line in listed.stdout.splitlines() if line.startswith("{")]
    assert [(w["worker_id"], w["version"], w["command"]) for w in workers] == [
        ("w-17", "9.9", "run")
    ]
    assert (
        run_gateway(
            ["workers", "list", "--audience", "party", "--json"], env, tmp_path
        ).stdout.strip()
        == ""
    )

    quiet = run_gateway(
        ["workers", "command", "--audience", "parcel", "quiet", "--worker", "w-17"], env, tmp_path
    )
    assert quiet.returncode == 0, quiet.stderr
    beat = await parcel_client.post(
        "/internal/heartbeat", json={"worker_id": "w-17"}, headers=headers
    )
    assert beat.json()["command"] == "quiet"

    await enqueue(parcel_client, token, [{"platform": "alpha", "key": "doomed"}])
    (task,) = await lease(parcel_client, token, worker_id="w-2")
    await post_results(
        parcel_client, token, [failed(task, "404 at county site", retryable=False)], worker_id="w-2"
    )

    dead = run_gateway(["dlq", "list", "--audience", "parcel", "--json"], env, tmp_path)
    assert dead.returncode == 0, dead.stderr
    (row,) = [json.loads(line) for line in dead.stdout.splitlines() if line.startswith("{")]
    assert (row["task_id"], row["key"]) == (task["task_id"], "doomed")
    assert row["errors"][0]["message"] == "404 at county site"

    requeued = run_gateway(["dlq", "requeue", "--audience", "parcel", "--all"], env, tmp_path)
    assert requeued.stdout.strip().splitlines()[-1] == "requeued=1 dropped_as_duplicate=0"
    (again,) = await lease(parcel_client, token, worker_id="w-2")
    assert again["task_id"] == task["task_id"]
    await post_results(
        parcel_client, token, [failed(again, "still 404", retryable=False)], worker_id="w-2"
    )

    purged = run_gateway(
        ["dlq", "purge", "--audience", "parcel", "--task-id", task["task_id"]], env, tmp_path
    )
    assert purged.stdout.strip().splitlines()[-1] == "purged=1"
    empty = run_gateway(["dlq", "list", "--audience", "parcel", "--json"], env, tmp_path)
    assert empty.stdout.strip() == ""


async def test_routing_show_and_set(settings: Settings, tmp_path: Path) -> None:
    route = {"audience": "parcel", "platform": "alpha", "share": 0.2, "task": "scrape_parcel"}
    env = {
        **_env(settings),
        "CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
        "CELERY_ROUTES": json.dumps([route]),
    }
    changed = run_gateway(["routing", "set", "parcel/alpha", "0.75"], env, tmp_path)
    assert changed.returncode == 0, changed.stderr
    assert "parcel/alpha: share 0.750" in changed.stdout

    shown = run_gateway(["routing", "show", "--json"], env, tmp_path)
    assert shown.returncode == 0, shown.stderr
    (listed,) = [json.loads(line) for line in shown.stdout.splitlines()]  # one per route
    assert (listed["id"], listed["share"], listed["configured_share"]) == (
        "parcel/alpha",
        0.75,
        0.2,
    )
    assert listed["set_by"].startswith("cli:")
    assert listed["history"][0]["share"] == 0.75

    bad = run_gateway(["routing", "set", "parcel/alpha", "2"], env, tmp_path)
    assert bad.returncode == 2
    assert "0.0 to 1.0" in bad.stderr
    unknown = run_gateway(["routing", "set", "parcel/nowhere", "0.5"], env, tmp_path)
    assert unknown.returncode == 2
    assert "no such route" in unknown.stderr

    drained = run_gateway(["routing", "drain", "parcel/alpha"], env, tmp_path)
    assert drained.returncode == 0, drained.stderr
    assert drained.stdout.startswith("parcel/alpha: to_native=0 relabelled=0")
    malformed = run_gateway(["routing", "drain", "alpha"], env, tmp_path)
    assert malformed.returncode == 2
    assert "a route id" in malformed.stderr
