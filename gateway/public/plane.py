"""The public plane assembled once per app: every service the public routes call.

Built by the public app factory from the process's shared `Resources` (no pools of its
own); started and stopped with the app (`gateway/kit/plane.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from gateway.core.audience import Audience
from gateway.core.resources import Resources
from gateway.core.settings.tiers import Tiers, load_tiers
from gateway.public.api_keys import ApiKeyService
from gateway.public.authenticate import Authenticator
from gateway.public.cache import Prefetched, ResponseCache, Served, cache_key
from gateway.public.firebase import FirebaseVerifier
from gateway.public.idempotency import IdempotencyService
from gateway.public.metrics import PublicMetrics, public_metrics
from gateway.public.origin import (
    DatabaseOrigin,
    Origin,
    OriginRequest,
    OriginResponse,
    ParserServiceOrigin,
)
from gateway.public.ratelimit import RateLimiter
from gateway.public.revocations import RevocationFeed
from gateway.public.tokens.build import build_token_chain
from gateway.public.tokens.chain import TokenChain
from gateway.public.upstream import Upstream
from gateway.public.users import UserService


@dataclass
class PublicPlane:
    """Services of the public port."""

    resources: Resources
    tiers: Tiers
    metrics: PublicMetrics
    firebase: FirebaseVerifier | None
    tokens: TokenChain
    api_keys: ApiKeyService
    users: UserService
    authenticator: Authenticator
    limiter: RateLimiter
    cache: ResponseCache
    upstream: Upstream
    idempotency: IdempotencyService
    revocations: RevocationFeed

    name: ClassVar[str] = "public"

    @classmethod
    def build(cls, resources: Resources, audience: Audience = Audience.PUBLIC) -> Self:
        """Wire the plane from settings and the shared resources."""
        settings = resources.settings
        tiers = load_tiers(settings.tiers_file, settings.default_tier)
        if settings.anonymous_tier is not None and settings.anonymous_tier not in tiers:
            raise ValueError(f"ANONYMOUS_TIER {settings.anonymous_tier!r} is not a configured tier")
        metrics = public_metrics(resources.metrics.registry(Audience.PUBLIC))
        firebase = FirebaseVerifier(settings) if settings.firebase_project_id else None
        tokens = build_token_chain(settings, resources.http, firebase)
        revocations = revocation_feed(resources)
        api_keys = ApiKeyService(
            resources.sessionmaker, tiers, settings.api_key_cache_s, feed=revocations
        )
        users = UserService(
            resources.sessionmaker,
            tiers,
            settings.user_cache_s,
            on_role_change=api_keys.forget_all,
            feed=revocations,
        )
        revocations.on_forget(users.forget)
        revocations.on_forget(api_keys.forget)
        origin: Origin
        if settings.parser_service_url is not None:
            origin = ParserServiceOrigin(
                resources.http,
                str(settings.parser_service_url),
                connect_s=settings.upstream_connect_timeout_s,
                read_s=settings.upstream_read_timeout_s,
            )
        else:
            origin = DatabaseOrigin(resources.sessionmaker)
        metrics.declare(tiers=tiers.names(), upstream=origin.name)
        return cls(
            resources=resources,
            tiers=tiers,
            metrics=metrics,
            firebase=firebase,
            tokens=tokens,
            api_keys=api_keys,
            users=users,
            authenticator=Authenticator(
                resources=resources,
                tiers=tiers,
                metrics=metrics,
                api_keys=api_keys,
                users=users,
                tokens=tokens,
            ),
            limiter=RateLimiter(resources, metrics),
            cache=ResponseCache(resources, metrics),
            upstream=Upstream(origin, settings, metrics),
            idempotency=IdempotencyService(resources, metrics),
            revocations=revocations,
        )

    async def start(self) -> None:
        """Subscribe to revocations (every other service works per request)."""
        self.revocations.start()

    async def stop(self) -> None:
        """Release what the plane holds beyond the shared resources."""
        await self.revocations.stop()
        if self.firebase is not None:
            self.firebase.close()

    def cache_redis_key(self, request: OriginRequest) -> str | None:
        """The Redis key of this request's cached response (None: cache off)."""
        tier = request.principal.tier.name
        return self.cache.redis_key(cache_key(request.path, request.query, tier))

    async def serve(self, request: OriginRequest, *, prefetched: Prefetched = None) -> Served:
        """Answer a properties request through cache, single flight and breaker."""
        settings = self.resources.settings
        search = request.route == "search"
        ttl = settings.cache_search_ttl_s if search else settings.cache_default_ttl_s
        key = cache_key(request.path, request.query, request.principal.tier.name)

        async def fetch() -> OriginResponse:
            return await self.upstream.fetch(request)

        return await self.cache.get_or_fetch(key, fetch, ttl, prefetched=prefetched)


def revocation_feed(resources: Resources) -> RevocationFeed:
    """The deployment's revocation channel (the CLI announces on it too)."""
    return RevocationFeed(
        resources.redis,
        resources.key("public", "revocations"),
        resources.key("public", "revocation-ack", ""),
    )
