"""Firebase ID-token verification that costs nothing for a hot token.

`firebase_admin.auth.verify_id_token` is blocking (certificate fetch, RSA verify), so it
runs in a small dedicated thread pool, never on the event loop. Verified claims are
cached (keyed by a hash of the token) until `FIREBASE_TOKEN_CACHE_MARGIN_S` before the
token expires, and concurrent first sightings of one token share a single verification.

Revocation and disabled users need a `get_user` round trip to Firebase, so that check is
optional (`FIREBASE_CHECK_REVOKED`) and its answer is cached per user for
`FIREBASE_REVOCATION_CACHE_S`: a revocation takes effect within that time.

Emulator: firebase-admin reads `FIREBASE_AUTH_EMULATOR_HOST` from the process
environment only, and then accepts unsigned tokens without checking their expiry. The
settings refuse that host in production; here it is exported to the environment when set
in settings (e.g. from `.env`), and we check `exp` ourselves in every mode.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import firebase_admin
import google.auth.credentials
import google.auth.exceptions
from firebase_admin import auth, credentials
from firebase_admin import exceptions as firebase_exceptions

from gateway.core.errors import DependencyUnavailable, Unauthorized
from gateway.core.settings import Settings
from gateway.kit.single_flight import SingleFlight
from gateway.kit.ttl_cache import TtlCache

EMULATOR_ENV = "FIREBASE_AUTH_EMULATOR_HOST"
_CLOCK_SKEW_S = 5


class _VerifyOnlyCredential(credentials.Base):  # type: ignore[misc]
    """Verifying signatures needs Google's public certificates, not a service account."""

    def get_credential(self) -> google.auth.credentials.Credentials:
        return google.auth.credentials.AnonymousCredentials()  # type: ignore[no-untyped-call]


def _reason_for(exc: auth.InvalidIdTokenError) -> str:
    message = str(exc)
    if isinstance(exc, auth.ExpiredIdTokenError):
        return "token_expired"
    if isinstance(exc, auth.RevokedIdTokenError):
        return "token_revoked"
    if 'incorrect "aud"' in message or 'incorrect "iss"' in message:
        return "wrong_project"
    if "kid" in message or "key id" in message:
        return "unknown_key"
    if "signature" in message:
        return "bad_signature"
    if "custom token" in message:
        return "custom_token"
    return "invalid_token"


def _check_claim_types(claims: dict[str, Any]) -> None:
    """Refuse claims whose times are not numbers (401, not a 500 further on).

    The library checks `exp`/`iat` only when it verifies signatures, and never their
    types; the emulator path skips them entirely. Everything after this (the cache
    deadline, expiry and revocation checks) does arithmetic on them.
    """
    for name in ("exp", "iat"):
        value = claims.get(name)
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            raise Unauthorized(
                f"The ID token's {name!r} claim is not a finite number", reason="malformed_token"
            )


@dataclass(frozen=True)
class _UserStatus:
    disabled: bool
    valid_after_ms: int


