"""Admin pages of tenants: the list with health, one tenant's page, its SCIM
tokens (issue shows the token once; revoke) and the mapping preview.

Thin handlers over what the admin API uses (ops/, the shadow stores): reach
the tenant as the admin API does (`reach_tenant`: a tenant key elsewhere is
a 403), read or change, render.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from api.admin.auth import audit, reach_tenant
from api.admin.errors import AdminError
from api.admin.routes_webhooks import webhook_view
from api.scim_io import MAX_JSON_DEPTH, depth_ok
from api.web.activity import fleet_row, tenant_charts
from api.web.pages import Req, SessionDep, health_of, page, posted_form, see_other
from api.web.pages import services_of as _services
from mappings import MappingConfigError
from ops.views import breaker_view, failed_page, tenant_health, tenant_status, tenant_view
from scim.errors import ScimError
from scim.resource import canonicalize
from scim.schema import USER_RESOURCE
from shadow import MappingStore
from shadow.charts import ChartStore, Series
from shadow.webhooks import WebhookStore

__all__ = ["TENANT_HANDLERS"]

FAILED_PAGE = 25
_MAX_LABEL = 100
_MAX_PREVIEW = 64 * 1024
Json = dict[str, Any]

EXAMPLE_USER = """{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
  "userName": "ada.lovelace@example.com",
  "active": true,
  "name": {"givenName": "Ada", "familyName": "Lovelace"},
  "emails": [{"value": "ada.lovelace@example.com", "type": "work", "primary": true}],
  "title": "Analyst",
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
    "department": "Research", "organization": "Acme Ltd"
  }
}"""


def tenant_path(slug: str) -> str:
    return f"/admin/tenants/{slug}"


@get("/", name="web-tenants")
async def tenants(request: Req, session: SessionDep) -> Template:
    """Every tenant with its health (operator); a tenant key sees its own."""
    s = _services(request)
    principal = session.principal
    slugs = await s.tenants.slugs() if principal.operator else [principal.tenant or ""]
    rows = []
    for slug in sorted(slugs):
        tenant = await s.tenants.get(slug)
        if tenant is not None:
            view = {**tenant_view(tenant, s.settings), **await tenant_health(s.redis, slug)}
            rows.append({**view, "health": health_of(view)})
    # The last 24 hours of every listed tenant, read in one round trip.
    series = await ChartStore(s.redis).read([row["tenant"] for row in rows])
    for row, one in zip(rows, series, strict=True):
        row["activity"] = fleet_row(one, row["tenant"])
    fleet = tenant_charts(Series.total(series), "fleet")[:2] if rows else []
    return page(request, "tenants.html", session, tenants=rows, fleet=fleet)


async def _tenant_page(
    request: Req, session: SessionDep, slug: str, *, issued: Json | None = None, status: int = 200
) -> Template:
    principal = session.principal
    tenant = await reach_tenant(request, principal, slug)
    s = _services(request)
    offset = request.query_params.get("offset", "0")
    start = int(offset) if offset.isdigit() and len(offset) < 10 else 0
    data = await tenant_status(s.redis, s.queue, slug)
    if not principal.operator:
        data.pop("queue_depth", None)  # the shared queue: other tenants' business
    view = tenant_view(tenant, s.settings)
    health = health_of({**view, **data, "breaker_tripped": data["breaker"]["tripped"]})
    return page(
        request,
        "tenant.html",
        session,
        status=status,
        tenant=view,
        health=health,
        status_data=data,
        failed=await failed_page(s.redis, slug, start, FAILED_PAGE),
        breaker=await breaker_view(s.redis, slug, held_limit=20),
        tokens=await s.tenants.list_tokens(slug),
        issued=issued,
        charts=tenant_charts((await ChartStore(s.redis).read([slug]))[0]),
        webhook=await webhook_view(WebhookStore(s.redis), slug, limit=10),
    )


@get("/tenants/{slug:str}", name="web-tenant")
async def tenant_page(request: Req, session: SessionDep, slug: FromPath[str]) -> Template:
    return await _tenant_page(request, session, slug)


@post("/tenants/{slug:str}/tokens", name="web-token-issue")
async def issue_token(request: Req, session: SessionDep, slug: FromPath[str]) -> Template:
    """Issue a SCIM token and show it this once, in the answer to the POST
    (never stored for a later page; the page is never cached)."""
    form = await posted_form(request, session)
    await reach_tenant(request, session.principal, slug)
    s = _services(request)
    label = form.get("label", "").strip()[:_MAX_LABEL]
    issued = await s.tenants.issue_token(slug, label=label)
    audit(request, session.principal, "token issue", token_id=issued.token_id, via="web")
    shown = {"token_id": issued.token_id, "token": issued.token, "label": label}
    return await _tenant_page(request, session, slug, issued=shown, status=201)


@post("/tenants/{slug:str}/tokens/{token_id:str}/revoke", name="web-token-revoke")
async def revoke_token(
    request: Req, session: SessionDep, slug: FromPath[str], token_id: FromPath[str]
) -> Redirect:
    await posted_form(request, session)
    await reach_tenant(request, session.principal, slug)
    if not await _services(request).tenants.revoke_token(slug, token_id):
        raise AdminError(404, "no such token")
    audit(request, session.principal, "token revoke", token_id=token_id, via="web")
    return see_other(tenant_path(slug), anchor="tokens", done="revoked")


async def _preview(request: Req, slug: str, text: str) -> tuple[Json | None, str | None]:
    """What the pasted SCIM user would become, or why it cannot be previewed."""
    if len(text) > _MAX_PREVIEW:
        return None, "That is more than 64 KiB of JSON."
    if not depth_ok(text.encode()):
        return None, f"The JSON is nested deeper than {MAX_JSON_DEPTH} levels."
    try:
        user = msgspec.json.decode(text)
        if not isinstance(user, dict):
            return None, "A SCIM user is a JSON object."
        doc = canonicalize(USER_RESOURCE, user)
    except msgspec.DecodeError as exc:
        return None, f"Not valid JSON: {exc}"
    except ScimError as exc:
        return None, f"Not a valid SCIM user: {exc.detail}"
    for name in ("id", "groups"):  # the groups the team rule would see
        if name in user:
            doc[name] = user[name]
    try:
        return await MappingStore(_services(request).redis).preview(slug, doc), None
    except MappingConfigError as exc:
        problems = "; ".join(p.message for p in exc.problems)
        return None, f"The tenant's stored mapping is invalid: {problems}"


@get("/tenants/{slug:str}/preview", name="web-preview")
async def preview_form(request: Req, session: SessionDep, slug: FromPath[str]) -> Template:
    tenant = await reach_tenant(request, session.principal, slug)
    view = tenant_view(tenant, _services(request).settings)
    return page(request, "preview.html", session, tenant=view, text=EXAMPLE_USER)


@post("/tenants/{slug:str}/preview", name="web-preview-run")
async def preview_run(request: Req, session: SessionDep, slug: FromPath[str]) -> Template:
    """Changes nothing, but is a POST: the pasted user can be large."""
    form = await posted_form(request, session)
    tenant = await reach_tenant(request, session.principal, slug)
    view = tenant_view(tenant, _services(request).settings)
    text = form.get("user", "")
    result, error = await _preview(request, slug, text)
    return page(
        request,
        "preview.html",
        session,
        status=200 if error is None else 422,
        tenant=view,
        text=text,
        result=result,
        error=error,
    )


TENANT_HANDLERS = [tenants, tenant_page, issue_token, revoke_token, preview_form, preview_run]
