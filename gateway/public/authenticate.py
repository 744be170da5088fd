"""Turn request credentials into a `Principal`, and slow down credential guessing.

Order: `X-API-Key`, else `Authorization: Bearer <token>` (Firebase, OIDC or HS256, routed
by its issuer in `gateway/public/tokens/chain.py`), else the anonymous
tier when `ANONYMOUS_TIER` is set, else 401. Sending both credentials is refused: the
gateway would otherwise have to pick an identity the caller did not choose. So is
sending one kind twice (two `X-API-Key` or two `Authorization` headers): "first one
wins" would let whichever layer reads headers differently (a proxy, a cache, a log)
see another identity than the one authenticated. `Credentials` keeps every occurrence,
built from the raw ASGI headers by every caller (route dependency and fast path alike).

Failed attempts are counted per client IP in Redis (a fixed window of
`AUTH_FAILURE_WINDOW_S`). Past `AUTH_FAILURE_LIMIT` failures the next failure answers
429 instead of 401, and this process refuses that IP's credentials without verifying
them until the window ends. Successful requests never touch the counter, so the check
costs nothing on the hot path.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass

import structlog

from gateway.core.errors import TooManyRequests, Unauthorized
from gateway.core.observability.log_context import bind_principal
from gateway.core.resources import Resources
from gateway.core.settings.tiers import Tiers
from gateway.kit.outage import REDIS_FAILURE
from gateway.kit.ttl_cache import TtlCache
from gateway.public.api_keys import ApiKeyService
from gateway.public.metrics import PublicMetrics
from gateway.public.principal import Principal, PrincipalKind, Role
from gateway.public.tokens.chain import TokenChain
from gateway.public.users import UserService

log = structlog.get_logger("gateway.public.auth")


@dataclass(frozen=True, slots=True)
class Credentials:
    """The credential headers of one request, every occurrence in arrival order."""

    api_keys: tuple[str, ...] = ()
    authorizations: tuple[str, ...] = ()

    @classmethod
    def from_raw(cls, headers: Iterable[tuple[bytes, bytes]]) -> Credentials:
        """Collect `X-API-Key` and `Authorization` from ASGI headers (lowercase names)."""
        api_keys: list[str] = []
        authorizations: list[str] = []
        for name, value in headers:
            if name == b"x-api-key":
                api_keys.append(value.decode("latin-1"))
            elif name == b"authorization":
                authorizations.append(value.decode("latin-1"))
        return cls(tuple(api_keys), tuple(authorizations))


class AuthFailuresExceeded(TooManyRequests):
    """Too many failed authentication attempts from one client IP."""

    slug = "auth-attempts-exceeded"
    title = "Too many failed authentication attempts"


class Authenticator:
    """Resolves credentials; see the module docstring."""

    def __init__(
        self,
        *,
        resources: Resources,
        tiers: Tiers,
        metrics: PublicMetrics,
        api_keys: ApiKeyService,
        users: UserService,
        tokens: TokenChain,
    ) -> None:
        settings = resources.settings
        self._resources = resources
        self._tiers = tiers
        self._metrics = metrics
        self._api_keys = api_keys
        self._users = users
        self._tokens = tokens
        self._anonymous = tiers.get(settings.anonymous_tier) if settings.anonymous_tier else None
        self._limit = settings.auth_failure_limit
        self._window = settings.auth_failure_window_s
        self._timeout = settings.ratelimit_redis_timeout_s
        # Addresses over the failure limit, each with the monotonic time its block ends.
        self._blocked: TtlCache[str, float] = TtlCache(100_000)

    async def authenticate(self, credentials: Credentials, client_ip: str) -> Principal:
        """The caller's principal, or `Unauthorized` / 429. The rest of the request's log
        lines carry its id and tier (`principal_id`, `tier`)."""
        if not credentials.api_keys and not credentials.authorizations:
            if self._anonymous is not None:
                anonymous = Principal(
                    kind=PrincipalKind.ANONYMOUS, id=client_ip, tier=self._anonymous, role=Role.USER
                )
                bind_principal(anonymous.id, tier=anonymous.tier.name)
                return anonymous
            self._metrics.auth_failures.labels("missing_credentials").inc()
            raise Unauthorized(
                "Send X-API-Key or Authorization: Bearer <ID token>", reason="missing_credentials"
            )
        blocked_until = self._blocked.get(client_ip)
        if blocked_until is not None:
            self._metrics.auth_failures.labels("too_many_failures").inc()
            raise self._blocked_error(blocked_until - time.monotonic())
        try:
            principal = await self._resolve(credentials)
        except Unauthorized as exc:
            reason = str(exc.extra.get("reason", "invalid_credentials"))
            self._metrics.auth_failures.labels(reason).inc()
            await self._count_failure(client_ip)
            raise
        bind_principal(principal.id, tier=principal.tier.name)
        return principal

    async def _resolve(self, credentials: Credentials) -> Principal:
        api_keys, authorizations = credentials.api_keys, credentials.authorizations
        if api_keys and authorizations:
            raise Unauthorized(
                "Send either X-API-Key or Authorization, not both", reason="ambiguous_credentials"
            )
        if len(api_keys) > 1 or len(authorizations) > 1:
            raise Unauthorized(
                "Send one credential header, not several", reason="ambiguous_credentials"
            )
        if api_keys:
            return await self._api_keys.authenticate(api_keys[0].strip())
        authorization = authorizations[0]
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Use Authorization: Bearer <ID token>", reason="unsupported_scheme")
        if not self._tokens.configured:
            # The reason predates other issuers; kept so clients and dashboards still match.
            raise Unauthorized(
                "No token issuer is configured (FIREBASE_PROJECT_ID, OIDC_ISSUERS,"
                " JWT_HS256_SECRET)",
                reason="firebase_disabled",
            )
        identity = await self._tokens.verify(token.strip())
        return await self._users.principal_for_identity(identity)

    async def _count_failure(self, client_ip: str) -> None:
        key = self._resources.key("authfail", client_ip)
        try:
            async with asyncio.timeout(self._timeout):
                pipe = self._resources.redis.pipeline(transaction=True)
                # SET NX starts a fixed window; INCR counts within it (Redis 6.2-safe).
                pipe.set(key, 0, ex=self._window, nx=True)
                pipe.incr(key)
                _, count = await pipe.execute()
                ttl = self._window
                if int(count) > self._limit:
                    ttl = int(await self._resources.redis.ttl(key))
        except REDIS_FAILURE:
            return  # failing open here is fine: the credentials were refused anyway
        if int(count) > self._limit:
            until = time.monotonic() + max(1, ttl)
            self._blocked.put_until(client_ip, until, until)
            log.warning("auth_failures_exceeded", client_ip=client_ip, failures=int(count))
            raise self._blocked_error(max(1, ttl))

    def _blocked_error(self, retry_after_s: float) -> AuthFailuresExceeded:
        return AuthFailuresExceeded(
            "Too many failed authentication attempts from this address",
            headers={"Retry-After": str(max(1, int(retry_after_s + 0.999)))},
        )
