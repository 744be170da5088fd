"""Webhooks: signed, durable, retried delivery of job (and, later, parcel) events.

`signing.py` signs per the Standard Webhooks specification; `ssrf.py` decides which
endpoint URLs and addresses may be called, and `sender.py` sends one attempt with that
guard applied to the address actually connected to. `service.py` manages a caller's
endpoints (`repository/`). Delivery (the outbox fan-out from `job_events`, the
dispatcher, retries) is described in the README's "Webhooks" section.
"""
