"""Parsing and printing SCIM filters and PATCH paths (RFC 7644 §3.4.2.2, §3.5.2)."""

from __future__ import annotations

import pytest

from scim.ast import (
    And,
    AttrPath,
    Compare,
    CompareOp,
    Filter,
    Literal_,
    Not,
    Or,
    PatchPath,
    Present,
    ValuePath,
)
from scim.errors import InvalidFilter, InvalidPath
from scim.filter import (
    MAX_FILTER_DEPTH,
    MAX_FILTER_LENGTH,
    MAX_FILTER_TERMS,
    equality_key,
    format_filter,
    format_patch_path,
    parse_filter,
    parse_patch_path,
)

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
STAMP = "2011-05-13T04:42:34Z"


def path(text: str) -> AttrPath:
    urn, _, rest = text.rpartition(":")
    attr, _, sub = rest.partition(".")
    return AttrPath(attr=attr, sub_attr=sub or None, urn=urn or None)


def cmp(attr: str, op: CompareOp, value: Literal_) -> Compare:
    return Compare(path(attr), op, value)


def pr(attr: str) -> Present:
    return Present(path(attr))


def vp(attr: str, inner: Filter) -> ValuePath:
    return ValuePath(path(attr), inner)


# Every example filter of RFC 7644 §3.4.2.2 (the `filter=` prefix removed).
RFC_EXAMPLES: list[tuple[str, Filter]] = [
    ('userName eq "bjensen"', cmp("userName", "eq", "bjensen")),
    ('name.familyName co "O\'Malley"', cmp("name.familyName", "co", "O'Malley")),
    ('userName sw "J"', cmp("userName", "sw", "J")),
    (f'{CORE}:userName sw "J"', cmp(f"{CORE}:userName", "sw", "J")),
    ("title pr", pr("title")),
    (f'meta.lastModified gt "{STAMP}"', cmp("meta.lastModified", "gt", STAMP)),
    (f'meta.lastModified ge "{STAMP}"', cmp("meta.lastModified", "ge", STAMP)),
    (f'meta.lastModified lt "{STAMP}"', cmp("meta.lastModified", "lt", STAMP)),
    (f'meta.lastModified le "{STAMP}"', cmp("meta.lastModified", "le", STAMP)),
    ('title pr and userType eq "Employee"', And(pr("title"), cmp("userType", "eq", "Employee"))),
    ('title pr or userType eq "Intern"', Or(pr("title"), cmp("userType", "eq", "Intern"))),
    (f'schemas eq "{ENTERPRISE}"', cmp("schemas", "eq", ENTERPRISE)),
    (
        'userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")',
        And(
            cmp("userType", "eq", "Employee"),
            Or(cmp("emails", "co", "example.com"), cmp("emails.value", "co", "example.org")),
        ),
    ),
    (
        'userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")',
        And(
            cmp("userType", "ne", "Employee"),
            Not(Or(cmp("emails", "co", "example.com"), cmp("emails.value", "co", "example.org"))),
        ),
    ),
    (
        'userType eq "Employee" and (emails.type eq "work")',
        And(cmp("userType", "eq", "Employee"), cmp("emails.type", "eq", "work")),
    ),
    (
        'userType eq "Employee" and emails[type eq "work" and value co "@example.com"]',
        And(
            cmp("userType", "eq", "Employee"),
            vp("emails", And(cmp("type", "eq", "work"), cmp("value", "co", "@example.com"))),
        ),
    ),
    (
        'emails[type eq "work" and value co "@example.com"] or '
        'ims[type eq "xmpp" and value co "@foo.com"]',
        Or(
            vp("emails", And(cmp("type", "eq", "work"), cmp("value", "co", "@example.com"))),
            vp("ims", And(cmp("type", "eq", "xmpp"), cmp("value", "co", "@foo.com"))),
        ),
    ),
    # "Attribute names and attribute operators used in filters are case insensitive."
    ('userName Eq "john"', cmp("userName", "eq", "john")),
    ('Username eq "john"', cmp("Username", "eq", "john")),
]


