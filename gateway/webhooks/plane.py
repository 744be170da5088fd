"""The webhooks plane of the public port: the endpoint service, and the delivery loop
(fan-out of job events and the dispatcher) started and stopped with the plane."""

from __future__ import annotations

from typing import ClassVar, Self

from gateway.core.audience import Audience
from gateway.core.resources import Resources
from gateway.webhooks.delivery import DeliveryLoop
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
        self.delivery = DeliveryLoop(resources)

    async def start(self) -> None:
        """Start the delivery loop (every replica runs one)."""
        self.delivery.start()

    async def stop(self) -> None:
        """Stop the delivery loop (sends under way get a short grace)."""
        await self.delivery.stop()
