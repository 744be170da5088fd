"""Webhooks: signed, durable, retried delivery of job (and, later, parcel) events.

`signing.py` signs per the Standard Webhooks specification; `ssrf.py` decides which
endpoint URLs and addresses may be called, and `sender.py` sends one attempt with that
guard applied to the address actually connected to. `service.py` manages a caller's
endpoints (`repository/`). Delivery: `fanout.py` turns pending job events (the
`job_events` outbox) into deliveries, `dispatcher.py` claims and sends them (leases,
retries, disabling), and `delivery.py` runs both in every replica; `metrics.py` holds
the series they count (and the outbox backlog the loop reads); the README's
"Webhooks" section describes it.
"""