class FirebaseVerifier:
    """Verifies Firebase ID tokens with caching; see the module docstring."""

    def __init__(self, settings: Settings) -> None:
        project_id = settings.firebase_project_id
        if project_id is None:
            raise ValueError("FIREBASE_PROJECT_ID is required to verify Firebase tokens")
        emulator = settings.firebase_auth_emulator_host
        self._exported_env = False
        if emulator and os.environ.get(EMULATOR_ENV) != emulator:
            os.environ[EMULATOR_ENV] = emulator
            self._exported_env = True
        elif emulator:
            pass
        elif os.environ.get(EMULATOR_ENV):
            raise ValueError(f"{EMULATOR_ENV} is in the environment but not in the settings")
        self.emulated = bool(emulator)
        self.check_revoked = settings.firebase_check_revoked
        credential: credentials.Base = (
            credentials.ApplicationDefault()
            if self.check_revoked and not self.emulated
            else _VerifyOnlyCredential()
        )
        self._app = firebase_admin.initialize_app(
            credential,
            options={"projectId": project_id},
            name=f"gateway-public-{uuid.uuid4().hex[:8]}",
        )
        try:
            self._client = auth.Client(self._app)
        except google.auth.exceptions.DefaultCredentialsError as exc:
            firebase_admin.delete_app(self._app)
            raise RuntimeError(
                "FIREBASE_CHECK_REVOKED=true needs Google service-account credentials "
                "(GOOGLE_APPLICATION_CREDENTIALS) to look users up"
            ) from exc
        self._executor = ThreadPoolExecutor(
            settings.firebase_verify_threads, thread_name_prefix="firebase-verify"
        )
        self._margin_s = settings.firebase_token_cache_margin_s
        self._revocation_ttl_s = settings.firebase_revocation_cache_s
        # Wall clock: a token's claims are good until its own `exp` (less the margin).
        self._claims: TtlCache[bytes, dict[str, Any]] = TtlCache(
            settings.firebase_token_cache_size, clock=time.time
        )
        self._inflight: SingleFlight[bytes, dict[str, Any]] = SingleFlight()
        self._users: TtlCache[str, _UserStatus] = TtlCache(settings.firebase_token_cache_size)

    def close(self) -> None:
        """Stop the worker threads and drop the Firebase app."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        # firebase-admin never closes the HTTP sessions of an auth client (certificate
        # fetches, user lookups); close them so a rebuilt app leaks no sockets.
        verifier_request = getattr(self._client._token_verifier, "request", None)
        session = getattr(verifier_request, "session", None)
        if session is not None:
            session.close()
        http = getattr(getattr(self._client, "_user_manager", None), "http_client", None)
        if http is not None and hasattr(http, "close"):
            http.close()
        firebase_admin.delete_app(self._app)
        if self._exported_env:
            os.environ.pop(EMULATOR_ENV, None)

    async def verify(self, token: str) -> dict[str, Any]:
        """Claims of a valid token, or `Unauthorized` with a reason code."""
        digest = hashlib.sha256(token.encode()).digest()
        now = time.time()
        cached = self._claims.get(digest)
        claims = cached if cached is not None else await self._verify_shared(digest, token)
        if float(claims.get("exp", 0)) <= now:
            raise Unauthorized("The ID token has expired", reason="token_expired")
        if self.check_revoked:
            await self._check_not_revoked(claims)
        return claims

    async def _verify_shared(self, digest: bytes, token: str) -> dict[str, Any]:
        async def verify() -> dict[str, Any]:
            claims = await self._verify_in_thread(token)
            self._remember(digest, claims)
            return claims

        return await self._inflight.run(digest, verify)

    def _remember(self, digest: bytes, claims: dict[str, Any]) -> None:
        self._claims.put_until(digest, claims, float(claims.get("exp", 0)) - self._margin_s)

    async def _verify_in_thread(self, token: str) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        try:
            claims: dict[str, Any] = await loop.run_in_executor(
                self._executor, self._client.verify_id_token, token, False, _CLOCK_SKEW_S
            )
        except auth.CertificateFetchError as exc:
            raise DependencyUnavailable("firebase", "Cannot fetch Firebase certificates") from exc
        except auth.InvalidIdTokenError as exc:
            raise Unauthorized("The ID token is invalid", reason=_reason_for(exc)) from exc
        except (ValueError, TypeError) as exc:
            # TypeError: google-auth computes `iat - skew` and `exp + skew` on the claims
            # as sent, so a signed token whose `iat`/`exp` is a string raises it.
            raise Unauthorized("The ID token is malformed", reason="malformed_token") from exc
        _check_claim_types(claims)
        return claims

    async def _check_not_revoked(self, claims: dict[str, Any]) -> None:
        uid = str(claims["uid"])
        status = self._users.get(uid)
        if status is None:
            status = await self._fetch_status(uid)
        if status.disabled:
            raise Unauthorized("The user account is disabled", reason="user_disabled")
        if int(claims.get("iat", 0)) * 1000 < status.valid_after_ms:
            raise Unauthorized("The ID token has been revoked", reason="token_revoked")

    async def _fetch_status(self, uid: str) -> _UserStatus:
        loop = asyncio.get_running_loop()
        try:
            user = await loop.run_in_executor(self._executor, self._client.get_user, uid)
        except auth.UserNotFoundError as exc:
            raise Unauthorized("The user no longer exists", reason="user_not_found") from exc
        except firebase_exceptions.FirebaseError as exc:
            raise DependencyUnavailable("firebase", "Cannot reach Firebase Auth") from exc
        status = _UserStatus(
            disabled=bool(user.disabled),
            valid_after_ms=int(user.tokens_valid_after_timestamp or 0),
        )
        self._users.put(uid, status, self._revocation_ttl_s)
        return status
