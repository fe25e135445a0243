"""Mapping rules as data: the default table, tenant overrides, and merging.

The defaults are docs/architecture.md's "Default attribute mapping" table, as a
tuple of frozen `FieldRule`s; a tenant's overrides are decoded into
`MappingOverrides` and merged over them by `build_rules`, which parses every
source path once and reports every problem together.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

import msgspec
from msgspec import UNSET, UnsetType

from mappings.paths import PathError, SourcePath, parse_path
from mappings.problems import MappingConfigError, Problem

LearnerField = Literal[
    "first_name",
    "last_name",
    "email",
    "job_role",
    "company",
    "business_unit",
    "team",
    "external_ref",
    "active",
]
OnTooLong = Literal["truncate", "reject"]

#: Every learner field the bridge maps, in the LMS's order.
LEARNER_FIELDS: tuple[LearnerField, ...] = get_args(LearnerField)
#: Fields the LMS requires on create (docs/lms-contract.md): no value means `failed`.
REQUIRED_FIELDS: frozenset[str] = frozenset({"first_name", "last_name", "email"})
#: Limits from docs/lms-contract.md, in Unicode code points. `active` has none.
LMS_LIMITS: dict[str, int] = {
    "first_name": 100,
    "last_name": 100,
    "email": 254,
    "job_role": 100,
    "company": 100,
    "business_unit": 100,
    "team": 100,
    "external_ref": 255,
}

ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LMS_USER = "urn:ietf:params:scim:schemas:extension:lms:2.0:User"


class FieldRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How one learner field gets its value.

    `sources` are tried in order and the first non-empty value wins; ""
    and whitespace-only strings count as *no value* (so an attribute Entra
    blanks clears an optional field to null, per docs/architecture.md, "Sync rules").
    An empty `sources` with no `constant` always yields null. `drop` means
    the bridge never sends the field at all (neither value nor null).
    """

    field: LearnerField
    sources: tuple[str, ...] = ()
    constant: str | None = None
    drop: bool = False
    max_length: int | None = None
    on_too_long: OnTooLong = "truncate"


def _rule(field: LearnerField, *sources: str) -> FieldRule:
    return FieldRule(field=field, sources=sources, max_length=LMS_LIMITS.get(field))


#: docs/architecture.md's "Default attribute mapping" table, one row per learner field.
DEFAULT_RULES: tuple[FieldRule, ...] = (
    _rule("first_name", "name.givenName"),
    _rule("last_name", "name.familyName"),
    _rule(
        "email", 'emails[type eq "work"].value', "emails[primary eq true].value", "userName|email"
    ),
    _rule("job_role", "title"),
    _rule("company", f"{ENTERPRISE_USER}:organization"),
    _rule("business_unit", f"{ENTERPRISE_USER}:department"),
    _rule("team", f"{LMS_USER}:team"),
    _rule("external_ref", "id"),
    _rule("active", "active"),
)


# Bounded values (docs/operations.md, "Lengths"): a longer one is a shape
# problem of its field, whoever writes the overrides.
MAX_PATH_LENGTH = 200
Sources = Annotated[
    tuple[Annotated[str, msgspec.Meta(max_length=MAX_PATH_LENGTH)], ...],
    msgspec.Meta(max_length=20),
]
Constant = Annotated[str, msgspec.Meta(max_length=1000)]
Patterns = Annotated[
    tuple[Annotated[str, msgspec.Meta(max_length=MAX_PATH_LENGTH)], ...],
    msgspec.Meta(max_length=100),
]


