"""The one error embedded mode raises."""

from __future__ import annotations


class EmbeddedBackendError(Exception):
    """An embedded server could not be started; the message is one line for the operator."""
