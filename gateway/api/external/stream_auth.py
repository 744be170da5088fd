"""Who opens a live stream: the usual credential headers, or a stream ticket.

Browsers' `EventSource` (and `WebSocket`) cannot send headers, so the stream routes, and
only they, take `?ticket=`: a short-lived, single-use ticket from
`POST /v1/stream-tickets` (`gateway/streams/tickets.py`). Long-lived credentials are
never read from a query string; one that is put there anyway (`?api_key=`,
`?token=`...) is refused with a 400 that says to use a ticket, since a URL ends up in
browser history, proxy logs and Referer headers. A ticket together with a credential
header is refused as ambiguous, like two credential headers.

Opening a stream takes one unit of the caller's rate limit, like any request; once it
is open, nothing it sends counts against the limit.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from gateway.api.external.jobs_deps import owner_of
from gateway.api.external.public_deps import Caller, admit, admit_key, client_ip_of
from gateway.core.errors import BadRequest, Unauthorized
from gateway.jobs.owner import Owner
from gateway.public.authenticate import Credentials
from gateway.public.permissions import Permission, Scope, allows, check
from gateway.public.plane import PublicPlane
from gateway.public.principal import PrincipalKind
from gateway.public.ratelimit import Decision
from gateway.streams.plane import StreamsPlane
from gateway.streams.tickets import Ticket

# Query parameters that look like a long-lived credential.
_CREDENTIAL_PARAMS = frozenset(
    {"api_key", "apikey", "key", "x-api-key", "token", "access_token", "id_token", "auth"}
)


class CredentialsInQuery(BadRequest):
    """A long-lived credential was put in a stream URL's query string."""

    slug = "credentials-in-query"
    title = "Credentials in the query string"


@dataclass(frozen=True)
class StreamGrant:
    """An admitted stream caller: the owner of the jobs it may follow, and its ticket."""

    owner: Owner
    ticket: Ticket | None
    decision: Decision
    # Whether the caller holds watches:read (a socket may subscribe to parcel changes).
    watches: bool = True

    def allows(self, job_id: str) -> bool:
        """Whether the grant covers `job_id` (ownership is checked when it is read)."""
        return self.ticket is None or self.ticket.allows(job_id)

    def allows_watches(self) -> bool:
        """Whether the grant covers the owner's parcel changes (a ticket limited to
        some jobs does not)."""
        return self.watches and (self.ticket is None or self.ticket.job_ids is None)


async def stream_grant(
    scope: MutableMapping[str, Any],
    public: PublicPlane,
    streams: StreamsPlane,
    ticket: str | None,
    *,
    need: Permission,
    kind: str = "sse",
) -> StreamGrant:
    """Authenticate and admit a stream's caller from headers or `ticket` (401/403/429);
    `need` is the route's declared permission (a ticket was checked for it when it was
    issued); `kind` (sse, ws) labels the refusal metric."""
    refuse_query_credentials(scope.get("query_string", b""))
    credentials = Credentials.from_raw(scope["headers"])
    if ticket is None:
        principal = await public.authenticator.authenticate(
            credentials, client_ip_of(_headers(scope), scope.get("client"), public)
        )
        if need.scope is not None and principal.kind is not PrincipalKind.ANONYMOUS:
            check(principal, need.scope)  # anonymous callers: "jobs need an account"
        decision = await admit(scope, public, principal)
        return StreamGrant(
            owner_of(Caller(principal, decision)),
            None,
            decision,
            watches=allows(principal, Scope.WATCHES_READ),
        )
    if credentials.api_keys or credentials.authorizations:
        raise Unauthorized(
            "Send either a stream ticket or a credential header, not both",
            reason="ambiguous_credentials",
        )
    try:
        granted = await streams.tickets.redeem(ticket)
    except Unauthorized:
        streams.metrics.refused.labels(kind, "ticket").inc()
        raise
    decision = await admit_key(scope, public, granted.owner.id, granted.owner.tier)
    return StreamGrant(granted.owner, granted, decision, watches=granted.watches)


def refuse_query_credentials(query_string: bytes) -> None:
    """400 when the query string carries something that looks like a credential."""
    if not query_string:
        return
    for name, _ in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if name.lower() in _CREDENTIAL_PARAMS:
            raise CredentialsInQuery(
                f"Query parameter {name!r} looks like a credential, and credentials are never "
                "read from a URL: send it as a header, or get a stream ticket from "
                "POST /v1/stream-tickets and pass ?ticket="
            )


def _headers(scope: MutableMapping[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
