"""Python client of the tax-lien gateway's public API (sync `Client`, async `AsyncClient`).

```python
from taxlien_gateway import Client

with Client("http://localhost:8080", api_key="tlk_...") as gw:
    job = gw.jobs.create("parcel_refresh", [{"platform": "miami_dade", "parcel_id": "01-2"}])
    for event in gw.jobs.follow(job.id):
        print(event)
```

Workers use the other package, `taxlien_worker` (`clients/worker`).
"""

from taxlien_gateway import models
from taxlien_gateway._async import AsyncClient
from taxlien_gateway._call import Call, new_idempotency_key
from taxlien_gateway._sync import Client
from taxlien_gateway.errors import (
    BadRequest,
    ClientError,
    Conflict,
    Forbidden,
    GatewayError,
    NotFound,
    PaymentRequired,
    RateLimited,
    ServiceUnavailable,
    StreamInterrupted,
    Unauthorized,
    ValidationFailed,
    WebhookVerificationError,
)
from taxlien_gateway.models import FollowEvent, JobEvent, JobSnapshot
from taxlien_gateway.pagination import AsyncPager, Pager
from taxlien_gateway.ratelimit import RateLimit
from taxlien_gateway.retry import NO_RETRIES, Retry, RetryPolicy
from taxlien_gateway.webhook_signatures import (
    WebhookMessage,
    WebhookVerifier,
    sign,
    verify_webhook,
)

__all__ = [
    "NO_RETRIES",
    "AsyncClient",
    "AsyncPager",
    "BadRequest",
    "Call",
    "Client",
    "ClientError",
    "Conflict",
    "FollowEvent",
    "Forbidden",
    "GatewayError",
    "JobEvent",
    "JobSnapshot",
    "NotFound",
    "Pager",
    "PaymentRequired",
    "RateLimit",
    "RateLimited",
    "Retry",
    "RetryPolicy",
    "ServiceUnavailable",
    "StreamInterrupted",
    "Unauthorized",
    "ValidationFailed",
    "WebhookMessage",
    "WebhookVerificationError",
    "WebhookVerifier",
    "models",
    "new_idempotency_key",
    "sign",
    "verify_webhook",
]
