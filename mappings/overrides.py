"""Reading and storing a tenant's mapping overrides (JSON or TOML).

Decoding validates as far as `build_rules` does, so a bad override is
refused when an admin saves it, not later when a worker meets a user. Every
problem is reported at once: shape errors of each field, unknown fields,
bad paths and conflicting settings.
"""

from __future__ import annotations

import tomllib
from typing import Any, Literal

import msgspec

from mappings.problems import MappingConfigError, Problem
from mappings.rules import (
    LEARNER_FIELDS,
    FieldOverride,
    MappingOverrides,
    TeamFromGroups,
    build_rules,
)

OverridesFormat = Literal["json", "toml"]

_TOP_LEVEL = ("fields", "team_from_groups")


def decode_overrides(text: str | bytes, format: OverridesFormat = "json") -> MappingOverrides:
    """Decode and validate overrides; raise `MappingConfigError` otherwise."""
    raw = _parse(text, format)
    problems: list[Problem] = []
    if not isinstance(raw, dict):
        raise MappingConfigError((_syntax("overrides", "must be an object/table"),))
    for key in raw:
        if key not in _TOP_LEVEL:
            problems.append(
                _syntax(str(key), f"unknown setting (expected one of: {', '.join(_TOP_LEVEL)})")
            )

    fields: dict[str, FieldOverride] = {}
    raw_fields = raw.get("fields", {})
    if not isinstance(raw_fields, dict):
        problems.append(_syntax("fields", "must be an object/table of learner fields"))
        raw_fields = {}
    for name, value in raw_fields.items():
        if name not in LEARNER_FIELDS:
            problems.append(
                Problem(
                    field=str(name),
                    kind="unknown_field",
                    message=f"{name}: not a learner field (known: {', '.join(LEARNER_FIELDS)})",
                )
            )
            continue
        try:
            fields[name] = msgspec.convert(value, FieldOverride)
        except msgspec.ValidationError as exc:
            problems.append(_syntax(name, _where(exc, f"fields.{name}")))

    team_from_groups: TeamFromGroups | None = None
    if raw.get("team_from_groups") is not None:
        try:
            team_from_groups = msgspec.convert(raw["team_from_groups"], TeamFromGroups)
        except msgspec.ValidationError as exc:
            problems.append(_syntax("team_from_groups", _where(exc, "team_from_groups")))

    overrides = MappingOverrides(fields=fields, team_from_groups=team_from_groups)
    try:
        build_rules(overrides)
    except MappingConfigError as exc:
        problems.extend(exc.problems)
    if problems:
        raise MappingConfigError(tuple(problems))
    return overrides


def encode_overrides(overrides: MappingOverrides) -> bytes:
    """JSON for storage; `decode_overrides(..., "json")` reads it back equal."""
    return msgspec.json.encode(overrides)


def _parse(text: str | bytes, format: OverridesFormat) -> Any:
    try:
        if format == "json":
            return msgspec.json.decode(text)
        if format == "toml":
            return tomllib.loads(text.decode() if isinstance(text, bytes) else text)
    except (msgspec.DecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise MappingConfigError((_syntax("overrides", f"not valid {format}: {exc}"),)) from exc
    except RecursionError:  # a file nested far deeper than any mapping: the decoder's own limit
        raise MappingConfigError((_syntax("overrides", "nested too deeply"),)) from None
    raise MappingConfigError((_syntax("overrides", f"unknown format {format!r}"),))


def _where(exc: msgspec.ValidationError, prefix: str) -> str:
    """msgspec says "... - at `$.sources`"; make the location the tenant's key."""
    return str(exc).replace("`$", f"`{prefix}").replace(" - at `", " at `")


def _syntax(field: str, message: str) -> Problem:
    return Problem(field=field, kind="bad_syntax", message=f"{field}: {message}")
