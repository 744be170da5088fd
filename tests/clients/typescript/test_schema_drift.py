"""The TypeScript SDK's committed types match the public port's OpenAPI document.

The document is the public app's own (built in-process on the test's backends); the
types are regenerated from it with the SDK's pinned `openapi-typescript`. To update the
committed file after an API change: `TS_SDK_REGENERATE=1 pytest tests/clients/typescript/
test_schema_drift.py` (or `npm run generate` against a running gateway).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from gateway.core.audience import Audience
from tests.conftest import ClientFactory
from tests.support.typescript_sdk import SCHEMA, generate_types

pytestmark = pytest.mark.integration


async def test_the_committed_types_match_the_public_document(
    client_for: ClientFactory, tmp_path: Path
) -> None:
    async with client_for(Audience.PUBLIC) as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = tmp_path / "openapi.json"
    document.write_text(response.text)
    generated = tmp_path / "schema.d.ts"
    generate_types(document, generated)
    fresh = generated.read_text()
    if os.environ.get("TS_SDK_REGENERATE") == "1":
        SCHEMA.write_text(fresh)
    committed = SCHEMA.read_text() if SCHEMA.exists() else ""
    diff = "".join(
        difflib.unified_diff(
            committed.splitlines(keepends=True),
            fresh.splitlines(keepends=True),
            "committed",
            "regenerated",
            n=1,
        )
    )
    assert not diff, (
        "clients/typescript/src/schema.d.ts is out of date; regenerate it with "
        "TS_SDK_REGENERATE=1 pytest tests/clients/typescript/test_schema_drift.py\n" + diff[:6000]
    )