@pytest.mark.parametrize(("text", "expected"), RFC_EXAMPLES)
def test_rfc_examples(text: str, expected: Filter) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize(("text", "expected"), RFC_EXAMPLES)
def test_rfc_examples_print_back(text: str, expected: Filter) -> None:
    assert parse_filter(format_filter(expected)) == expected


@pytest.mark.parametrize("op", ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"])
def test_every_compare_operator_in_any_case(op: CompareOp) -> None:
    for spelled in (op, op.upper(), op.capitalize()):
        assert parse_filter(f'title {spelled} "x"') == cmp("title", op, "x")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # not > and > or; chains are left-nested
        ("a pr or b pr and c pr", Or(pr("a"), And(pr("b"), pr("c")))),
        ("a pr and b pr or c pr", Or(And(pr("a"), pr("b")), pr("c"))),
        ("a pr and b pr and c pr", And(And(pr("a"), pr("b")), pr("c"))),
        ("a pr or b pr or c pr", Or(Or(pr("a"), pr("b")), pr("c"))),
        ("(a pr or b pr) and c pr", And(Or(pr("a"), pr("b")), pr("c"))),
        ("a pr and (b pr or c pr)", And(pr("a"), Or(pr("b"), pr("c")))),
        ("not (a pr) and b pr", And(Not(pr("a")), pr("b"))),
        ("not(a pr or b pr)", Not(Or(pr("a"), pr("b")))),
        ("NOT (a pr) OR b pr AND c pr", Or(Not(pr("a")), And(pr("b"), pr("c")))),
        ("((a pr))", pr("a")),
        ("not (not (a pr))", Not(Not(pr("a")))),
        # whitespace is lenient (Okta sends a trailing space)
        ('  userName   eq\t"x"  ', cmp("userName", "eq", "x")),
        ('userName eq "x" ', cmp("userName", "eq", "x")),
        ("(a pr)and(b pr)", And(pr("a"), pr("b"))),
        # keywords are attribute names where the grammar wants a name
        ("not pr", pr("not")),
        ("and eq 1", cmp("and", "eq", 1)),
        ('not[type eq "x"]', vp("not", cmp("type", "eq", "x"))),
        ("pr pr", pr("pr")),
    ],
)
def test_precedence_grouping_and_spacing(text: str, expected: Filter) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ('"plain"', "plain"),
        ('"say \\"hi\\""', 'say "hi"'),
        ('"back\\\\slash"', "back\\slash"),
        ('"a\\/b"', "a/b"),
        ('"tab\\tnew\\nline"', "tab\tnew\nline"),
        ('"\\u00e9t\\u00C9"', "étÉ"),
        ('"\\ud83d\\ude00"', "\U0001f600"),
        ('"naïve ✓"', "naïve ✓"),
        ('""', ""),
        ("true", True),
        ("FALSE", False),
        ("Null", None),
        ("0", 0),
        ("42", 42),
        ("-7", -7),
        ("3.25", 3.25),
        ("-0.5", -0.5),
        ("1e3", 1000.0),
        ("2.5E-2", 0.025),
    ],
)
def test_comparison_values_are_json(literal: str, value: Literal_) -> None:
    parsed = parse_filter(f"x eq {literal}")
    assert isinstance(parsed, Compare)
    assert parsed.value == value
    assert type(parsed.value) is type(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f'{ENTERPRISE}:department eq "Sales"',
            Compare(AttrPath("department", urn=ENTERPRISE), "eq", "Sales"),
        ),
        (
            f'{ENTERPRISE}:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d"',
            Compare(
                AttrPath("manager", "value", ENTERPRISE),
                "eq",
                "26118915-6090-4610-87e4-49d8ca9f808d",
            ),
        ),
        (
            f'{ENTERPRISE.upper()}:Department eq "x"',
            Compare(AttrPath("Department", urn=ENTERPRISE.upper()), "eq", "x"),
        ),
        (f"{CORE}:name.givenName pr", Present(AttrPath("name", "givenName", CORE))),
        (
            'groups.$ref eq "https://x/Groups/1"',
            Compare(AttrPath("groups", "$ref"), "eq", "https://x/Groups/1"),
        ),
        ("x509Certificates pr", pr("x509Certificates")),
        ("a-b_c9 pr", pr("a-b_c9")),
        (
            f'{CORE}:emails[type eq "work"]',
            ValuePath(AttrPath("emails", urn=CORE), cmp("type", "eq", "work")),
        ),
    ],
)
def test_attribute_paths(text: str, expected: Filter) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Microsoft Entra ID
        ('userName eq "ryan@contoso.com"', cmp("userName", "eq", "ryan@contoso.com")),
        (
            'externalId eq "00aa00aa-bb11-cc22-dd33-44ee44ee44ee"',
            cmp("externalId", "eq", "00aa00aa-bb11-cc22-dd33-44ee44ee44ee"),
        ),
        ('displayName eq "Group"', cmp("displayName", "eq", "Group")),
        (  # "Test connection" looks up a user that cannot exist
            'userName eq "5d6b1a3e-9f7c-4c2e-8a1b-3e4f5a6b7c8d"',
            cmp("userName", "eq", "5d6b1a3e-9f7c-4c2e-8a1b-3e4f5a6b7c8d"),
        ),
        (
            'id eq "g1" and members[value eq "u1"]',
            And(cmp("id", "eq", "g1"), vp("members", cmp("value", "eq", "u1"))),
        ),
        # Okta
        ('userName eq "x" ', cmp("userName", "eq", "x")),
        ('userName sw "a"', cmp("userName", "sw", "a")),
    ],
)
def test_idp_filters(text: str, expected: Filter) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        'userName eq "bjensen',  # unterminated string
        'userName eq "ends with backslash\\"',
        'x eq "\\x41"',  # not a JSON escape
        'x eq "\\u12"',
        "userName eq",  # missing operand
        'eq "x"',
        'userName "x"',
        "and b pr",
        "a pr and",
        "a pr or",
        'title pr "x"',  # pr takes no value
        "title pr true",
        'userName zz "x"',  # unknown operator
        'userName equals "x"',
        "userName eq 'single'",  # quotes in a bare value
        "userName eq and",  # a bare keyword
        'userName eq ab"c',  # a double quote in a bare value
        "x eq 2015-10-10T14",  # neither a date-time nor a number
        "(a pr",  # unbalanced parentheses
        "a pr)",
        "((a pr)",
        "()",
        'emails[type eq "work"',  # unbalanced brackets
        'emails type eq "work"]',
        "emails[]",
        'emails[type[value eq "x"] eq "y"]',  # nested brackets
        'emails[type eq "x"][value pr]',
        'emails[type eq "x"].value eq "y"',
        'name.givenName[value eq "x"]',
        f'emails[{CORE}:type eq "x"]',
        'emails[type.x eq "x"]',
        "not a pr",  # not needs parentheses
        "not",
        "not ()",
        "x eq 01",  # malformed numbers
        "x eq 1.",
        "x eq .5",
        "x eq -",
        "x eq 1e",
        "x eq 1e999",
        "x eq 12abc",
        "x eq +1",
        "1abc pr",  # bad attribute names
        "_x pr",
        "a.b.c pr",
        "a. pr",
        "na$me pr",
        "é pr",
        "foo:bar pr",  # not a URN
        f"{ENTERPRISE} pr",  # a bare schema URN only in PATCH paths
        f"{ENTERPRISE}: pr",
        'userName eq "x" userName eq "y"',
        'userName eq "x" &&',
        "a pr\x00",
    ],
)
def test_malformed_filters_are_invalid_filter(text: str) -> None:
    with pytest.raises(InvalidFilter) as caught:
        parse_filter(text)
    assert caught.value.scim_type == "invalidFilter"
    assert caught.value.status == 400
    assert caught.value.detail


