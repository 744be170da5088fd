"""Signatures are verified by the Standard Webhooks reference library, as a receiver would."""

from __future__ import annotations

import base64
import json
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gateway.webhooks.signing import (
    InvalidSecret,
    new_message_id,
    new_secret,
    secret_bytes,
    sign,
)

BODY = json.dumps({"type": "job.completed", "data": {"id": "job_1", "note": "naïve ✓"}}).encode()


def _now() -> int:
    return int(time.time())


def test_a_new_secret_is_whsec_and_24_random_bytes() -> None:
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_")
    assert len(secret_bytes(first)) == 24
    assert base64.b64decode(first.removeprefix("whsec_")) == secret_bytes(first)
    assert first != second


def test_one_secret_verifies_with_the_reference_library() -> None:
    secret = new_secret()
    headers = sign(new_message_id(), _now(), BODY, [secret])

    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)
    assert headers["webhook-signature"].startswith("v1,")
    assert " " not in headers["webhook-signature"]


def test_the_specifications_example_signature() -> None:
    # The example of the Standard Webhooks specification and its libraries' tests.
    headers = sign(
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
        ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )
    assert headers == {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }


def test_a_changed_body_id_or_timestamp_or_another_secret_does_not_verify() -> None:
    secret = new_secret()
    now = _now()
    headers = sign("msg_abc", now, BODY, [secret])

    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"job_1", b"job_2"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, {**headers, "webhook-id": "msg_abd"})
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, {**headers, "webhook-timestamp": str(now - 1)})
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)


def test_during_a_rotation_both_secrets_sign_and_each_alone_verifies() -> None:
    new, old = new_secret(), new_secret()
    headers = sign(new_message_id(), _now(), BODY, [new, old])

    assert len(headers["webhook-signature"].split(" ")) == 2
    assert Webhook(new).verify(BODY, headers) == json.loads(BODY)
    assert Webhook(old).verify(BODY, headers) == json.loads(BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)


def test_after_the_overlap_the_old_secret_no_longer_verifies() -> None:
    new, old = new_secret(), new_secret()
    headers = sign(new_message_id(), _now(), BODY, [new])

    assert Webhook(new).verify(BODY, headers) == json.loads(BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(BODY, headers)


def test_a_retry_keeps_the_id_and_signs_its_own_timestamp() -> None:
    secret = new_secret()
    msg_id = new_message_id()
    first = sign(msg_id, _now() - 60, BODY, [secret])
    retry = sign(msg_id, _now(), BODY, [secret])

    assert first["webhook-id"] == retry["webhook-id"] == msg_id
    assert msg_id.startswith("msg_")
    assert first["webhook-signature"] != retry["webhook-signature"]
    Webhook(secret).verify(BODY, retry)


def test_a_repeated_secret_signs_once() -> None:
    secret = new_secret()
    headers = sign("msg_abc", _now(), BODY, [secret, secret])
    assert len(headers["webhook-signature"].split(" ")) == 1


@pytest.mark.parametrize(
    "secret",
    [
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # no prefix
        "whsec_not base64!",
        "whsec_" + base64.b64encode(b"short").decode(),
        "whsec_" + base64.b64encode(b"x" * 65).decode(),
        "whsec_",
    ],
)
def test_a_malformed_secret_is_refused(secret: str) -> None:
    with pytest.raises(InvalidSecret):
        sign("msg_abc", _now(), BODY, [secret])


def test_signing_needs_a_secret_and_a_plain_id() -> None:
    with pytest.raises(ValueError, match="at least one secret"):
        sign("msg_abc", _now(), BODY, [])
    with pytest.raises(ValueError, match="webhook id"):
        sign("msg.abc", _now(), BODY, [new_secret()])
    with pytest.raises(ValueError, match="timestamp"):
        sign("msg_abc", -1, BODY, [new_secret()])
