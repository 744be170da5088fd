"""Every port's OpenAPI document, JSON and YAML, passes `redocly lint` with no error."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gateway.core.audience import Audience
from tests.conftest import ClientFactory
from tests.support.redocly import lint

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("audience", list(Audience))
async def test_the_ports_documents_lint_clean(
    client_for: ClientFactory, audience: Audience, tmp_path: Path
) -> None:
    async with client_for(audience) as client:
        as_json = await client.get("/openapi.json")
        as_yaml = await client.get("/openapi.yaml")
    assert as_json.status_code == 200
    assert as_yaml.status_code == 200
    assert as_yaml.headers["content-type"] == "application/yaml"
    # The two are the same document, written out in full (no YAML anchors).
    assert yaml.safe_load(as_yaml.text) == as_json.json()
    assert "&id" not in as_yaml.text
    for name, body in (("openapi.json", as_json.text), ("openapi.yaml", as_yaml.text)):
        path = tmp_path / f"{audience.value}-{name}"
        path.write_text(body)
        result = lint(path)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert "Your API description is valid" in output, output
