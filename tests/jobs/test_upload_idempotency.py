"""A retried upload with the same Idempotency-Key replays, whatever boundary the client
picked for its second multipart body."""

from __future__ import annotations

from typing import Any

from gateway.core.settings import Settings
from tests.support.jobs import jobs_harness


def _multipart(boundary: str, csv: str) -> bytes:
    return (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="kind"\r\n\r\n'
        "parcel_refresh\r\n"
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="p.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
        f"{csv}\r\n"
        f"--{boundary}--\r\n"
    ).encode()


async def test_a_retried_upload_replays_across_boundaries(settings: Settings) -> None:
    csv = "platform,parcel_id\nalpha,u-1\nalpha,u-2\n"
    async with jobs_harness(settings, job_upkeep_interval_s=3600) as h:
        key = await h.key()
        answers: list[Any] = []
        for boundary in ("first-boundary-1234", "another-one-5678"):
            answers.append(
                await h.public.post(
                    "/v1/jobs/upload",
                    content=_multipart(boundary, csv),
                    headers={
                        "X-API-Key": key,
                        "Idempotency-Key": '"upload-1"',
                        "Content-Type": f"multipart/form-data; boundary={boundary}",
                    },
                )
            )
        changed = await h.public.post(
            "/v1/jobs/upload",
            content=_multipart("third-9999", csv + "alpha,u-3\n"),
            headers={
                "X-API-Key": key,
                "Idempotency-Key": '"upload-1"',
                "Content-Type": "multipart/form-data; boundary=third-9999",
            },
        )
        jobs = await h.count("SELECT count(*) FROM jobs")
    first, second = answers
    assert first.status_code == 201, first.text
    assert second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json()["id"] == first.json()["id"]
    assert changed.status_code == 422  # another file under the same key is a client bug
    assert jobs == 1