class FieldOverride(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A tenant's change to one row; unset attributes keep the default.

    Setting `sources` clears the default `constant` and vice versa; setting
    both in one override is an error.
    """

    sources: Sources | UnsetType = UNSET
    constant: Constant | UnsetType | None = UNSET
    drop: bool | UnsetType = UNSET
    max_length: int | UnsetType = UNSET
    on_too_long: OnTooLong | UnsetType = UNSET


class TeamFromGroups(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Take `team` from the user's group membership instead of an attribute.

    Each pattern is a case-insensitive glob on a group's displayName
    (`fnmatch`), or a group's id or externalId (the IdP's object id). The
    first pattern, in this order, that matches one of the user's groups
    names the team; no match gives null.
    """

    patterns: Patterns


class MappingOverrides(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """One tenant's overrides, as stored and as written in JSON or TOML."""

    fields: dict[str, FieldOverride] = msgspec.field(default_factory=dict)
    team_from_groups: TeamFromGroups | None = None


class CompiledRule(msgspec.Struct, frozen=True):
    """A merged rule with its source paths parsed once."""

    rule: FieldRule
    paths: tuple[SourcePath, ...]


class RuleSet(msgspec.Struct, frozen=True):
    """The rules `map_user` applies for one tenant; build with `build_rules`."""

    rules: tuple[CompiledRule, ...]
    team_from_groups: TeamFromGroups | None = None

    @property
    def field_rules(self) -> tuple[FieldRule, ...]:
        """The merged rules as plain data, e.g. for an admin view."""
        return tuple(c.rule for c in self.rules)


def build_rules(overrides: MappingOverrides | None = None) -> RuleSet:
    """Merge `overrides` over `DEFAULT_RULES` and parse every source path.

    Raises `MappingConfigError` listing every problem: unknown fields, bad
    paths, conflicting or out-of-range settings.
    """
    overrides = overrides or MappingOverrides()
    problems: list[Problem] = []
    for name in overrides.fields:
        if name not in LEARNER_FIELDS:
            problems.append(
                Problem(
                    field=name,
                    kind="unknown_field",
                    message=f"{name}: not a learner field (known: {', '.join(LEARNER_FIELDS)})",
                )
            )
    compiled: list[CompiledRule] = []
    for default in DEFAULT_RULES:
        override = overrides.fields.get(default.field)
        rule = _merge(default, override, problems) if override is not None else default
        paths = _parse_sources(rule, problems)
        _check(rule, problems)
        compiled.append(CompiledRule(rule=rule, paths=paths))
    if overrides.team_from_groups is not None:
        _check_team_from_groups(overrides.team_from_groups, overrides.fields.get("team"), problems)
    if problems:
        raise MappingConfigError(tuple(problems))
    return RuleSet(rules=tuple(compiled), team_from_groups=overrides.team_from_groups)


def _merge(default: FieldRule, override: FieldOverride, problems: list[Problem]) -> FieldRule:
    field = default.field
    sources, constant = default.sources, default.constant
    if override.sources is not UNSET and override.constant not in (UNSET, None):
        problems.append(_bad(field, "give either sources or constant, not both"))
    if override.sources is not UNSET:
        sources, constant = override.sources, None
    elif override.constant is not UNSET:
        constant = override.constant
        sources = () if constant is not None else default.sources
    if field == "active" and (
        override.max_length is not UNSET or override.on_too_long is not UNSET
    ):
        problems.append(_bad(field, "a boolean has no length rule"))
    return FieldRule(
        field=field,
        sources=sources,
        constant=constant,
        drop=default.drop if override.drop is UNSET else override.drop,
        max_length=default.max_length if override.max_length is UNSET else override.max_length,
        on_too_long=default.on_too_long if override.on_too_long is UNSET else override.on_too_long,
    )


def _parse_sources(rule: FieldRule, problems: list[Problem]) -> tuple[SourcePath, ...]:
    paths: list[SourcePath] = []
    for text in rule.sources:
        try:
            paths.append(parse_path(text))
        except PathError as exc:
            problems.append(_bad(rule.field, f"bad source path: {exc}"))
    return tuple(paths)


def _check(rule: FieldRule, problems: list[Problem]) -> None:
    """Settings that parse but that the LMS or the bridge could not honour."""
    field = rule.field
    required = field in REQUIRED_FIELDS
    if rule.drop and (required or field == "active"):
        problems.append(_bad(field, "a required field cannot be dropped"))
    if required and not rule.sources and rule.constant is None:
        problems.append(_bad(field, "a required field needs sources or a constant"))
    limit = LMS_LIMITS.get(field)
    if limit is not None and (rule.max_length is None or not 1 <= rule.max_length <= limit):
        problems.append(_bad(field, f"max_length must be between 1 and the LMS limit of {limit}"))
    if rule.constant is not None:
        if not rule.constant.strip():
            problems.append(_bad(field, "constant is empty (use sources = [] to always clear)"))
        elif field == "active" and rule.constant.strip().lower() not in ("true", "false"):
            problems.append(_bad(field, 'constant must be "true" or "false"'))
        elif rule.max_length is not None and len(rule.constant) > rule.max_length:
            problems.append(
                _bad(field, f"constant is {len(rule.constant)} characters, over {rule.max_length}")
            )


def _check_team_from_groups(
    tfg: TeamFromGroups, team: FieldOverride | None, problems: list[Problem]
) -> None:
    if not tfg.patterns or any(not p.strip() for p in tfg.patterns):
        problems.append(
            _bad("team_from_groups", "patterns must be a non-empty list of non-empty strings")
        )
    if team is not None and (team.sources is not UNSET or team.constant not in (UNSET, None)):
        problems.append(
            _bad(
                "team_from_groups", "team has sources or a constant; team_from_groups replaces them"
            )
        )
    if team is not None and team.drop is True:
        problems.append(_bad("team_from_groups", "team is dropped, so it cannot come from groups"))


def _bad(field: str, message: str) -> Problem:
    return Problem(field=field, kind="bad_rule", message=f"{field}: {message}")
