"""Print a Firebase ID token for EMAIL from the local Auth emulator (development only).

    ID_TOKEN=$(.venv/bin/python examples/firebase_id_token.py me@example.com)
    curl -H "Authorization: Bearer $ID_TOKEN" http://127.0.0.1:8080/v1/me

Signs the user up on first use, else signs them in (a fresh token, carrying the custom
claims set since). Talks to FIREBASE_AUTH_EMULATOR_HOST (default 127.0.0.1:9099, what
`bash examples/firebase_emulator.sh` starts); the emulator takes any API key. Tokens
expire after an hour: run it again for a new one.
"""

from __future__ import annotations

import argparse
import os
import sys

import httpx


def id_token(host: str, email: str, password: str) -> str:
    """Sign up `email` (or sign in when it exists) and return its ID token."""
    base = f"http://{host}/identitytoolkit.googleapis.com/v1/accounts"
    body = {"email": email, "password": password, "returnSecureToken": True}
    with httpx.Client(timeout=10) as http:
        answer = http.post(f"{base}:signUp", params={"key": "emulator"}, json=body)
        if answer.status_code == 400 and "EMAIL_EXISTS" in answer.text:
            answer = http.post(f"{base}:signInWithPassword", params={"key": "emulator"}, json=body)
        answer.raise_for_status()
        return str(answer.json()["idToken"])


def main() -> int:
    """Parse arguments and print the token alone on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("email", help="the user (created on first use)")
    parser.add_argument(
        "--password", default="emulator-only", help="the user's password (emulator only)"
    )
    parser.add_argument(
        "--emulator",
        default=os.environ.get("FIREBASE_AUTH_EMULATOR_HOST", "127.0.0.1:9099"),
        help="host:port of the Auth emulator (FIREBASE_AUTH_EMULATOR_HOST)",
    )
    args = parser.parse_args()
    try:
        print(id_token(args.emulator, args.email, args.password))
    except httpx.HTTPError as exc:
        hint = "is examples/firebase_emulator.sh running?"
        print(f"firebase_id_token: {exc} ({hint})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
