"""The demo's credentials: one API key and a parcel worker and producer token.

Secrets are shown once and stored hashed, so a second run cannot print the first run's
credentials again: it revokes them and issues new ones. There is never more than one
live demo key or token of each kind.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.audit.actor import cli_actor
from gateway.core.resources import Resources
from gateway.core.settings.tiers import load_tiers
from gateway.public.api_keys import ApiKeyService
from gateway.work.plane import token_store
from gateway.work.tokens import Role

KEY_NAME = "demo"
# Names, not secrets.
WORKER_TOKEN_NAME = "demo-parcel-worker"  # noqa: S105
PRODUCER_TOKEN_NAME = "demo-parcel-producer"  # noqa: S105


@dataclass(frozen=True)
class Credentials:
    """What `gateway demo` prints for the shell."""

    api_key: str
    tier: str
    worker_token: str
    producer_token: str


def demo_tier(resources: Resources) -> str:
    """`pro` when the tiers define it (room for jobs and pages), else the default tier."""
    settings = resources.settings
    tiers = load_tiers(settings.tiers_file, settings.default_tier)
    return "pro" if "pro" in tiers else settings.default_tier


async def issue(resources: Resources) -> Credentials:
    """Revoke the previous demo credentials (if any) and issue new ones (audited as the
    CLI user who ran `gateway demo`)."""
    settings = resources.settings
    actor = cli_actor()
    keys = ApiKeyService(
        resources.sessionmaker, load_tiers(settings.tiers_file, settings.default_tier), 0
    )
    for row in await keys.list_for(None, all_users=True):
        if row.name == KEY_NAME and row.user_uid is None and row.revoked_at is None:
            await keys.revoke(row.id, owner=None, actor=actor)
    tier = demo_tier(resources)
    issued = await keys.create(name=KEY_NAME, tier=tier, user_uid=None, actor=actor)

    tokens = token_store(resources)
    live = {r.name for r in await tokens.list() if r.revoked_at is None}
    made = {}
    for name, role in ((WORKER_TOKEN_NAME, Role.WORKER), (PRODUCER_TOKEN_NAME, Role.PRODUCER)):
        if name in live:
            await tokens.revoke(name, actor=actor)
        made[role] = await tokens.create(audience="parcel", name=name, role=role, actor=actor)
    return Credentials(issued.secret, tier, made[Role.WORKER], made[Role.PRODUCER])
