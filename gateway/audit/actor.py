"""Who acted: the caller of an admin route, or the operator running a CLI command."""

from __future__ import annotations

import getpass
import os
import secrets
from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    """The identity an audit row names, without any credential.

    `principal` is a stable handle (`user:<uid>`, `api_key:<key id>`, `cli:<os user>`),
    never a token or key; `user` is the user behind an API key, so "everything alice
    did" includes what her keys did.
    """

    principal: str
    role: str
    user: str | None = None
    ip: str | None = None
    request_id: str | None = None


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment nor in passwd
        return f"uid{os.getuid()}"


def cli_actor() -> Actor:
    """The operator running this CLI command (the CLI acts with every right).

    One request id per command, so the rows of one `gateway ...` run belong together.
    """
    return Actor(
        principal=f"cli:{_os_user()}", role="admin", request_id=f"cli-{secrets.token_hex(8)}"
    )
