"""SQL of webhooks (tables in `tables.py`, migration `webhooks_0001`)."""