def test_error_detail_points_at_the_position() -> None:
    with pytest.raises(InvalidFilter, match=r"character 10 .*found 'zz'"):
        parse_filter('userName zz "x"')
    with pytest.raises(InvalidFilter, match="Unterminated string starting at character 13"):
        parse_filter('userName eq "bjensen')


def test_too_long_filter() -> None:
    text = 'userName eq "' + "a" * MAX_FILTER_LENGTH + '"'
    with pytest.raises(InvalidFilter, match="at most 4096"):
        parse_filter(text)


def test_nesting_depth_limit() -> None:
    ok = "(" * MAX_FILTER_DEPTH + "a pr" + ")" * MAX_FILTER_DEPTH
    assert parse_filter(ok) == pr("a")
    too_deep = "(" * (MAX_FILTER_DEPTH + 1) + "a pr" + ")" * (MAX_FILTER_DEPTH + 1)
    with pytest.raises(InvalidFilter, match="deeper"):
        parse_filter(too_deep)
    with pytest.raises(InvalidFilter, match="deeper"):
        parse_filter("not (" * 300 + "a pr" + ")" * 300)
    with pytest.raises(InvalidFilter):
        parse_filter("(" * 4000)


def test_term_limit() -> None:
    assert parse_filter(" and ".join(["a pr"] * MAX_FILTER_TERMS))
    with pytest.raises(InvalidFilter, match="more than"):
        parse_filter(" or ".join(["a pr"] * (MAX_FILTER_TERMS + 1)))


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ('userName EQ "x"', 'userName eq "x"'),
        ("NOT(a PR)AND b Pr", "not (a pr) and b pr"),
        ("a pr and (b pr and c pr)", "a pr and (b pr and c pr)"),
        ("(a pr or b pr) and c pr", "(a pr or b pr) and c pr"),
        ("a pr or (b pr or c pr)", "a pr or (b pr or c pr)"),
        ("(a pr and b pr) or c pr", "a pr and b pr or c pr"),
        ('x eq "q\\"\\u00e9\\n"', 'x eq "q\\"é\\n"'),
        ("x eq 1.50", "x eq 1.5"),
        ("x eq TRUE", "x eq true"),
        ("x ne null", "x ne null"),
        ('emails[type eq "work"]', 'emails[type eq "work"]'),
    ],
)
def test_format_is_canonical(text: str, canonical: str) -> None:
    assert format_filter(parse_filter(text)) == canonical
    assert parse_filter(canonical) == parse_filter(text)


