"""The audit trail: who did what to which target, when, as an append-only hash chain.

`AuditLog.record` is called by the services (API and CLI alike) inside the transaction
of the action it describes; `gateway audit verify` walks the chain; the admin route
`GET /v1/admin/audit` pages it. See the README's "Audit trail" section.
"""
