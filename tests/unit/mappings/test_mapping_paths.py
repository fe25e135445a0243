"""The source path language: parsing once, resolving per user."""

from __future__ import annotations

from typing import Any

import pytest

from mappings import PathError, SourcePath, ValueFilter, is_address, parse_path, resolve

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("title", SourcePath(text="title", attr="title")),
        ("name.givenName", SourcePath(text="name.givenName", attr="name", sub="givenName")),
        (
            'emails[type eq "work"].value',
            SourcePath(
                text='emails[type eq "work"].value',
                attr="emails",
                filter=ValueFilter(attr="type", value="work"),
                sub="value",
            ),
        ),
        (
            "emails[primary EQ TRUE].value",
            SourcePath(
                text="emails[primary EQ TRUE].value",
                attr="emails",
                filter=ValueFilter(attr="primary", value=True),
                sub="value",
            ),
        ),
        (
            f"{ENTERPRISE}:manager.value",
            SourcePath(
                text=f"{ENTERPRISE}:manager.value",
                attr="manager",
                schema=ENTERPRISE,
                sub="value",
            ),
        ),
        (
            f'{ENTERPRISE}:things[kind eq "a:b]\\"c"].value',
            SourcePath(
                text=f'{ENTERPRISE}:things[kind eq "a:b]\\"c"].value',
                attr="things",
                schema=ENTERPRISE,
                filter=ValueFilter(attr="kind", value='a:b]"c'),
                sub="value",
            ),
        ),
        (
            "userName|email",
            SourcePath(text="userName|email", attr="userName", require_address=True),
        ),
        (
            "urn:ietf:params:scim:schemas:core:2.0:User:name.familyName",
            SourcePath(
                text="urn:ietf:params:scim:schemas:core:2.0:User:name.familyName",
                attr="name",
                sub="familyName",
            ),
        ),
        ("manager.$ref", SourcePath(text="manager.$ref", attr="manager", sub="$ref")),
    ],
)
def test_parse_accepts(text: str, expected: SourcePath) -> None:
    assert parse_path(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "|email",
        "name.givenName.extra",
        "name..givenName",
        "1title",
        "emails[",
        'emails[type ne "work"].value',
        "emails[type eq work].value",
        'emails[type eq "work"',
        "emails[type eq 1].value",
        "emails[].value",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:",
        "urn:x:department",
        "enterprise:2.0:User.department",
        "title with spaces",
        "title|lower",
    ],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(PathError):
        parse_path(text)


USER: dict[str, Any] = {
    "userName": "ada@example.com",
    "name": {"givenName": "Ada"},
    "emails": [
        {"value": "home@example.com", "type": "home", "primary": True},
        {"value": "work1@example.com", "type": "Work"},
        {"value": "work2@example.com", "type": "work"},
    ],
    ENTERPRISE.lower(): {"Department": "R&D", "manager": {"value": "m-1"}},
    "roles": ["a", "b"],
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("NAME.GIVENNAME", ["Ada"]),
        ("name.familyName", [None]),
        ("missing", []),
        ("missing.sub", []),
        ('emails[type eq "WORK"].value', ["work1@example.com", "work2@example.com"]),
        ("emails[primary eq true].value", ["home@example.com"]),
        ("emails[primary eq false].value", []),
        ("emails.value", ["home@example.com", "work1@example.com", "work2@example.com"]),
        (f"{ENTERPRISE}:department", ["R&D"]),
        (f"{ENTERPRISE.upper()}:manager.VALUE", ["m-1"]),
        ("roles", ["a", "b"]),
        ("userName.sub", [None]),
    ],
)
def test_resolve(text: str, expected: list[object]) -> None:
    assert resolve(parse_path(text), USER) == expected


def test_filter_accepts_entra_string_booleans() -> None:
    user = {"emails": [{"value": "x@example.com", "primary": "True"}]}
    assert resolve(parse_path("emails[primary eq true].value"), user) == ["x@example.com"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a@b", True),
        ("ada@example.com", True),
        ("ada", False),
        ("@example.com", False),
        ("ada@", False),
        ("a@b@c", False),
        (" @ ", False),
        ("", False),
    ],
)
def test_is_address(value: str, expected: bool) -> None:
    assert is_address(value) is expected