def test_format_rejects_non_finite_numbers() -> None:
    with pytest.raises(InvalidFilter):
        format_filter(cmp("x", "eq", float("nan")))


# -- PATCH paths (RFC 7644 §3.5.2) ------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("title", PatchPath(path("title"))),
        ("name.familyName", PatchPath(path("name.familyName"))),
        ("NAME.GIVENNAME", PatchPath(AttrPath("NAME", "GIVENNAME"))),
        ("members", PatchPath(path("members"))),
        (
            'members[value eq "2819c223-7f76-453a-919d-413861904646"]',
            PatchPath(path("members"), cmp("value", "eq", "2819c223-7f76-453a-919d-413861904646")),
        ),
        (
            'emails[type eq "work" and primary eq true].value',
            PatchPath(
                path("emails"), And(cmp("type", "eq", "work"), cmp("primary", "eq", True)), "value"
            ),
        ),
        (
            'addresses[type eq "work"].streetAddress',
            PatchPath(path("addresses"), cmp("type", "eq", "work"), "streetAddress"),
        ),
        (f"{ENTERPRISE}:department", PatchPath(AttrPath("department", urn=ENTERPRISE))),
        (f"{ENTERPRISE}:manager", PatchPath(AttrPath("manager", urn=ENTERPRISE))),
        (f"{ENTERPRISE}:manager.value", PatchPath(AttrPath("manager", "value", ENTERPRISE))),
        (f"{CORE}:name.givenName", PatchPath(AttrPath("name", "givenName", CORE))),
        (ENTERPRISE, PatchPath(AttrPath("", urn=ENTERPRISE))),
        (ENTERPRISE.lower(), PatchPath(AttrPath("", urn=ENTERPRISE.lower()))),
        (
            f'{CORE}:emails[type eq "work"].display',
            PatchPath(AttrPath("emails", urn=CORE), cmp("type", "eq", "work"), "display"),
        ),
        ("  title  ", PatchPath(path("title"))),
    ],
)
def test_patch_paths(text: str, expected: PatchPath) -> None:
    parsed = parse_patch_path(text)
    assert parsed == expected
    assert parse_patch_path(format_patch_path(parsed)) == parsed


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "1title",
        "name.givenName.x",
        "na me",
        "[type eq 1]",
        'emails[type eq "work"]value',
        'emails[type eq "work"].',
        'emails[type eq "work"].value.x',
        'emails[type eq "work"] .value',
        'name.givenName[type eq "x"]',
        "foo:bar",
        f"{ENTERPRISE}:",
        "x" * (MAX_FILTER_LENGTH + 1),
    ],
)
def test_malformed_patch_paths_are_invalid_path(text: str) -> None:
    with pytest.raises(InvalidPath) as caught:
        parse_patch_path(text)
    assert caught.value.scim_type == "invalidPath"


