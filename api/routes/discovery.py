"""Discovery endpoints (RFC 7644 §4): what the bridge supports, told truly.

Everything is built from `scim.schema` and the settings, so the documents
cannot drift from what the handlers do.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath

from api.scim_io import ScimResponse, scim_response
from core.settings import Settings
from scim.errors import NotFound
from scim.schema import (
    LIST_RESPONSE_SCHEMA,
    RESOURCE_TYPE_SCHEMA,
    RESOURCE_TYPES,
    SCHEMA_SCHEMA,
    SCHEMAS,
    SPC_SCHEMA,
    ResourceType,
    Schema,
)
from shadow import Tenant

TenantDep = NamedDependency[Tenant]

Req = Request[Any, Any, Any]


def service_provider_config(settings: Settings, base: str) -> dict[str, Any]:
    """RFC 7643 §5, with only the RFCs' own fields: a strict client (RFC 7643
    §3's schemas rule) refuses a top-level key its schemas do not declare."""
    return {
        "schemas": [SPC_SCHEMA],
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": settings.max_page_size},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": True},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "A long-lived bearer token issued per tenant by the bridge.",
                "primary": True,
            }
        ],
        # RFC 9865 §4: how a list is paged. Limits with no field in the RFCs
        # (body size, JSON depth, PATCH operations, filter length and scan)
        # are in docs/scim.md, "Limits": strict clients refuse an undeclared key here.
        "pagination": {
            "cursor": False,
            "index": True,
            "defaultPaginationMethod": "index",
            "defaultPageSize": min(settings.default_page_size, settings.max_page_size),
            "maxPageSize": settings.max_page_size,
        },
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{base}/ServiceProviderConfig",
        },
    }


def resource_type_doc(rt: ResourceType, base: str) -> dict[str, Any]:
    return {
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": rt.id,
        "name": rt.id,
        "endpoint": rt.endpoint,
        "description": rt.description,
        "schema": rt.schema.id,
        "schemaExtensions": [{"schema": ext.id, "required": False} for ext in rt.extensions],
        "meta": {"resourceType": "ResourceType", "location": f"{base}/ResourceTypes/{rt.id}"},
    }


def schema_doc(schema: Schema, base: str) -> dict[str, Any]:
    doc: dict[str, Any] = msgspec.to_builtins(schema)
    doc["schemas"] = [SCHEMA_SCHEMA]
    doc["meta"] = {"resourceType": "Schema", "location": f"{base}/Schemas/{schema.id}"}
    return doc


def _listing(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": len(resources),
        "startIndex": 1,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


def _base(request: Req, tenant: TenantDep) -> str:
    settings: Settings = request.app.state.services.settings
    return settings.scim_url(tenant.slug)


def discovery_handlers() -> list[Any]:
    @get("/ServiceProviderConfig", name="spc")
    async def spc(request: Req, tenant: TenantDep) -> ScimResponse:
        settings: Settings = request.app.state.services.settings
        return scim_response(service_provider_config(settings, _base(request, tenant)))

    @get("/ResourceTypes", name="resource-types")
    async def resource_types(request: Req, tenant: TenantDep) -> ScimResponse:
        base = _base(request, tenant)
        return scim_response(_listing([resource_type_doc(rt, base) for rt in RESOURCE_TYPES]))

    @get("/ResourceTypes/{name:str}", name="resource-type")
    async def resource_type(request: Req, tenant: TenantDep, name: FromPath[str]) -> ScimResponse:
        for rt in RESOURCE_TYPES:
            if rt.id.lower() == name.lower():
                return scim_response(resource_type_doc(rt, _base(request, tenant)))
        raise NotFound(f"no resource type {name!r}")

    @get("/Schemas", name="schemas")
    async def schemas(request: Req, tenant: TenantDep) -> ScimResponse:
        base = _base(request, tenant)
        return scim_response(_listing([schema_doc(s, base) for s in SCHEMAS]))

    @get("/Schemas/{urn:str}", name="schema")
    async def schema(request: Req, tenant: TenantDep, urn: FromPath[str]) -> ScimResponse:
        for s in SCHEMAS:
            if s.id.lower() == urn.lower():
                return scim_response(schema_doc(s, _base(request, tenant)))
        raise NotFound(f"no schema {urn!r}")

    return [spc, resource_types, resource_type, schemas, schema]
