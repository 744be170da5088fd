"""Users recorded on first sight; their principals follow tier and role changes."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from gateway.core.resources import Resources
from gateway.core.settings.tiers import load_tiers
from gateway.public.principal import Role
from gateway.public.users import UserService
from tests.support.audit import TEST_ACTOR

pytestmark = pytest.mark.integration


def _claims(uid: str, **extra: Any) -> dict[str, Any]:
    return {"uid": uid, "email": f"{uid}@example.com", **extra}


async def test_a_hot_tokens_principal_follows_set_tier_and_set_role(
    resources: Resources,
) -> None:
    # Cache on (30 s), as in production: the same claims object keeps coming back from
    # the token cache, and the principal built from it must not outlive a change.
    users = UserService(resources.sessionmaker, load_tiers(None, "free"), cache_s=30)
    uid = f"u-{uuid.uuid4().hex[:12]}"
    claims = _claims(uid)

    first = await users.principal_for(claims)
    again = await users.principal_for(claims)
    assert (first.tier.name, first.role) == ("free", Role.USER)
    assert again == first

    await users.set_tier(uid, "pro", actor=TEST_ACTOR)
    await users.set_role(uid, "admin", actor=TEST_ACTOR)
    changed = await users.principal_for(claims)
    assert (changed.tier.name, changed.role) == ("pro", Role.ADMIN)

    # A refreshed token with a tier claim wins over the stored tier.
    claimed = await users.principal_for(_claims(uid, tier="enterprise"))
    assert claimed.tier.name == "enterprise"
    assert (await users.get(uid)) is not None
