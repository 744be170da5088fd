"""The TypeScript SDK type-checks: `tsc` (strict) over its JSDoc-typed sources, its
declarations and test/typecheck.ts, whose `@ts-expect-error` lines prove that a wrong
path, a missing path parameter or a wrong body is refused at compile time."""

from __future__ import annotations

import pytest

from tests.support.typescript_sdk import typecheck

pytestmark = pytest.mark.integration


def test_the_sdk_type_checks() -> None:
    result = typecheck()
    assert result.returncode == 0, result.stdout + result.stderr
