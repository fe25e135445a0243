"""A tenant's configuration as one JSON document, to move a tenant between
deployments or restore it: settings, mapping overrides, breaker settings and
the digests of its SCIM tokens and admin keys (so the IdP's token and the
customer's admin key keep working). No user data, no sync state.

Secrets stay as stored and are never decrypted: token and key records hold
SHA-256 digests only; the LMS API key travels sealed (core/sealing.py), so
the deployment that imports it needs the BRIDGE_SECRET_KEY that sealed it
among its own. A key stored unsealed (from before sealing) is left out: the
import takes it again (`--lms-api-key`, sealed on the way in) or creates
the tenant disabled.
"""

from __future__ import annotations

from typing import Any

import msgspec
from redis.asyncio import Redis

from core.clock import now_iso
from core.sealing import Sealer, is_sealed
from shadow import keys
from shadow.tenants import Tenant, TenantError, TenantStore

__all__ = ["FORMAT", "TenantExport", "export_config", "import_config"]

FORMAT = "scim-bridge/tenant-config/1"


class TenantSettings(msgspec.Struct, kw_only=True):
    slug: str
    name: str
    lms_url: str
    lms_rate: float
    lms_burst: int
    enabled: bool
    created_at: str = ""


class TenantExport(msgspec.Struct, kw_only=True):
    format: str
    exported_at: str
    tenant: TenantSettings
    #: The sealed key as stored, or None when it is stored unsealed.
    lms_api_key_sealed: str | None
    mapping: str | None
    breaker: dict[str, str]
    tokens: dict[str, str]
    admin_keys: dict[str, str]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _texts(raw: dict[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in raw.items()}


async def export_config(redis: Redis, slug: str) -> TenantExport:
    tenant = await TenantStore(redis).get(slug)
    if tenant is None:
        raise TenantError(f"no tenant {slug!r}")
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(keys.mapping(slug))
        pipe.hgetall(keys.breaker_config(slug))
        pipe.hgetall(keys.tokens(slug))
        pipe.hgetall(keys.admin_keys(slug))
        mapping, breaker, tokens, admin_keys = await pipe.execute()
    sealed = tenant.lms_api_key if is_sealed(tenant.lms_api_key) else None
    return TenantExport(
        format=FORMAT,
        exported_at=now_iso(),
        tenant=TenantSettings(
            slug=tenant.slug,
            name=tenant.name,
            lms_url=tenant.lms_url,
            lms_rate=tenant.lms_rate,
            lms_burst=tenant.lms_burst,
            enabled=tenant.enabled,
            created_at=tenant.created_at,
        ),
        lms_api_key_sealed=sealed,
        mapping=_text(mapping) if mapping else None,
        breaker=_texts(breaker),
        tokens=_texts(tokens),
        admin_keys=_texts(admin_keys),
    )


_decoder = msgspec.json.Decoder(TenantExport)


async def import_config(
    redis: Redis, raw: bytes, *, lms_api_key: str | None, sealer: Sealer
) -> dict[str, Any]:
    """Create the tenant of an export; refuses a slug that exists. Raises
    ValueError for a document that is not an export. `sealer` seals a key
    given in plain; a sealed one is stored as it came."""
    try:
        export = _decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a tenant export: {exc}") from None
    if export.format != FORMAT:
        raise ValueError(f"not a tenant export of this format ({FORMAT})")
    key = lms_api_key or export.lms_api_key_sealed or ""
    settings = export.tenant
    tenant = Tenant(
        slug=settings.slug,
        name=settings.name,
        lms_url=settings.lms_url,
        lms_api_key=key,
        lms_rate=settings.lms_rate,
        lms_burst=settings.lms_burst,
        enabled=settings.enabled and bool(key),
        created_at=settings.created_at,
    )
    store = TenantStore(redis, sealer=sealer)
    slug = settings.slug
    # Everything but the tenant record first: the tenant exists (and its
    # tokens work) only once all of it is there.
    async with redis.pipeline(transaction=True) as pipe:
        if export.mapping is not None:
            pipe.set(keys.mapping(slug), export.mapping)
        if export.breaker:
            pipe.hset(keys.breaker_config(slug), mapping=export.breaker)
        if export.tokens:
            pipe.hset(keys.tokens(slug), mapping=export.tokens)
        if export.admin_keys:
            pipe.hset(keys.admin_keys(slug), mapping=export.admin_keys)
        if await redis.exists(keys.tenant_config(slug)):
            raise TenantError(f"tenant {slug!r} already exists")
        await pipe.execute()
    await store.create(tenant)
    return {
        "tenant": slug,
        "enabled": tenant.enabled,
        "mapping": export.mapping is not None,
        "tokens": len(export.tokens),
        "admin_keys": len(export.admin_keys),
    }
