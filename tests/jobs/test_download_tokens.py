"""Download tokens without a server: signing, rotation, tampering and expiry."""

from __future__ import annotations

import base64
import json

import pytest

from gateway.jobs.download_tokens import Claims, TokenExpired, TokenForbidden, TokenSigner

OLD = ("old", b"o" * 32)
NEW = ("new", b"n" * 32)
NOW = 1_800_000_000.0


def _sign(signer: TokenSigner, **over: object) -> str:
    fields: dict[str, object] = {
        "job": "job_" + "a" * 24,
        "owner": "user:alice",
        "fmt": "csv",
        "gen": 1,
        "ttl_s": 600,
        "now": NOW,
        **over,
    }
    token, _ = signer.sign(**fields)  # type: ignore[arg-type]
    return token


def _flip(text: str, at: int) -> str:
    at %= len(text)
    swapped = "B" if text[at] == "A" else "A"
    return text[:at] + swapped + text[at + 1 :]


def _payload(token: str) -> dict[str, object]:
    body = token.split(".")[0]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return decoded


def test_a_token_carries_its_claims_and_verifies_until_it_expires() -> None:
    signer = TokenSigner([NEW, OLD])
    token = _sign(signer)
    assert _payload(token) == {
        "v": 1,
        "job": "job_" + "a" * 24,
        "owner": "user:alice",
        "fmt": "csv",
        "gen": 1,
        "exp": int(NOW) + 600,
        "kid": "new",
    }
    assert signer.verify(token, now=NOW + 599) == Claims(
        job="job_" + "a" * 24, owner="user:alice", fmt="csv", gen=1, exp=int(NOW) + 600, kid="new"
    )
    with pytest.raises(TokenExpired) as expired:
        signer.verify(token, now=NOW + 600)
    assert expired.value.status == 410


def test_old_keys_verify_while_listed_and_not_after() -> None:
    token = _sign(TokenSigner([OLD]))
    assert TokenSigner([NEW, OLD]).verify(token, now=NOW).kid == "old"
    with pytest.raises(TokenForbidden, match="unknown key"):
        TokenSigner([NEW]).verify(token, now=NOW)
    # A key of the same id but another secret is no key of ours.
    with pytest.raises(TokenForbidden, match="signature"):
        TokenSigner([("old", b"x" * 32)]).verify(token, now=NOW)


@pytest.mark.parametrize("part", ["payload", "signature"])
def test_every_single_character_change_is_refused(part: str) -> None:
    signer = TokenSigner([NEW])
    token = _sign(signer)
    body, signature = token.split(".")
    start = 0 if part == "payload" else len(body) + 1
    end = len(body) if part == "payload" else len(token)
    for at in range(start, end):
        with pytest.raises(TokenForbidden) as refused:
            signer.verify(_flip(token, at), now=NOW)
        assert refused.value.status == 403
    assert signature  # the loop above covered a non-empty part


def test_a_forged_payload_with_a_reused_signature_is_refused() -> None:
    signer = TokenSigner([NEW])
    token = _sign(signer)
    signature = token.split(".")[1]
    forged = dict(_payload(token), owner="user:mallory", exp=int(NOW) + 10**6)
    forged_body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    with pytest.raises(TokenForbidden):
        signer.verify(f"{forged_body}.{signature}", now=NOW)


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b.c", "!!.!!", "e30.AAAA", "x" * 5000, "eyJ2IjoxfQ.AAAA", "é.é"],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(TokenForbidden):
        TokenSigner([NEW]).verify(token, now=NOW)


def test_an_expired_forgery_says_forbidden_not_gone() -> None:
    signer = TokenSigner([NEW])
    token = _flip(_sign(signer, now=NOW - 10_000), -1)
    with pytest.raises(TokenForbidden):
        signer.verify(token, now=NOW)


def test_without_keys_nothing_signs_or_verifies() -> None:
    signer = TokenSigner([])
    assert not signer.can_sign
    with pytest.raises(RuntimeError):
        _sign(signer)
    with pytest.raises(TokenForbidden):
        signer.verify(_sign(TokenSigner([NEW])), now=NOW)
