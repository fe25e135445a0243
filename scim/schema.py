"""SCIM schemas as data (RFC 7643 §2, §4, §7, §8.7).

The same definitions are served at `/Schemas`, drive the canonical casing of
attribute names, `caseExact` in filters, mutability in PATCH and PUT, and
which attributes are returned. One place, so what we advertise is what we do.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Literal

import msgspec

AttrType = Literal[
    "string", "boolean", "decimal", "integer", "dateTime", "reference", "complex", "binary"
]
Mutability = Literal["readOnly", "readWrite", "immutable", "writeOnly"]
Returned = Literal["always", "never", "default", "request"]
UniquenessKind = Literal["none", "server", "global"]

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_USER_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LMS_USER_SCHEMA = "urn:ietf:params:scim:schemas:extension:lms:2.0:User"
LIST_RESPONSE_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_REQUEST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"


class Attribute(msgspec.Struct, frozen=True, rename="camel", omit_defaults=False, dict=True):
    """One attribute definition, serialised exactly as RFC 7643 §7 asks.

    `dict=True` only gives room for the cached lookup table (never serialised).
    """

    name: str
    type: AttrType = "string"
    multi_valued: bool = False
    description: str = ""
    required: bool = False
    case_exact: bool = False
    mutability: Mutability = "readWrite"
    returned: Returned = "default"
    uniqueness: UniquenessKind = "none"
    sub_attributes: tuple[Attribute, ...] = ()
    canonical_values: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()

    def sub(self, name: str) -> Attribute | None:
        """The sub-attribute called `name`, compared case-insensitively (RFC 7643 §2.1)."""
        return self.subs_by_name.get(name.lower())

    @functools.cached_property
    def subs_by_name(self) -> Mapping[str, Attribute]:
        """Sub-attributes by lower-cased name: `sub` as a table, for loops over many names."""
        return _by_lower_name(self.sub_attributes)


class Schema(msgspec.Struct, frozen=True, dict=True):
    id: str
    name: str
    description: str
    attributes: tuple[Attribute, ...]

    def attribute(self, name: str) -> Attribute | None:
        return self._attributes_by_name.get(name.lower())

    @functools.cached_property
    def _attributes_by_name(self) -> Mapping[str, Attribute]:
        return _by_lower_name(self.attributes)


class AttrRef(msgspec.Struct, frozen=True):
    """Where an attribute lives in a canonical resource document.

    `container` is None for core and common attributes (top level) and the
    extension's schema URN for extension attributes (nested under that key).
    """

    container: str | None
    attribute: Attribute


class ResourceType(msgspec.Struct, frozen=True, dict=True, cache_hash=True):
    """A resource type (RFC 7643 §6) and lookup tables of its names, built on first use.

    Names are resolved for every key of every request, so the tables are
    cached on the instance (`dict=True`), and the hash too (`cache_hash`):
    resource types key the caches of `scim.names` and `scim.resource`.
    """

    id: str
    endpoint: str
    description: str
    schema: Schema
    extensions: tuple[Schema, ...] = ()

    @functools.cached_property
    def schema_ids(self) -> tuple[str, ...]:
        return (self.schema.id, *(ext.id for ext in self.extensions))

    @functools.cached_property
    def urn_prefixes(self) -> tuple[tuple[str, str], ...]:
        """(lower-cased `urn:`, canonical URN) for the core schema, then each extension."""
        return tuple((urn.lower() + ":", urn) for urn in self.schema_ids)

    @functools.cached_property
    def urns_by_name(self) -> Mapping[str, str]:
        """`canonical_urn` as a table keyed by lower-cased URN, for loops over many names."""
        urns: dict[str, str] = {}
        for urn in self.schema_ids:
            urns.setdefault(urn.lower(), urn)  # the core schema first, as `canonical_urn` had it
        return urns

    @functools.cached_property
    def _extensions_by_name(self) -> Mapping[str, Schema]:
        found: dict[str, Schema] = {}
        for ext in self.extensions:
            found.setdefault(ext.id.lower(), ext)
        return found

    @functools.cached_property
    def _core_attributes(self) -> Mapping[str, AttrRef]:
        """Common attributes, then the core schema's: the first of a name wins."""
        attributes = _by_lower_name((*COMMON_ATTRIBUTES, *self.schema.attributes))
        return {name: AttrRef(None, attr) for name, attr in attributes.items()}

    def extension(self, urn: str) -> Schema | None:
        return self._extensions_by_name.get(urn.lower())

    def canonical_urn(self, urn: str) -> str | None:
        """The schema URN spelled canonically, or None when it is not ours."""
        return self.urns_by_name.get(urn.lower())

    def lookup(self, name: str, urn: str | None = None) -> AttrRef | None:
        """Find an attribute by (optional schema URN, name), case-insensitively.

        Without a URN the core schema and the common attributes are searched
        (RFC 7644 §3.10: unqualified names belong to the core schema).
        """
        if urn is not None and urn.lower() != self.schema.id.lower():
            ext = self.extension(urn)
            if ext is None:
                return None
            attr = ext.attribute(name)
            return AttrRef(ext.id, attr) if attr else None
        return self._core_attributes.get(name.lower())


