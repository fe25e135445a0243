"""The admin API under `/admin/v1`: tenants, tokens, admin keys, mappings,
provisioning status, replay, the mass-deactivation breaker and reconcile.

Authorised by `Authorization: Bearer <operator token or tenant admin key>`
(`auth.py`); errors are `{"error": ..., "detail": ...}` JSON (`errors.py`).
The router is built by `api.admin.router.admin_router`; `views.py` holds the
read models the CLI shares. This `__init__` imports nothing, so the CLI can
use `views` without loading the routes (which import the CLI's helpers).
"""
