"""What a strict SCIM client makes of our answers: scim2-models, strict policy.

scim2-models is the model layer of scim2-client and the tools built on it.
Its default `ScimPolicy` is the strict reading of RFC 7643/7644: an attribute
or schema URN no model declares is refused. Our one custom extension
(`urn:...:extension:lms:2.0:User`) is built from our own `/Schemas` answer,
the way a client that discovers a service provider builds its models.
"""

from __future__ import annotations

import functools
import operator
from typing import Any

import httpx
from scim2_models import (
    Context,
    EnterpriseUser,
    Error,
    Extension,
    Group,
    ListResponse,
    ResourceType,
    Schema,
    ScimPolicy,
    ServiceProviderConfig,
    User,
)

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
LMS_SCHEMA = "urn:ietf:params:scim:schemas:extension:lms:2.0:User"
STRICT = ScimPolicy()

_CONTEXTS = {
    "GET": Context.RESOURCE_QUERY_RESPONSE,
    "POST": Context.RESOURCE_CREATION_RESPONSE,
    "PUT": Context.RESOURCE_REPLACEMENT_RESPONSE,
    "PATCH": Context.RESOURCE_PATCH_RESPONSE,
}


class StrictClient:
    """Validates every answer it is given; the models come from `/Schemas`."""

    def __init__(self, schemas: list[dict[str, Any]]) -> None:
        lms = next(s for s in schemas if s["id"] == LMS_SCHEMA)
        lms_model = Extension.from_schema(Schema.model_validate(lms, scim_policy=STRICT))
        self.user = User[EnterpriseUser | lms_model]  # type: ignore[valid-type]
        self.models: dict[str, type[Any]] = {
            str(User.__schema__): self.user,
            str(Group.__schema__): Group,
            str(Schema.__schema__): Schema,
            str(ResourceType.__schema__): ResourceType,
            str(ServiceProviderConfig.__schema__): ServiceProviderConfig,
        }

    def check(self, response: httpx.Response, *, search: bool = False) -> Any:
        """The answer read as a strict client reads it; raises when it is refused."""
        if response.status_code in (204, 304):
            assert not response.content
            return None
        assert response.headers["content-type"].startswith("application/scim+json")
        body: dict[str, Any] = response.json()
        schemas = body.get("schemas", [])
        if ERROR_SCHEMA in schemas:
            assert response.status_code >= 400
            error = Error.model_validate(body, scim_policy=STRICT)
            assert error.status == response.status_code
            return error
        assert response.status_code < 400, response.text
        method = response.request.method
        if LIST_SCHEMA in schemas:
            kinds = {s for item in body.get("Resources", []) for s in item.get("schemas", [])[:1]}
            models = [self.models[k] for k in sorted(kinds)] or [self.user, Group]
            listed = ListResponse[functools.reduce(operator.or_, models)]  # type: ignore[misc]
            ctx = Context.SEARCH_RESPONSE if search else Context.RESOURCE_QUERY_RESPONSE
            return listed.model_validate(body, scim_ctx=ctx, scim_policy=STRICT)
        model = self.models[schemas[0]]
        ctx = _CONTEXTS[method] if model in (self.user, Group) else Context.RESOURCE_QUERY_RESPONSE
        return model.model_validate(body, scim_ctx=ctx, scim_policy=STRICT)
