"""Admin pages of tenants: the list with health, one tenant's page, its SCIM
tokens (issued and shown once; revoked after a confirmation).

Thin handlers over what the admin API uses (ops/, the shadow stores):
reach the tenant as the admin API does (`reach_tenant`: a tenant key
elsewhere is a 403), read or change, then redirect (Post/Redirect/Get) with
a one-time message for the section the form was in (api/web/flash.py).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from api.admin.auth import audit, reach_tenant
from api.admin.errors import AdminError
from api.admin.policy import MAX_LABEL_LENGTH
from api.admin.routes_webhooks import webhook_view
from api.web.activity import fleet_row, tenant_charts
from api.web.flash import Flash, push_flash
from api.web.pages import (
    Req,
    SessionDep,
    breaker_badge,
    health_of,
    page,
    posted_form,
    render,
    see_other,
)
from api.web.pages import services_of as _services
from api.web.people import people, search
from api.web.reasons import explain
from ops.commands import reconcile_state
from ops.views import breaker_view, failed_page, tenant_health, tenant_status, tenant_view
from shadow.admin_keys import AdminKeyStore
from shadow.breaker import breaker_state
from shadow.charts import ChartStore, Series
from shadow.webhooks import WebhookStore

__all__ = ["TENANT_HANDLERS", "tenant_path"]

FAILED_PAGE = 25
MAX_SEARCH = 200
Json = dict[str, Any]


def tenant_path(slug: str) -> str:
    return f"/admin/tenants/{slug}"


@get("/", name="web-home")
async def home(request: Req, session: SessionDep) -> Template | Redirect:
    """The operator's list of tenants; a customer's admin lands on its own tenant."""
    principal = session.principal
    if not principal.operator:
        return see_other(tenant_path(principal.tenant or ""))
    s = _services(request)
    rows = []
    for slug in sorted(await s.tenants.slugs()):
        tenant = await s.tenants.get(slug)
        if tenant is not None:
            view = {**tenant_view(tenant, s.settings), **await tenant_health(s.redis, slug)}
            breaker = {"held": view.get("held", 0), **_builtins(await breaker_state(s.redis, slug))}
            rows.append({**view, "health": health_of(view), "breaker": breaker_badge(breaker)})
    # The last 24 hours of every listed tenant, read in one round trip.
    series = await ChartStore(s.redis).read([row["tenant"] for row in rows])
    for row, one in zip(rows, series, strict=True):
        row["activity"] = fleet_row(one, row["tenant"])
    fleet = tenant_charts(Series.total(series), "fleet")[:2] if rows else []
    return await render(request, "tenants.html", session, tenants=rows, fleet=fleet)


def _builtins(value: Any) -> Json:
    built: Json = msgspec.to_builtins(value)
    return built


@get("/tenants/{slug:str}", name="web-tenant")
async def tenant_page(request: Req, session: SessionDep, slug: FromPath[str]) -> Template:
    principal = session.principal
    tenant = await reach_tenant(request, principal, slug)
    s = _services(request)
    offset = request.query_params.get("offset", "0")
    start = int(offset) if offset.isdigit() and len(offset) < 10 else 0
    query = request.query_params.get("q", "")[:MAX_SEARCH].strip()
    data = await tenant_status(s.redis, s.queue, slug)
    if not principal.operator:
        data.pop("queue_depth", None)  # the shared queue: other tenants' business
    view = tenant_view(tenant, s.settings)
    health = health_of({**view, **data, "breaker_tripped": data["breaker"]["tripped"]})
    failed = await failed_page(s.redis, slug, start, FAILED_PAGE)
    breaker = await breaker_view(s.redis, slug, held_limit=20)
    ids = [u["user_id"] for u in failed["users"]] + [h["user_id"] for h in breaker["held_users"]]
    who = await people(s.resources, slug, ids)
    for row in failed["users"]:
        row["person"] = who[row["user_id"]]
        row["reason"] = explain(row["error"])
    for row in breaker["held_users"]:
        row["person"] = who[row["user_id"]]
    found, partial = await search(s.resources, slug, query) if query else ([], False)
    operator_only: Json = {}
    if principal.operator:
        operator_only["admin_keys"] = await AdminKeyStore(s.redis).list_keys(slug)
    users_now = data["pending"] + data["synced"] + data["failed"] + data["held"]
    return await render(
        request,
        "tenant.html",
        session,
        tenant=view,
        health=health,
        status_data=data,
        users_now=users_now,
        failed=failed,
        retryable=any(r["reason"] is None or r["reason"].retry for r in failed["users"]),
        breaker=breaker,
        breaker_badge=breaker_badge(breaker),
        tokens=await s.tenants.list_tokens(slug),
        charts=tenant_charts((await ChartStore(s.redis).read([slug]))[0]),
        webhook=await webhook_view(WebhookStore(s.redis), slug, limit=10),
        query=query,
        found=found,
        found_partial=partial,
        reconcile=await reconcile_state(s.redis, slug),
        **operator_only,
    )


@get("/tenants/{slug:str}/tokens", name="web-tokens")
async def tokens_section(slug: FromPath[str]) -> Redirect:
    """The token list lives on the tenant's page (a bookmarked form address)."""
    return see_other(tenant_path(slug), anchor="tokens")


