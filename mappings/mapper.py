"""Turn a SCIM user into the learner fields the bridge would send to the LMS.

Pure: the worker feeds it the newest shadow body (and, when the tenant takes
teams from groups, the user's groups), so the result depends only on that
state and never on how changes were timed (docs/architecture.md, "Sync rules"). Never
raises on odd input: anything it cannot use becomes a `Problem`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any, NamedTuple

import msgspec

from mappings.paths import is_address, resolve, scim_bool
from mappings.problems import Problem
from mappings.rules import REQUIRED_FIELDS, CompiledRule, RuleSet, TeamFromGroups


class GroupRef(NamedTuple):
    """A group the user belongs to, as the team rule can name it: the
    bridge's id, its displayName, and its externalId (the IdP's own id of
    the group, e.g. Entra's object id, which is what an admin pastes)."""

    id: str
    display_name: str | None
    external_id: str | None = None


class LearnerDraft(msgspec.Struct, frozen=True):
    """The learner as the bridge wants it; null clears an optional field."""

    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    job_role: str | None = None
    company: str | None = None
    business_unit: str | None = None
    team: str | None = None
    external_ref: str | None = None
    active: bool = True


class MappingResult(msgspec.Struct, frozen=True):
    """A draft, what happened on the way, and which fields are never sent."""

    draft: LearnerDraft
    problems: tuple[Problem, ...] = ()
    dropped: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """False when a problem means the user must be `failed`, not synced."""
        return not any(p.fatal for p in self.problems)

    def lms_fields(self) -> dict[str, str | None]:
        """The learner fields to write to the LMS: all but dropped ones and status.

        Status is not a field in the LMS; it changes through the
        deactivate/reactivate actions, driven by `draft.active`.
        """
        body = msgspec.structs.asdict(self.draft)
        del body["active"]
        return {k: v for k, v in body.items() if k not in self.dropped}


def map_user(
    user: Mapping[str, Any], rules: RuleSet, groups: Iterable[GroupRef] = ()
) -> MappingResult:
    """Map one SCIM user (canonical dict) with a tenant's `rules`."""
    if not isinstance(user, Mapping):
        user = {}
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    dropped: list[str] = []
    for compiled in rules.rules:
        field = compiled.rule.field
        if compiled.rule.drop:
            dropped.append(field)
            values[field] = None
        elif field == "active":
            values[field] = _active(compiled, user, problems)
        else:
            if field == "team" and rules.team_from_groups is not None:
                raw = _team_from_groups(rules.team_from_groups, groups)
            else:
                raw = _first_text(compiled, user, problems)
            values[field] = _checked(compiled, raw, problems)
    return MappingResult(
        draft=LearnerDraft(**values), problems=tuple(problems), dropped=tuple(dropped)
    )


def preview(
    user: Mapping[str, Any], rules: RuleSet, groups: Iterable[GroupRef] = ()
) -> dict[str, Any]:
    """A JSON-ready view of what `user` would become, for the CLI and admin page."""
    result = map_user(user, rules, groups)
    return {
        "ok": result.ok,
        "learner": msgspec.to_builtins(result.draft),
        "dropped": list(result.dropped),
        "problems": [
            {"field": p.field, "kind": p.kind, "fatal": p.fatal, "message": p.message}
            for p in result.problems
        ],
    }


def _first_text(
    compiled: CompiledRule, user: Mapping[str, Any], problems: list[Problem]
) -> str | None:
    """The first non-blank value the rule's sources reach, or its constant."""
    rule = compiled.rule
    if rule.constant is not None:
        return rule.constant
    for path in compiled.paths:
        for candidate in resolve(path, user):
            text = _as_text(candidate)
            if text is None:
                if isinstance(candidate, (dict, list, bool)):
                    kind = "a boolean" if isinstance(candidate, bool) else "not text"
                    problems.append(
                        Problem(
                            field=rule.field,
                            kind="not_text",
                            message=f"{rule.field}: {path.text} is {kind}, ignored",
                        )
                    )
                continue
            if not text.strip():
                continue  # "" and blanks are no value: try the next source
            if path.require_address and not is_address(text):
                continue
            return text
    return None


def _as_text(value: object) -> str | None:
    """Text as is; JSON numbers (custom extensions use them) as their digits."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return str(value)
        except ValueError:  # an int past Python's digit limit is no one's job title
            return None
    return None


def _checked(compiled: CompiledRule, value: str | None, problems: list[Problem]) -> str | None:
    """Apply the required, length and address rules to the chosen value."""
    rule = compiled.rule
    field = rule.field
    if value is None:
        if field in REQUIRED_FIELDS:
            tried = ", ".join(p.text for p in compiled.paths) or "no sources"
            problems.append(
                Problem(
                    field=field,
                    kind="missing_required",
                    message=f"{field}: required, but no source has a value (tried {tried})",
                )
            )
        return None
    limit = rule.max_length
    if limit is not None and len(value) > limit:
        # An address is never cut: a cut one is another address, or none.
        if rule.on_too_long == "reject" or field == "email":
            problems.append(
                Problem(
                    field=field,
                    kind="too_long",
                    message=f"{field}: {len(value)} characters, over the limit of {limit}",
                )
            )
            return None  # an over-limit value never reaches the LMS, even if `ok` is ignored
        problems.append(
            Problem(
                field=field,
                kind="truncated",
                message=f"{field}: {len(value)} characters, cut to {limit}",
            )
        )
        value = value[:limit]
        if not value.strip():  # cut down to blanks: no value after all
            return _checked(compiled, None, problems)
    if field == "email" and not is_address(value):
        problems.append(
            Problem(
                field=field,
                kind="not_an_address",
                message=f'{field}: not an address (needs one "@" with text on both sides)',
            )
        )
    return value


def _active(compiled: CompiledRule, user: Mapping[str, Any], problems: list[Problem]) -> bool:
    """`active`, missing meaning true (RFC 7643 leaves it to the provider)."""
    rule = compiled.rule
    if rule.constant is not None:
        return rule.constant.strip().lower() == "true"
    for path in compiled.paths:
        for candidate in resolve(path, user):
            if candidate is None or candidate == "":
                continue
            value = scim_bool(candidate)
            if value is None:
                problems.append(
                    Problem(
                        field="active",
                        kind="not_boolean",
                        message=f"active: {path.text} is not a boolean",
                    )
                )
                return True
            return value
    return True


def _team_from_groups(setting: TeamFromGroups, groups: Iterable[GroupRef]) -> str | None:
    """The displayName of the group the first matching pattern picks.

    A pattern matches a group's id or externalId exactly (ignoring case:
    Entra's object ids are GUIDs, written either way), or its displayName
    as a case-insensitive glob. Within one pattern, ties go to the smallest
    displayName (then id), so the team does not depend on the order the
    store returns groups in.
    """
    named: list[tuple[str, str, str]] = []
    for ref in groups:
        if not isinstance(ref, tuple) or len(ref) not in (2, 3):
            continue
        group_id, name = ref[0], ref[1]
        external = ref[2] if len(ref) == 3 else None
        if isinstance(group_id, str) and isinstance(name, str) and name.strip():
            ext = external.casefold() if isinstance(external, str) and external else ""
            named.append((group_id, name, ext))
    named.sort(key=lambda g: (g[1].casefold(), g[1], g[0]))
    for pattern in setting.patterns:
        folded = pattern.casefold()
        for group_id, name, external in named:
            if (
                group_id.casefold() == folded
                or (external and external == folded)
                or fnmatchcase(name.casefold(), folded)
            ):
                return name
    return None
