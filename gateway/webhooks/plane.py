"""The webhooks plane of the public port: the endpoint service (more to come: the
dispatcher that sends deliveries, started and stopped with the plane)."""

from __future__ import annotations

from typing import ClassVar, Self

from gateway.core.audience import Audience
from gateway.core.resources import Resources
from gateway.webhooks.service import WebhookService


class WebhooksPlane:
    """Everything the webhook routes need."""

    name: ClassVar[str] = "webhooks"

    @classmethod
    def build(cls, resources: Resources, audience: Audience = Audience.PUBLIC) -> Self:
        """The plane of the public port (not yet started)."""
        return cls(resources, audience)

    def __init__(self, resources: Resources, audience: Audience = Audience.PUBLIC) -> None:
        self.resources = resources
        self.audience = audience
        self.service = WebhookService(resources)

    async def start(self) -> None:
        """Nothing runs in the background yet (the dispatcher will)."""

    async def stop(self) -> None:
        """Nothing to stop yet."""