@post("/tenants/{slug:str}/tokens", name="web-token-issue")
async def issue_token(request: Req, session: SessionDep, slug: FromPath[str]) -> Redirect:
    """Issue a SCIM token; the next page shows it this once (api/web/flash.py),
    so reloading that page or going Back issues nothing."""
    form = await posted_form(request, session)
    await reach_tenant(request, session.principal, slug)
    s = _services(request)
    label = form.get("label", "").strip()
    days_text = form.get("expires_in_days", "").strip()
    refused = _check_label(label) or _check_days(days_text)
    if refused:
        await push_flash(s, session, Flash(section="tokens", tone="bad", text=refused, form=form))
        return see_other(tenant_path(slug), anchor="tokens")
    days = int(days_text) if days_text else None
    issued = await s.tenants.issue_token(
        slug, label=label, expires_in_s=days * 86_400 if days else None
    )
    audit(request, session.principal, "token issue", token_id=issued.token_id, via="web")
    name = f"“{label}”" if label else issued.token_id
    until = f" It expires in {days} day{'s' if days != 1 else ''}." if days else ""
    await push_flash(
        s,
        session,
        Flash(
            section="tokens",
            text=f"New SCIM token {name} issued.{until}",
            secret=issued.token,
            secret_name="New SCIM token",
        ),
    )
    return see_other(tenant_path(slug), anchor="tokens")


def _check_label(label: str) -> str | None:
    if len(label) > MAX_LABEL_LENGTH:
        return f"A label is at most {MAX_LABEL_LENGTH} characters."
    if any(ord(c) < 0x20 for c in label):
        return "A label is one line of text."
    return None


def _check_days(text: str) -> str | None:
    if text and not (text.isdigit() and 1 <= int(text) <= 3650):
        return "Expiry is a number of days from 1 to 3650, or empty for never."
    return None


async def _token_named(request: Req, slug: str, token_id: str) -> Json:
    for token in await _services(request).tenants.list_tokens(slug):
        if token.token_id == token_id:
            return {"id": token.token_id, "label": token.label, "last_used": token.last_used_at}
    raise AdminError(404, "no such token (it may have been revoked already)")


@get("/tenants/{slug:str}/tokens/{token_id:str}/revoke", name="web-token-revoke-confirm")
async def revoke_token_confirm(
    request: Req, session: SessionDep, slug: FromPath[str], token_id: FromPath[str]
) -> Template:
    tenant = await reach_tenant(request, session.principal, slug)
    token = await _token_named(request, slug, token_id)
    name = f"“{token['label']}” ({token['id']})" if token["label"] else token["id"]
    return page(
        request,
        "confirm.html",
        session,
        tenant=tenant_view(tenant, _services(request).settings),
        heading=f"Revoke token {name}?",
        consequences=[
            "Entra (or anything else) sending this token is refused from the next request on.",
            "If Entra still uses it, provisioning stops until you paste a new token into Entra.",
            "This cannot be undone; a new token can always be issued.",
        ],
        action=f"{tenant_path(slug)}/tokens/{token_id}/revoke",
        button=f"Revoke token {name}",
        back=f"{tenant_path(slug)}#tokens",
    )


@post("/tenants/{slug:str}/tokens/{token_id:str}/revoke", name="web-token-revoke")
async def revoke_token(
    request: Req, session: SessionDep, slug: FromPath[str], token_id: FromPath[str]
) -> Redirect:
    await posted_form(request, session)
    await reach_tenant(request, session.principal, slug)
    s = _services(request)
    token = await _token_named(request, slug, token_id)
    if not await s.tenants.revoke_token(slug, token_id):
        raise AdminError(404, "no such token (it may have been revoked already)")
    audit(request, session.principal, "token revoke", token_id=token_id, via="web")
    name = f"“{token['label']}”" if token["label"] else token_id
    text = f"Token {name} was revoked; it stops working at once."
    await push_flash(s, session, Flash(section="tokens", text=text))
    return see_other(tenant_path(slug), anchor="tokens")


TENANT_HANDLERS = [
    home,
    tenant_page,
    tokens_section,
    issue_token,
    revoke_token_confirm,
    revoke_token,
]
