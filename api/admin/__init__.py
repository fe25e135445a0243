"""The admin API under `/admin/v1`: tenants, tokens, admin keys, mappings,
provisioning status, replay, the mass-deactivation breaker and reconcile.

Authorised by `Authorization: Bearer <operator token or tenant admin key>`
(`auth.py`); errors are `{"error": ..., "detail": ...}` JSON (`errors.py`).
The router is built by `api.admin.router.admin_router`; the read models and
commands it shares with the CLI and the page are in `ops/`. This `__init__`
imports nothing, so importing one module does not load every route.
"""
