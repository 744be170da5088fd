"""Field errors: one shape for service checks and pydantic's errors, never the input."""

from __future__ import annotations

import pydantic

from gateway.kit.field_errors import field_errors, invalid_field


def test_invalid_field_is_a_422_naming_the_field() -> None:
    error = invalid_field("query", "cursor", msg="invalid cursor")
    assert error.status == 422
    assert error.extra["errors"] == [
        {"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "value_error"}
    ]
    assert (
        invalid_field("body", "tasks", msg="too many", type="too_long").extra["errors"][0]["type"]
        == "too_long"
    )


def test_pydantic_errors_lose_the_submitted_input() -> None:
    class Body(pydantic.BaseModel):
        secret: int

    try:
        Body.model_validate({"secret": "hunter2"})
    except pydantic.ValidationError as exc:
        reduced = field_errors(exc.errors())
    assert reduced == [
        {
            "loc": ["secret"],
            "msg": "Input should be a valid integer, unable to parse string as an integer",
            "type": "int_parsing",
        }
    ]
    assert "hunter2" not in repr(reduced)