def _by_lower_name(attributes: tuple[Attribute, ...]) -> dict[str, Attribute]:
    """Attributes by lower-cased name; the first of equal names wins, as a search in order would."""
    index: dict[str, Attribute] = {}
    for attr in attributes:
        index.setdefault(attr.name.lower(), attr)
    return index


def _multi(
    name: str,
    description: str,
    types: tuple[str, ...],
    *,
    value_type: str = "string",
    extra: tuple[Attribute, ...] = (),
) -> Attribute:
    """The RFC 7643 §2.4 shape of a multi-valued complex attribute."""
    return Attribute(
        name=name,
        type="complex",
        multi_valued=True,
        description=description,
        sub_attributes=(
            Attribute(name="value", type=value_type),  # type: ignore[arg-type]
            Attribute(name="display"),
            Attribute(name="type", canonical_values=types),
            Attribute(name="primary", type="boolean"),
            *extra,
        ),
    )


COMMON_ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute(
        name="id",
        description="Unique identifier for the SCIM resource, issued by the service provider.",
        case_exact=True,
        mutability="readOnly",
        returned="always",
        uniqueness="server",
    ),
    Attribute(
        name="externalId",
        description="Identifier of the resource as defined by the provisioning client.",
        case_exact=True,
    ),
    Attribute(
        name="meta",
        type="complex",
        description="Resource metadata.",
        mutability="readOnly",
        sub_attributes=(
            Attribute(name="resourceType", case_exact=True, mutability="readOnly"),
            Attribute(name="created", type="dateTime", mutability="readOnly"),
            Attribute(name="lastModified", type="dateTime", mutability="readOnly"),
            Attribute(
                name="location", type="reference", mutability="readOnly", reference_types=("uri",)
            ),
            Attribute(name="version", case_exact=True, mutability="readOnly"),
        ),
    ),
)

_NAME = Attribute(
    name="name",
    type="complex",
    description="The components of the user's real name.",
    sub_attributes=(
        Attribute(name="formatted"),
        Attribute(name="familyName"),
        Attribute(name="givenName"),
        Attribute(name="middleName"),
        Attribute(name="honorificPrefix"),
        Attribute(name="honorificSuffix"),
    ),
)

_ADDRESSES = Attribute(
    name="addresses",
    type="complex",
    multi_valued=True,
    description="A physical mailing address for this user.",
    sub_attributes=(
        Attribute(name="formatted"),
        Attribute(name="streetAddress"),
        Attribute(name="locality"),
        Attribute(name="region"),
        Attribute(name="postalCode"),
        Attribute(name="country"),
        Attribute(name="type", canonical_values=("work", "home", "other")),
        Attribute(name="primary", type="boolean"),
    ),
)

_GROUPS = Attribute(
    name="groups",
    type="complex",
    multi_valued=True,
    description=(
        "Groups the user belongs to (read-only; change membership on the Group). "
        "Returned when asked for: attributes=groups."
    ),
    mutability="readOnly",
    returned="request",
    sub_attributes=(
        Attribute(name="value", mutability="readOnly"),
        Attribute(name="$ref", type="reference", mutability="readOnly", reference_types=("Group",)),
        Attribute(name="display", mutability="readOnly"),
        Attribute(name="type", mutability="readOnly", canonical_values=("direct", "indirect")),
    ),
)

