"""Text PostgreSQL cannot store, recognised before it reaches a query.

A `text` value may hold any character but NUL (0x00): asyncpg sends it and the server
refuses the statement (`invalid byte sequence for encoding "UTF8": 0x00`), which would
surface as a 500. A lone surrogate (U+D800..U+DFFF) cannot even be encoded as UTF-8, so
asyncpg fails before sending. Neither is anything a caller can mean, so the edge refuses
both with a 422 instead of letting a query fail on them.

Query strings cannot carry a lone surrogate (Starlette decodes percent-escapes with
`errors="replace"`), but JSON can (`"\\ud800"`), which is how a decoded cursor gets one.
"""

from __future__ import annotations

import re

# NUL, and the surrogate range that UTF-8 cannot encode.
_NOT_STORABLE = re.compile("[\x00\ud800-\udfff]")

NOT_STORABLE_MSG = "must not contain NUL or unpaired surrogate characters"


def storable_text(value: str) -> bool:
    """Whether PostgreSQL can store `value` as `text`."""
    return _NOT_STORABLE.search(value) is None
