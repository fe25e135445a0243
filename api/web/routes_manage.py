"""Admin pages that change a tenant: create one, its settings (name, LMS
key), enable or disable it, its admin keys, a reconcile, and its mapping
(edited beside a live preview).

Each calls what the admin API calls, with the admin API's policy
(api/admin/policy.py: `require_operator`, `check_tenant_change`, the
bounded lengths) and checks (`check_tenant_settings`, `decode_overrides`,
`_replace_rules`, `request_reconcile`), then redirects with a message for
the section the form was in (api/web/flash.py).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from api.admin.auth import audit, reach_tenant
from api.admin.errors import AdminError
from api.admin.policy import (
    MAX_LABEL_LENGTH,
    MAX_NAME_LENGTH,
    MAX_SECRET_LENGTH,
    check_tenant_change,
    require_operator,
)
from api.admin.routes_tenants import _replace_rules
from api.scim_io import MAX_JSON_DEPTH, depth_ok
from api.web.flash import Flash, push_flash
from api.web.pages import Req, SessionDep, page, posted_form, render, see_other
from api.web.pages import services_of as _services
from api.web.routes_tenants import tenant_path
from mappings import MappingConfigError, decode_overrides, encode_overrides
from ops.commands import request_reconcile
from ops.views import check_tenant_settings, tenant_view
from scim.errors import ScimError
from scim.resource import canonicalize
from scim.schema import USER_RESOURCE
from shadow import MappingStore, Tenant, TenantError
from shadow.admin_keys import AdminKeyStore

__all__ = ["MANAGE_HANDLERS"]

MAX_JSON_TEXT = 64 * 1024
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


def _sentence(problems: list[str]) -> str:
    return " ".join(f"{p[:1].upper()}{p[1:]}." for p in problems)


def _text_problem(name: str, value: str, limit: int) -> str | None:
    if len(value) > limit:
        return f"the {name} is at most {limit} characters"
    if any(ord(c) < 0x20 for c in value):
        return f"the {name} is one line of text"
    return None


# -- create a tenant (operator) ----------------------------------------------------


@get("/new-tenant", name="web-tenant-new")
async def new_tenant(request: Req, session: SessionDep) -> Template:
    require_operator(session.principal)
    return await render(request, "tenant_new.html", session)


@post("/new-tenant", name="web-tenant-create")
async def create_tenant(request: Req, session: SessionDep) -> Redirect:
    form = await posted_form(request, session)
    principal = session.principal
    require_operator(principal)
    s = _services(request)
    slug = form.get("slug", "").strip().lower()
    values: Json = {
        "slug": slug,
        "name": form.get("name", "").strip() or slug,
        "lms_url": form.get("lms_url", "").strip(),
        "lms_api_key": form.get("lms_api_key", "").strip(),
    }
    problems = [
        p
        for p in (
            _text_problem("name", values["name"], MAX_NAME_LENGTH),
            _text_problem("LMS key", values["lms_api_key"], MAX_SECRET_LENGTH),
        )
        if p
    ]
    problems += check_tenant_settings(values)
    if not problems:
        try:
            tenant = await s.tenants.create(Tenant(**values))
        except TenantError as exc:
            problems.append(str(exc))
    if problems:
        kept = {k: v for k, v in form.items() if k in ("slug", "name", "lms_url")}
        flash = Flash(section="create", tone="bad", text=_sentence(problems), form=kept)
        await push_flash(s, session, flash)
        return see_other("/admin/new-tenant", anchor="create")
    request.state.tenant = tenant.slug
    audit(request, principal, "tenant create", via="web")
    text = (
        f"Tenant {tenant.name} created. Issue a SCIM token for Entra below, and an admin key "
        "for the customer's admin."
    )
    await push_flash(s, session, Flash(section="tokens", text=text))
    return see_other(tenant_path(tenant.slug), anchor="tokens")


# -- settings, enable and disable ---------------------------------------------------


@post("/tenants/{slug:str}/settings", name="web-tenant-settings")
async def save_settings(request: Req, session: SessionDep, slug: FromPath[str]) -> Redirect:
    """The name (either role); the LMS key (the operator's: the admin
    policy's `check_tenant_change` decides, as for the admin API)."""
    form = await posted_form(request, session)
    principal = session.principal
    tenant = await reach_tenant(request, principal, slug)
    s = _services(request)
    values: Json = {}
    if "name" in form:
        values["name"] = form["name"].strip()
    if form.get("lms_api_key", "").strip():
        values["lms_api_key"] = form["lms_api_key"].strip()
    problems = [
        p
        for p in (
            _text_problem("name", values.get("name", ""), MAX_NAME_LENGTH),
            _text_problem("LMS key", values.get("lms_api_key", ""), MAX_SECRET_LENGTH),
        )
        if p
    ]
    try:
        check_tenant_change(principal, values)  # a 403 for the operator's fields
    except AdminError as exc:
        if exc.status != 422:
            raise
        problems += exc.detail.split("; ")
    if problems:
        kept = {"name": form.get("name", "")}
        flash = Flash(section="settings", tone="bad", text=_sentence(problems), form=kept)
        await push_flash(s, session, flash)
        return see_other(tenant_path(slug), anchor="settings")
    if values:
        await s.tenants.save(msgspec.structs.replace(tenant, **values))
        audit(request, principal, "tenant update", fields=sorted(values), via="web")
    named = {"name": "name", "lms_api_key": "LMS key"}
    changed = " and ".join(named[k] for k in values) or "nothing"
    text = f"Saved: {changed} changed."
    if "lms_api_key" in values:
        text += " Users waiting on the old key are sent with the new one."
    await push_flash(s, session, Flash(section="settings", text=text))
    return see_other(tenant_path(slug), anchor="settings")


@get("/tenants/{slug:str}/disable", name="web-tenant-disable-confirm")
async def disable_confirm(request: Req, session: SessionDep, slug: FromPath[str]) -> Template:
    tenant = await reach_tenant(request, session.principal, slug)
    require_operator(session.principal)
    return page(
        request,
        "confirm.html",
        session,
        tenant=tenant_view(tenant, _services(request).settings),
        heading=f"Disable {tenant.name}?",
        consequences=[
            "Entra's requests for this tenant are refused until it is enabled again; "
            "Entra retries them later.",
            "Nothing is sent to the LMS meanwhile. Learners already in the LMS are not touched.",
        ],
        action=f"{tenant_path(slug)}/enabled",
        fields={"enabled": "0"},
        button=f"Disable {tenant.name}",
        danger=True,
        back=f"{tenant_path(slug)}#settings",
    )


@post("/tenants/{slug:str}/enabled", name="web-tenant-enabled")
async def set_enabled(request: Req, session: SessionDep, slug: FromPath[str]) -> Redirect:
    """Enable (one click) or disable (after `disable_confirm`): the operator's."""
    form = await posted_form(request, session)
    principal = session.principal
    tenant = await reach_tenant(request, principal, slug)
    require_operator(principal)
    enabled = form.get("enabled") == "1"
    s = _services(request)
    await s.tenants.save(msgspec.structs.replace(tenant, enabled=enabled))
    audit(request, principal, "tenant update", fields=["enabled"], via="web")
    text = f"{tenant.name} is {'enabled' if enabled else 'disabled'}."
    await push_flash(s, session, Flash(section="settings", text=text))
    return see_other(tenant_path(slug), anchor="settings")


# -- admin keys (operator) -----------------------------------------------------------


@post("/tenants/{slug:str}/admin-keys", name="web-admin-key-issue")
async def issue_admin_key(request: Req, session: SessionDep, slug: FromPath[str]) -> Redirect:
    form = await posted_form(request, session)
    principal = session.principal
    require_operator(principal)
    await reach_tenant(request, principal, slug)
    s = _services(request)
    label = form.get("label", "").strip()
    if problem := _text_problem("label", label, MAX_LABEL_LENGTH):
        flash = Flash(section="admin-keys", tone="bad", text=_sentence([problem]), form=form)
        await push_flash(s, session, flash)
        return see_other(tenant_path(slug), anchor="admin-keys")
    issued = await AdminKeyStore(s.redis).issue(slug, label=label)
    audit(request, principal, "admin key issue", key_id=issued.key_id, via="web")
    name = f"“{label}”" if label else issued.key_id
    flash = Flash(
        section="admin-keys",
        text=f"Admin key {name} issued. Give it to the customer's admin over a safe channel.",
        secret=issued.key,
        secret_name="New admin key",
    )
    await push_flash(s, session, flash)
    return see_other(tenant_path(slug), anchor="admin-keys")


async def _key_named(request: Req, slug: str, key_id: str) -> Json:
    for key in await AdminKeyStore(_services(request).redis).list_keys(slug):
        if key.token_id == key_id:
            return {"id": key.token_id, "label": key.label}
    raise AdminError(404, "no such admin key (it may have been revoked already)")


@get("/tenants/{slug:str}/admin-keys/{key_id:str}/revoke", name="web-admin-key-revoke-confirm")
async def revoke_admin_key_confirm(
    request: Req, session: SessionDep, slug: FromPath[str], key_id: FromPath[str]
) -> Template:
    require_operator(session.principal)
    tenant = await reach_tenant(request, session.principal, slug)
    key = await _key_named(request, slug, key_id)
    name = f"“{key['label']}” ({key['id']})" if key["label"] else key["id"]
    return page(
        request,
        "confirm.html",
        session,
        tenant=tenant_view(tenant, _services(request).settings),
        heading=f"Revoke admin key {name}?",
        consequences=[
            "Whoever holds this key is logged out of the admin page at once and can no "
            "longer use the admin API.",
            "Provisioning from Entra is not affected (it uses SCIM tokens).",
        ],
        action=f"{tenant_path(slug)}/admin-keys/{key_id}/revoke",
        button=f"Revoke admin key {name}",
        danger=True,
        back=f"{tenant_path(slug)}#admin-keys",
    )


@post("/tenants/{slug:str}/admin-keys/{key_id:str}/revoke", name="web-admin-key-revoke")
async def revoke_admin_key(
    request: Req, session: SessionDep, slug: FromPath[str], key_id: FromPath[str]
) -> Redirect:
    await posted_form(request, session)
    require_operator(session.principal)
    await reach_tenant(request, session.principal, slug)
    s = _services(request)
    key = await _key_named(request, slug, key_id)
    if not await AdminKeyStore(s.redis).revoke(slug, key_id):
        raise AdminError(404, "no such admin key (it may have been revoked already)")
    audit(request, session.principal, "admin key revoke", key_id=key_id, via="web")
    name = f"“{key['label']}”" if key["label"] else key_id
    text = f"Admin key {name} was revoked; its sessions ended."
    await push_flash(s, session, Flash(section="admin-keys", text=text))
    return see_other(tenant_path(slug), anchor="admin-keys")


# -- reconcile ------------------------------------------------------------------------


@post("/tenants/{slug:str}/reconcile", name="web-reconcile")
async def reconcile(request: Req, session: SessionDep, slug: FromPath[str]) -> Redirect:
    """Ask a worker to compare the LMS with what Entra sent (and repair the
    differences, unless only a report is asked for), as the admin API does."""
    form = await posted_form(request, session)
    await reach_tenant(request, session.principal, slug)
    s = _services(request)
    repair = form.get("repair") == "1"
    if await request_reconcile(s.redis, s.queue, slug, repair) is None:
        text, tone = "A reconcile of this tenant is already queued or running.", "warn"
    else:
        audit(request, session.principal, "reconcile", repair=repair, via="web")
        what = "Reconcile and repair" if repair else "Reconcile report"
        text, tone = f"{what} queued; its progress shows here.", "good"
    await push_flash(s, session, Flash(section="reconcile", tone=tone, text=text))  # type: ignore[arg-type]
    return see_other(tenant_path(slug), anchor="reconcile")


# -- mapping: edit beside the preview ----------------------------------------------------


@get("/tenants/{slug:str}/mapping", name="web-mapping")
async def mapping_page(request: Req, session: SessionDep, slug: FromPath[str]) -> Template:
    tenant = await reach_tenant(request, session.principal, slug)
    s = _services(request)
    stored = await MappingStore(s.redis).raw(slug)
    current = msgspec.json.format(stored.decode(), indent=2) if stored else ""
    return await render(
        request,
        "mapping.html",
        session,
        tenant=tenant_view(tenant, s.settings),
        overrides=current,
        user_text=EXAMPLE_USER,
        progress=msgspec.to_builtins(await MappingStore(s.redis).progress(slug)),
    )


@get("/tenants/{slug:str}/preview", name="web-preview")
async def preview_form(slug: FromPath[str]) -> Redirect:
    """The preview sits beside the mapping editor (an older address)."""
    return see_other(f"{tenant_path(slug)}/mapping", anchor="preview")


def _json_problem(text: str) -> str | None:
    if len(text.encode()) > MAX_JSON_TEXT:
        return "That is more than 64 KiB of JSON."
    if not depth_ok(text.encode()):
        return f"The JSON is nested deeper than {MAX_JSON_DEPTH} levels."
    return None


async def _preview(request: Req, slug: str, text: str) -> tuple[Json | None, str | None]:
    """What the pasted SCIM user would become, or why it cannot be previewed."""
    if problem := _json_problem(text):
        return None, problem
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


@post("/tenants/{slug:str}/preview", name="web-preview-run")
async def preview_run(request: Req, session: SessionDep, slug: FromPath[str]) -> Redirect:
    """Changes nothing; still answered with a redirect, so a reload never
    asks to send the form again (the result is shown once)."""
    form = await posted_form(request, session)
    await reach_tenant(request, session.principal, slug)
    text = form.get("user", "")
    result, error = await _preview(request, slug, text)
    flash = Flash(
        section="preview",
        tone="bad" if error else "good",
        text=error or "",
        form={"user": text, "overrides": form.get("overrides", "")},
        data={"result": result} if result is not None else {},
    )
    await push_flash(_services(request), session, flash)
    return see_other(f"{tenant_path(slug)}/mapping", anchor="preview")


@post("/tenants/{slug:str}/mapping", name="web-mapping-save")
async def mapping_save(request: Req, session: SessionDep, slug: FromPath[str]) -> Redirect:
    """Replace the overrides (empty: the defaults); every user is re-synced."""
    form = await posted_form(request, session)
    principal = session.principal
    await reach_tenant(request, principal, slug)
    s = _services(request)
    text = form.get("overrides", "").strip()
    problem = _json_problem(text)
    overrides = None
    if problem is None and text:
        try:
            overrides = encode_overrides(decode_overrides(text, "json"))
        except MappingConfigError as exc:
            problem = " ".join(f"{p.message}." for p in exc.problems)
    if problem is not None:
        kept = {"overrides": form.get("overrides", ""), "user": form.get("user", "")}
        flash = Flash(section="mapping", tone="bad", text=problem, form=kept)
        await push_flash(s, session, flash)
        return see_other(f"{tenant_path(slug)}/mapping", anchor="mapping")
    progress = await _replace_rules(s, slug, overrides)
    audit(request, principal, "mapping set" if overrides else "mapping reset", via="web")
    total = progress.get("total", 0)
    text = "Mapping saved" if overrides else "Mapping reset to the defaults"
    text += f"; re-syncing every user under it ({total} to go)." if total else "."
    await push_flash(s, session, Flash(section="mapping", text=text))
    return see_other(f"{tenant_path(slug)}/mapping", anchor="mapping")


MANAGE_HANDLERS = [
    new_tenant,
    create_tenant,
    save_settings,
    disable_confirm,
    set_enabled,
    issue_admin_key,
    revoke_admin_key_confirm,
    revoke_admin_key,
    reconcile,
    mapping_page,
    preview_form,
    preview_run,
    mapping_save,
]
