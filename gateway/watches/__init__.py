"""Parcel watches: tell a caller when a parcel it watches changes (`parcel.changed`).

Layout: `models.py` (what the API speaks), `diff.py` (which watched fields changed),
`service.py` (create/list/delete under the tier's caps, the changes log), `observer.py`
(the results path's hook: compare with the row being replaced, record the change in the
same transaction), `publish.py` (the live feed), `repository/` (SQL), `plane.py`.
"""