@pytest.mark.parametrize(
    "text",
    [
        'emails[type eq "work"',
        "emails[type eq]",
        "emails[]",
        'emails[type[value eq "x"] eq "y"]',
        'members[value eq "unterminated]',
    ],
)
def test_bad_filter_inside_patch_path_is_invalid_filter(text: str) -> None:
    """RFC 7644 §3.12 lists invalidFilter for a PATCH path filter."""
    with pytest.raises(InvalidFilter) as caught:
        parse_patch_path(text)
    assert caught.value.scim_type == "invalidFilter"


# -- equality_key -----------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('userName eq "ryan@contoso.com"', ("userName", "ryan@contoso.com")),
        ('USERNAME EQ "Ryan"', ("userName", "Ryan")),
        (f'{CORE}:userName eq "x"', ("userName", "x")),
        ('externalId eq "E1"', ("externalId", "E1")),
        ('id eq "abc"', ("id", "abc")),
        ('displayName eq "Group"', ("displayName", "Group")),
        (
            'urn:ietf:params:scim:schemas:core:2.0:Group:displayName eq "G"',
            ("displayName", "G"),
        ),
        ('userName eq "x" and active eq true', ("userName", "x")),
        ('active eq true and (title pr and externalId eq "e")', ("externalId", "e")),
        ('(userName eq "a" or title pr) and title pr', None),
        ('active eq true and externalId eq "e"', ("externalId", "e")),
        ('externalId eq "e" and userName eq "u"', ("userName", "u")),
        ('userName eq "u" and id eq "i"', ("id", "i")),
        ('userName eq "a" or userName eq "b"', None),
        ('not (userName eq "a")', None),
        ('userName ne "a"', None),
        ('userName sw "a"', None),
        ("userName eq 5", None),
        ("userName eq null", None),
        ('name.givenName eq "a"', None),
        ('userName.x eq "a"', None),
        (f'{ENTERPRISE}:id eq "a"', None),
        ('members[value eq "u1"]', None),
    ],
)
def test_equality_key(text: str, key: tuple[str, str] | None) -> None:
    assert equality_key(parse_filter(text)) == key


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Microsoft's reference SCIM service and its clients send values unquoted.
        ("userName sw O", cmp("userName", "sw", "O")),
        ("userName eq bjensen@example.com", cmp("userName", "eq", "bjensen@example.com")),
        ("meta.created gt 2015-10-10T14:38:21", cmp("meta.created", "gt", "2015-10-10T14:38:21")),
        ("meta.lastModified ge 2015-10-10", cmp("meta.lastModified", "ge", "2015-10-10")),
        (
            "meta.created lt 2015-10-10T14:38:21.5+02:00",
            cmp("meta.created", "lt", "2015-10-10T14:38:21.5+02:00"),
        ),
        ("active eq True", cmp("active", "eq", True)),
        ("x eq 42", cmp("x", "eq", 42)),
        ("title eq pr", cmp("title", "eq", "pr")),
        ("name.familyName eq O'Malley", cmp("name.familyName", "eq", "O'Malley")),
        ("(title co Guide)", cmp("title", "co", "Guide")),
        ("emails[type eq work]", vp("emails", cmp("type", "eq", "work"))),
        (
            "userName sw O and active eq false",
            And(cmp("userName", "sw", "O"), cmp("active", "eq", False)),
        ),
    ],
)
def test_unquoted_values_are_read_when_unambiguous(text: str, expected: Filter) -> None:
    parsed = parse_filter(text)
    assert parsed == expected
    assert parse_filter(format_filter(parsed)) == parsed
