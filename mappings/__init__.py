"""Declarative SCIM user -> LMS learner mapping: defaults as data, per-tenant
overrides, pure functions (docs/architecture.md,
"Default attribute mapping")."""

from mappings.mapper import GroupRef, LearnerDraft, MappingResult, map_user, preview
from mappings.overrides import OverridesFormat, decode_overrides, encode_overrides
from mappings.paths import PathError, SourcePath, ValueFilter, is_address, parse_path, resolve
from mappings.problems import FATAL_KINDS, MappingConfigError, Problem, ProblemKind
from mappings.rules import (
    DEFAULT_RULES,
    LEARNER_FIELDS,
    LMS_LIMITS,
    REQUIRED_FIELDS,
    CompiledRule,
    FieldOverride,
    FieldRule,
    LearnerField,
    MappingOverrides,
    OnTooLong,
    RuleSet,
    TeamFromGroups,
    build_rules,
)

__all__ = [
    "DEFAULT_RULES",
    "FATAL_KINDS",
    "LEARNER_FIELDS",
    "LMS_LIMITS",
    "REQUIRED_FIELDS",
    "CompiledRule",
    "FieldOverride",
    "FieldRule",
    "GroupRef",
    "LearnerDraft",
    "LearnerField",
    "MappingConfigError",
    "MappingOverrides",
    "MappingResult",
    "OnTooLong",
    "OverridesFormat",
    "PathError",
    "Problem",
    "ProblemKind",
    "RuleSet",
    "SourcePath",
    "TeamFromGroups",
    "ValueFilter",
    "build_rules",
    "decode_overrides",
    "encode_overrides",
    "is_address",
    "map_user",
    "parse_path",
    "preview",
    "resolve",
]