USER = Schema(
    id=USER_SCHEMA,
    name="User",
    description="User Account",
    attributes=(
        Attribute(
            name="userName",
            description="Unique identifier for the User.",
            required=True,
            uniqueness="server",
        ),
        _NAME,
        Attribute(name="displayName"),
        Attribute(name="nickName"),
        Attribute(name="profileUrl", type="reference", reference_types=("external",)),
        Attribute(name="title"),
        Attribute(name="userType"),
        Attribute(name="preferredLanguage"),
        Attribute(name="locale"),
        Attribute(name="timezone"),
        Attribute(name="active", type="boolean"),
        Attribute(name="password", mutability="writeOnly", returned="never"),
        _multi("emails", "Email addresses for the user.", ("work", "home", "other")),
        _multi(
            "phoneNumbers",
            "Phone numbers for the user.",
            ("work", "home", "mobile", "fax", "pager", "other"),
        ),
        _multi(
            "ims",
            "Instant messaging addresses for the user.",
            ("aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"),
        ),
        _multi(
            "photos", "URLs of photos of the user.", ("photo", "thumbnail"), value_type="reference"
        ),
        _ADDRESSES,
        _GROUPS,
        _multi("entitlements", "Entitlements for the user.", ()),
        _multi("roles", "Roles for the user.", ()),
        _multi("x509Certificates", "Certificates issued to the user.", (), value_type="binary"),
    ),
)

ENTERPRISE_USER = Schema(
    id=ENTERPRISE_USER_SCHEMA,
    name="EnterpriseUser",
    description="Enterprise User",
    attributes=(
        Attribute(name="employeeNumber"),
        Attribute(name="costCenter"),
        Attribute(name="organization"),
        Attribute(name="division"),
        Attribute(name="department"),
        Attribute(
            name="manager",
            type="complex",
            description="The user's manager.",
            sub_attributes=(
                Attribute(name="value", description="The id of the manager's SCIM resource."),
                Attribute(name="$ref", type="reference", reference_types=("User",)),
                Attribute(name="displayName", mutability="readOnly"),
            ),
        ),
    ),
)

LMS_USER = Schema(
    id=LMS_USER_SCHEMA,
    name="LmsUser",
    description="Learning platform attributes of a learner.",
    attributes=(
        Attribute(name="team", description="The learner's team in the learning platform."),
    ),
)

GROUP = Schema(
    id=GROUP_SCHEMA,
    name="Group",
    description="Group",
    attributes=(
        Attribute(
            name="displayName", description="A human-readable name for the Group.", required=True
        ),
        Attribute(
            name="members",
            type="complex",
            multi_valued=True,
            description="A list of members of the Group (users of the same tenant).",
            sub_attributes=(
                Attribute(name="value", mutability="immutable", case_exact=True),
                Attribute(
                    name="$ref", type="reference", mutability="immutable", reference_types=("User",)
                ),
                Attribute(name="display", mutability="readOnly"),
                Attribute(name="type", mutability="immutable", canonical_values=("User",)),
            ),
        ),
    ),
)

USER_RESOURCE = ResourceType(
    id="User",
    endpoint="/Users",
    description="User Account",
    schema=USER,
    extensions=(ENTERPRISE_USER, LMS_USER),
)

GROUP_RESOURCE = ResourceType(id="Group", endpoint="/Groups", description="Group", schema=GROUP)

RESOURCE_TYPES: tuple[ResourceType, ...] = (USER_RESOURCE, GROUP_RESOURCE)
SCHEMAS: tuple[Schema, ...] = (USER, ENTERPRISE_USER, LMS_USER, GROUP)


def known_schema_urn(text: str) -> str | None:
    """The canonical spelling of a schema URN we serve, or None."""
    lowered = text.lower()
    for schema in SCHEMAS:
        if schema.id.lower() == lowered:
            return schema.id
    return None
