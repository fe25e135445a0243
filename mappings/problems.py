"""What can go wrong when mapping a user or reading a tenant's mapping rules.

One `Problem` shape serves both: the worker shows mapping problems in a
user's sync status, the admin API shows configuration problems to the tenant
admin. Messages never carry the value itself (it may be personal data that
ends up in logs); they say which field and what happened.
"""

from __future__ import annotations

from typing import Literal

import msgspec

ProblemKind = Literal[
    # mapping a user
    "truncated",  # value over the limit, cut to it (the default rule)
    "too_long",  # value over the limit under a "reject" rule
    "missing_required",  # no source of a required field has a value
    "not_an_address",  # the chosen email has no single "@" with text on both sides
    "not_text",  # a source holds an object/array where text is expected
    "not_boolean",  # `active` holds something that is not a boolean
    # reading rules
    "unknown_field",  # an override names no learner field
    "bad_rule",  # an override the bridge cannot apply (bad path, conflicts, limits)
    "bad_syntax",  # the overrides text is not valid JSON/TOML or has the wrong shape
]

#: Kinds that stop the user from being sent to the LMS: the LMS would reject
#: the learner, or the tenant asked for a failure instead of a silent change.
FATAL_KINDS: frozenset[str] = frozenset(
    {"too_long", "missing_required", "not_an_address", "not_boolean"}
)


class Problem(msgspec.Struct, frozen=True):
    """One finding about one field (or config key), safe to log and show.

    `message` starts with the field name so it reads on its own
    ("email: 260 characters, cut to 254").
    """

    field: str
    kind: ProblemKind
    message: str

    @property
    def fatal(self) -> bool:
        """True when the user must be `failed` rather than synced."""
        return self.kind in FATAL_KINDS


class MappingConfigError(ValueError):
    """Tenant mapping overrides that cannot be applied.

    Carries every problem found, not just the first, so an admin fixes the
    whole configuration in one round trip.
    """

    def __init__(self, problems: tuple[Problem, ...]) -> None:
        self.problems = problems
        lines = "\n".join(f"- {p.message}" for p in problems)
        super().__init__(f"invalid mapping overrides ({len(problems)} problem(s)):\n{lines}")
