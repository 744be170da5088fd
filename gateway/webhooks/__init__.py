"""Webhooks: signed, durable, retried delivery of job (and, later, parcel) events.

`signing.py` signs per the Standard Webhooks specification; `ssrf.py` decides which
endpoint URLs and addresses may be called, and `sender.py` sends one attempt with that
guard applied to the address actually connected to. `service.py` manages a caller's
endpoints (`repository/`). Delivery: `fanout.py` turns pending job events (the
`job_events` outbox, and parcel changes) into deliveries, `dispatcher.py` claims
(`repository/claim.py`: in-flight caps and the per-endpoint rate) and sends them
(leases, retries, batched outcome writes, disabling; `disabled.py` announces a
disabled endpoint), `wakeup.py` wakes the loop on outbox inserts (LISTEN/NOTIFY), and
`delivery.py` runs it all in every replica; `metrics.py` holds the series they count
(and the outbox backlog the loop reads); the README's "Webhooks" section describes it.
"""
