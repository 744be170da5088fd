"""Verifying the gateway's webhook requests (Standard Webhooks, HMAC-SHA256).

A delivery is a POST with `webhook-id`, `webhook-timestamp` and `webhook-signature`
headers; the signature is `v1,<base64 HMAC-SHA256>` of `{id}.{timestamp}.{raw body}`
keyed with the base64-decoded part of the endpoint's `whsec_...` secret. During a secret
rotation the header holds several signatures, space-separated, and a verifier holding
any one of the secrets accepts the delivery. The timestamp must be within
`tolerance_s` (5 minutes, as in the reference libraries) of the receiver's clock, which
stops replays of a captured request. Verify the raw body bytes as received: a body that
was parsed and serialised again no longer matches.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from taxlien_gateway.errors import WebhookVerificationError
from taxlien_gateway.models import JobEvent, ParcelChange
from taxlien_gateway.models._base import Model

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of every secret, not a secret
TOLERANCE_S = 300


class WebhookMessage(Model):
    """A verified delivery: its `webhook-id` (deduplicate on it) and its payload."""

    webhook_id: str
    type: str
    timestamp: datetime
    data: dict[str, Any]

    def job_event(self) -> JobEvent:
        """The job event of a `job.*` delivery."""
        if not self.type.startswith("job."):
            raise ValueError(f"a {self.type} delivery carries no job event")
        return JobEvent.model_validate(self.data)

    def parcel_change(self) -> ParcelChange:
        """The change of a `parcel.changed` delivery."""
        if self.type != "parcel.changed":
            raise ValueError(f"a {self.type} delivery carries no parcel change")
        return ParcelChange.model_validate(self.data)


def secret_bytes(secret: str) -> bytes:
    """The HMAC key of a `whsec_...` secret (its base64 part, decoded)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is whsec_ followed by base64") from None


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `v1,<base64>` signature of a message (what the gateway sends)."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class WebhookVerifier:
    """Verifies deliveries signed with any of `secrets` (old and new during a rotation)."""

    def __init__(self, secrets: str | Sequence[str], *, tolerance_s: int = TOLERANCE_S) -> None:
        listed = [secrets] if isinstance(secrets, str) else list(secrets)
        if not listed:
            raise ValueError("give at least one webhook secret")
        self._keys = [secret_bytes(s) for s in listed]
        self._tolerance_s = tolerance_s

    def verify(
        self, body: bytes | str, headers: Mapping[str, str], *, now: float | None = None
    ) -> WebhookMessage:
        """The delivery, once its signature and timestamp hold; else
        `WebhookVerificationError` (answer such a request 401 and drop it)."""
        raw = body.encode() if isinstance(body, str) else body
        lowered = {k.lower(): v for k, v in headers.items()}
        webhook_id = lowered.get("webhook-id")
        stamp = lowered.get("webhook-timestamp")
        signatures = lowered.get("webhook-signature")
        if not webhook_id or not stamp or not signatures:
            raise WebhookVerificationError("missing webhook-id, -timestamp or -signature")
        try:
            timestamp = int(stamp)
        except ValueError:
            raise WebhookVerificationError("webhook-timestamp is not a number") from None
        clock = time.time() if now is None else now
        if abs(clock - timestamp) > self._tolerance_s:
            raise WebhookVerificationError("webhook-timestamp is too old or too new")
        signed = f"{webhook_id}.{timestamp}.".encode() + raw
        expected = [
            base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()) for key in self._keys
        ]
        if not any(
            hmac.compare_digest(candidate, digest)
            for candidate in _v1_signatures(signatures)
            for digest in expected
        ):
            raise WebhookVerificationError("no signature matches")
        try:
            payload = json.loads(raw)
        except ValueError:
            raise WebhookVerificationError("the body is not JSON") from None
        if not isinstance(payload, dict):
            raise WebhookVerificationError("the body is not a JSON object")
        return WebhookMessage.model_validate({**payload, "webhook_id": webhook_id})


def _v1_signatures(header: str) -> list[bytes]:
    found = []
    for item in header.split():
        version, _, value = item.partition(",")
        if version == "v1" and value:
            found.append(value.encode())
    return found


def verify_webhook(
    secret: str | Sequence[str],
    body: bytes | str,
    headers: Mapping[str, str],
    *,
    tolerance_s: int = TOLERANCE_S,
) -> WebhookMessage:
    """Verify one delivery (see `WebhookVerifier`)."""
    return WebhookVerifier(secret, tolerance_s=tolerance_s).verify(body, headers)
