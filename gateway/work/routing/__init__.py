"""Celery routing: which tasks go to Celery, and the Celery side of the worker plane.

`split.py` (the deterministic per-task decision), `shares.py` (runtime shares in Redis),
`router.py` (routes + shares → a lane per task) and `service.py` (what the admin API and
CLI call) never import Celery. `bridge.py`, `dispatch.py` and `consumer.py` do, and are
imported only when `CELERY_ROUTES` is set (see the README section "Celery routing").
"""
