"""An OIDC issuer's discovery document and signing keys, cached, refreshed on rotation.

Loaded lazily on the first token of the issuer (a down IdP must not stop the gateway
from starting), then kept for `OIDC_JWKS_MAX_AGE_S`. The discovery document must name
exactly the configured issuer (OpenID Connect Discovery 1.0, 4.3), or nothing of it is
used.

Key rotation: a token whose `kid` is not in the cached set refetches the JWKS, once:
concurrent requests with the new `kid` share that one fetch (single flight), and the
next unknown-`kid` refetch is allowed only `OIDC_JWKS_REFRESH_MIN_S` later, so a flood
of tokens with made-up `kid`s costs the issuer one request per interval, not one per
token. A refetch that fails keeps the keys already known.

Algorithms are pinned per key: RS256 for RSA keys, ES256 for P-256 keys, and only
those the issuer publishes (`id_token_signing_alg_values_supported`; a key's own `alg`
narrows it further). Symmetric (`oct`) keys in a JWKS are ignored: a public JWKS key can
never become an HMAC secret.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import structlog

from gateway.core.errors import DependencyUnavailable, Unauthorized
from gateway.core.settings.identity import OidcIssuer
from gateway.kit.single_flight import SingleFlight

log = structlog.get_logger("gateway.public.oidc")

SUPPORTED_ALGORITHMS = frozenset({"RS256", "ES256"})
_MAX_DOCUMENT_BYTES = 512 * 1024


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A public key and the one algorithm it verifies."""

    kid: str | None
    algorithm: str
    key: Any


@dataclass(frozen=True, slots=True)
class _KeySet:
    algorithms: frozenset[str]
    by_kid: dict[str, SigningKey]
    unnamed: tuple[SigningKey, ...]
    loaded_at: float


class _FetchFailed(Exception):
    """Discovery or JWKS could not be fetched or understood (the message says why)."""


def _algorithm_of(jwk: dict[str, Any], published: frozenset[str]) -> str | None:
    kty, use, alg = jwk.get("kty"), jwk.get("use"), jwk.get("alg")
    if use not in (None, "sig"):
        return None
    wanted = (
        "RS256" if kty == "RSA" else "ES256" if kty == "EC" and jwk.get("crv") == "P-256" else None
    )
    if wanted is None or (alg is not None and alg != wanted) or wanted not in published:
        return None
    return wanted


def parse_jwks(document: Any, published: frozenset[str], now: float) -> _KeySet:
    """The usable signing keys of a JWKS document."""
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise _FetchFailed("the JWKS has no 'keys' list")
    by_kid: dict[str, SigningKey] = {}
    unnamed: list[SigningKey] = []
    for jwk in keys:
        if not isinstance(jwk, dict):
            continue
        algorithm = _algorithm_of(jwk, published)
        if algorithm is None:
            continue
        try:
            key = jwt.PyJWK(jwk, algorithm).key
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            continue  # a malformed key is skipped, the others still serve
        kid = jwk.get("kid")
        signing = SigningKey(kid if isinstance(kid, str) else None, algorithm, key)
        if signing.kid is None:
            unnamed.append(signing)
        else:
            by_kid[signing.kid] = signing
    return _KeySet(published, by_kid, tuple(unnamed), now)


