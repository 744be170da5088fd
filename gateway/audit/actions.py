"""The audited actions, by name (`<target kind>.<verb>`; the admin route filters on both)."""

from __future__ import annotations

import enum


class Action(enum.StrEnum):
    """Every action that writes an audit row."""

    API_KEY_CREATE = "api_key.create"
    API_KEY_ROTATE = "api_key.rotate"
    API_KEY_REVOKE = "api_key.revoke"
    USER_SET_TIER = "user.set_tier"
    USER_SET_ROLE = "user.set_role"
    USER_DISABLE = "user.disable"
    USER_ENABLE = "user.enable"
    WORKER_TOKEN_CREATE = "worker_token.create"  # noqa: S105 - an action name, not a secret
    WORKER_TOKEN_REVOKE = "worker_token.revoke"  # noqa: S105 - an action name, not a secret
    DEAD_LETTERS_REQUEUE = "dead_letters.requeue"
    DEAD_LETTERS_PURGE = "dead_letters.purge"
    JOB_FORCE_STATE = "job.force_state"
    JOB_CANCEL = "job.cancel"
    CACHE_PURGE = "cache.purge"
    ROUTING_SET = "routing.set"
    ROUTING_DRAIN = "routing.drain"
