"""Each port's OpenAPI document (`/openapi.json`, `/openapi.yaml`); see `document.py`."""

from gateway.api.openapi.document import install_openapi, operation_id

__all__ = ["install_openapi", "operation_id"]