class IssuerKeys:
    """Discovery and JWKS of one issuer; see the module docstring."""

    def __init__(
        self,
        issuer: OidcIssuer,
        http: httpx.AsyncClient,
        *,
        refresh_min_s: float,
        max_age_s: float,
        timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self._http = http
        self._refresh_min_s = refresh_min_s
        self._max_age_s = max_age_s
        self._timeout_s = timeout_s
        self._clock = clock
        self._keys: _KeySet | None = None
        self._jwks_uri: str | None = None
        self._last_kid_refresh: float | None = None
        self._flight: SingleFlight[str, _KeySet] = SingleFlight()
        self.fetches = 0  # JWKS documents fetched (for metrics and tests)

    async def algorithms(self) -> frozenset[str]:
        """The algorithms this issuer's tokens may use (loads the keys if needed)."""
        return (await self._current()).algorithms

    async def key_for(self, kid: str | None, algorithm: str) -> SigningKey:
        """The key that must have signed a token with this header, or `Unauthorized`."""
        keys = await self._current()
        found = self._find(keys, kid, algorithm)
        if found is None and kid is not None and self._may_refresh_for_kid():
            keys = await self._load(discover=False)
            found = self._find(keys, kid, algorithm)
        if found is None:
            raise Unauthorized("The token was signed with an unknown key", reason="unknown_key")
        if found.algorithm != algorithm:
            raise Unauthorized("The token's alg does not match its key", reason="alg_not_allowed")
        return found

    @staticmethod
    def _find(keys: _KeySet, kid: str | None, algorithm: str) -> SigningKey | None:
        if kid is not None:
            return keys.by_kid.get(kid)
        # No `kid`: only unambiguous when the issuer has a single key for this alg.
        candidates = [k for k in (*keys.by_kid.values(), *keys.unnamed) if k.algorithm == algorithm]
        return candidates[0] if len(candidates) == 1 else None

    def _may_refresh_for_kid(self) -> bool:
        if len(self._flight):
            return True  # a fetch is under way: wait for it rather than refuse
        now = self._clock()
        last = self._last_kid_refresh
        if last is not None and now - last < self._refresh_min_s:
            return False
        self._last_kid_refresh = now
        return True

    async def _current(self) -> _KeySet:
        keys = self._keys
        if keys is not None and self._clock() - keys.loaded_at < self._max_age_s:
            return keys
        return await self._load(discover=True)

    async def _load(self, *, discover: bool) -> _KeySet:
        return await self._flight.run("keys", lambda: self._fetch(discover=discover))

    async def _fetch(self, *, discover: bool) -> _KeySet:
        issuer = self.issuer.issuer
        try:
            published = self._keys.algorithms if self._keys is not None else frozenset()
            if discover or self._jwks_uri is None:
                published = await self._discover()
            assert self._jwks_uri is not None
            document = await self._get_json(self._jwks_uri)
            self.fetches += 1
            keys = parse_jwks(document, published, self._clock())
        except _FetchFailed as exc:
            if self._keys is not None:
                # Keep serving the keys we know; try again after the refresh interval.
                log.warning("oidc_refresh_failed", issuer=issuer, error=str(exc))
                stale = self._keys
                self._keys = _KeySet(
                    stale.algorithms,
                    stale.by_kid,
                    stale.unnamed,
                    self._clock() - self._max_age_s + self._refresh_min_s,
                )
                return stale
            log.error("oidc_unavailable", issuer=issuer, error=str(exc))
            raise DependencyUnavailable(
                "oidc", f"Cannot load the signing keys of {issuer}", retry_after=5
            ) from exc
        if not keys.by_kid and not keys.unnamed:
            log.warning("oidc_no_usable_keys", issuer=issuer)
        self._keys = keys
        return keys

    async def _discover(self) -> frozenset[str]:
        document = await self._get_json(self.issuer.discovery_url)
        if not isinstance(document, dict) or document.get("issuer") != self.issuer.issuer:
            raise _FetchFailed("the discovery document names another issuer")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise _FetchFailed("the discovery document has no jwks_uri")
        advertised = document.get("id_token_signing_alg_values_supported")
        names = (
            {a for a in advertised if isinstance(a, str)} if isinstance(advertised, list) else set()
        )
        published = SUPPORTED_ALGORITHMS & names
        if not published:
            raise _FetchFailed("the issuer publishes neither RS256 nor ES256")
        self._jwks_uri = jwks_uri
        return frozenset(published)

    async def _get_json(self, url: str) -> Any:
        try:
            response = await self._http.get(
                url, timeout=self._timeout_s, headers={"Accept": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise _FetchFailed(f"GET {url}: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise _FetchFailed(f"GET {url}: HTTP {response.status_code}")
        if len(response.content) > _MAX_DOCUMENT_BYTES:
            raise _FetchFailed(f"GET {url}: document too large")
        try:
            return response.json()
        except ValueError as exc:
            raise _FetchFailed(f"GET {url}: not JSON") from exc
