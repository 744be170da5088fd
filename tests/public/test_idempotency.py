"""The idempotency service on real Redis: key parsing, fingerprints, claims and records."""

from __future__ import annotations

import pytest

from gateway.core.audience import Audience
from gateway.core.resources import Resources
from gateway.public.idempotency import (
    IdempotencyService,
    InvalidIdempotencyKey,
    Outcome,
    StoredResponse,
    fingerprint,
    parse_key,
    storable,
    storable_headers,
)
from gateway.public.metrics import public_metrics


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (b'"abc"', "abc"),
        (b"abc", "abc"),
        (b'  "8e03978e-40d5"  ', "8e03978e-40d5"),
        (b'"with space"', "with space"),
        (b'"q\\"uote\\\\"', 'q"uote\\'),
        (b"x" * 255, "x" * 255),
    ],
)
def test_keys_are_structured_field_strings_or_bare_tokens(raw: bytes, key: str) -> None:
    assert parse_key([raw]) == key


@pytest.mark.parametrize(
    "raw",
    [b"", b'""', b"x" * 256, b'"open', b'"a"b', b'"a\\x"', b"a b", b'a"b', "é".encode(), b"\x00"],
)
def test_malformed_keys_are_refused(raw: bytes) -> None:
    with pytest.raises(InvalidIdempotencyKey):
        parse_key([raw])


def test_several_headers_are_refused() -> None:
    with pytest.raises(InvalidIdempotencyKey):
        parse_key([b"a", b"a"])


def test_stored_statuses() -> None:
    assert [s for s in (200, 201, 204, 400, 404, 422) if storable(s)] == [
        200,
        201,
        204,
        400,
        404,
        422,
    ]
    assert not any(storable(s) for s in (301, 408, 409, 425, 429, 500, 503))


def test_per_response_headers_are_not_stored() -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"2"),
        (b"x-request-id", b"r"),
        (b"ratelimit", b"x"),
        (b"location", b"/v1/jobs/1"),
    ]
    assert storable_headers(headers) == [
        (b"content-type", b"application/json"),
        (b"location", b"/v1/jobs/1"),
    ]


def _digest(method: str, path: str, query: bytes, ctype: bytes, body: bytes) -> str:
    hasher = fingerprint(method, path, query, ctype)
    hasher.update(body)
    return hasher.hexdigest()


def test_fingerprint_covers_each_part_without_ambiguity() -> None:
    base = _digest("POST", "/v1/a", b"x=1", b"application/json", b"{}")
    assert base == _digest("POST", "/v1/a", b"x=1", b"application/json", b"{}")
    others = {
        _digest("PATCH", "/v1/a", b"x=1", b"application/json", b"{}"),
        _digest("POST", "/v1/b", b"x=1", b"application/json", b"{}"),
        _digest("POST", "/v1/a", b"x=2", b"application/json", b"{}"),
        _digest("POST", "/v1/a", b"x=1", b"text/csv", b"{}"),
        _digest("POST", "/v1/a", b"x=1", b"application/json", b"[]"),
        # Bytes moved from one part to the next are another request.
        _digest("POST", "/v1/ax=1", b"", b"application/json", b"{}"),
    }
    assert base not in others
    assert len(others) == 6


@pytest.fixture
def idem(resources: Resources) -> IdempotencyService:
    """The service on this test's Redis prefix."""
    return IdempotencyService(
        resources, public_metrics(resources.metrics.registry(Audience.PUBLIC))
    )


@pytest.mark.integration
async def test_claim_store_replay_and_scope(idem: IdempotencyService) -> None:
    first = await idem.begin("user:a", "POST", "/v1/x", "k", "fp1")
    assert first.outcome is Outcome.NEW
    assert not first.takeover
    assert (await idem.begin("user:a", "POST", "/v1/x", "k", "fp1")).outcome is Outcome.IN_FLIGHT
    assert (await idem.begin("user:a", "POST", "/v1/x", "k", "fp2")).outcome is Outcome.MISMATCH
    # Other principal, method or path: another record.
    for scope in (("user:b", "POST", "/v1/x"), ("user:a", "POST", "/v1/y")):
        assert (await idem.begin(*scope, "k", "fp1")).outcome is Outcome.NEW

    answer = StoredResponse(201, [(b"content-type", b"application/json")], b'{"id":1}')
    assert await idem.store(first, answer)
    assert not await idem.store(first, answer)  # the token no longer holds the key
    replay = await idem.begin("user:a", "POST", "/v1/x", "k", "fp1")
    assert replay.outcome is Outcome.REPLAY
    assert replay.response == answer


@pytest.mark.integration
async def test_release_frees_the_key_and_a_stale_token_cannot_store(
    idem: IdempotencyService, resources: Resources
) -> None:
    first = await idem.begin("user:a", "POST", "/v1/x", "k", "fp")
    await idem.release(first, "status_500")
    assert not await resources.redis.exists(first.record)
    second = await idem.begin("user:a", "POST", "/v1/x", "k", "fp")
    assert second.outcome is Outcome.NEW
    # The first attempt answering late finds the key held by another token.
    assert not await idem.store(first, StoredResponse(200, [], b"late"))
    assert await resources.redis.hget(second.record, "state") == b"in_flight"


@pytest.mark.integration
async def test_records_expire_with_the_ttl(idem: IdempotencyService, resources: Resources) -> None:
    claim = await idem.begin("user:a", "POST", "/v1/x", "k", "fp")
    assert await idem.store(claim, StoredResponse(200, [], b"{}"))
    ttl = await resources.redis.ttl(claim.record)
    assert 0 < ttl <= resources.settings.idempotency_ttl_s
    assert claim.record.startswith(resources.settings.redis_key_prefix + "idem:user:a:")


def test_multipart_fingerprints_ignore_the_boundary_however_the_body_is_chunked() -> None:
    from gateway.public.idempotency import multipart_fingerprint

    def digest(boundary: bytes, chunk: int) -> str:
        body = b"--" + boundary + b"\r\nx: y\r\n\r\ndata\r\n--" + boundary + b"--\r\n"
        hasher = multipart_fingerprint(
            "POST", "/v1/jobs/upload", b"", b"multipart/form-data; boundary=" + boundary
        )
        for i in range(0, len(body), chunk):
            hasher.update(body[i : i + chunk])
        return hasher.hexdigest()

    digests = {digest(b, c) for b in (b"aaaa1111", b"zz-99") for c in (1, 2, 3, 5, 7, 1000)}
    assert len(digests) == 1
    plain = multipart_fingerprint("POST", "/v1/jobs/upload", b"", b"text/csv")
    plain.update(b"--aaaa1111")
    assert plain.hexdigest() not in digests  # only multipart bodies are blinded
