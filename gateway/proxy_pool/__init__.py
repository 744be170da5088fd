"""Outbound proxy pool shared by the parcel and party worker ports (see `service`)."""
