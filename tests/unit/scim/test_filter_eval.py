"""Evaluating SCIM filters against canonical resources (RFC 7644 §3.4.2.2)."""

from __future__ import annotations

from typing import Any

import pytest

from scim.errors import InvalidFilter
from scim.evaluate import compile_filter, matches, matches_element, validate_filter
from scim.filter import parse_filter
from scim.schema import (
    ENTERPRISE_USER_SCHEMA,
    GROUP_RESOURCE,
    GROUP_SCHEMA,
    USER_RESOURCE,
    USER_SCHEMA,
)

ENT = ENTERPRISE_USER_SCHEMA

USER: dict[str, Any] = {
    "schemas": [USER_SCHEMA, ENT],
    "id": "2819c223-7f76-453a-919d-413861904646",
    "externalId": "Bjensen-EXT",
    "userName": "Bjensen@Example.com",
    "name": {"familyName": "O'Malley", "givenName": "Barbara"},
    "displayName": "Babs Jensen",
    "title": "Tour Guide",
    "userType": "Employee",
    "active": True,
    "nickName": "",
    "emails": [
        {"value": "bjensen@example.com", "type": "work", "primary": True},
        {"value": "babs@jensen.org", "type": "home"},
    ],
    "ims": [{"value": "babs@foo.com", "type": "xmpp"}],
    "phoneNumbers": [],
    "addresses": [{}],
    "meta": {
        "resourceType": "User",
        "created": "2010-01-23T04:56:22Z",
        "lastModified": "2011-05-13T04:42:34Z",
        "version": 'W/"3694e05e9dff591"',
    },
    ENT: {"department": "Sales", "manager": {"value": "m-1", "displayName": "Boss"}},
}

GROUP: dict[str, Any] = {
    "schemas": [GROUP_SCHEMA],
    "id": "g-1",
    "displayName": "Tour Guides",
    "members": [{"value": "2819c223-7f76-453a-919d-413861904646", "display": "Babs"}],
}


def user_matches(text: str, resource: dict[str, Any] | None = None) -> bool:
    return matches(parse_filter(text), USER if resource is None else resource, USER_RESOURCE)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # eq: userName is not caseExact, externalId and id are
        ('userName eq "bjensen@example.com"', True),
        ('USERNAME eq "BJENSEN@EXAMPLE.COM"', True),
        ('userName eq "bjensen"', False),
        ('externalId eq "Bjensen-EXT"', True),
        ('externalId eq "bjensen-ext"', False),
        ('id eq "2819C223-7F76-453A-919D-413861904646"', False),
        ('id eq "2819c223-7f76-453a-919d-413861904646"', True),
        ('meta.resourceType eq "user"', False),
        # ne
        ('userName ne "bjensen"', True),
        ('userName ne "BJENSEN@example.com"', False),
        ('externalId ne "bjensen-ext"', True),
        ('nickName ne "x"', True),
        ('locale ne "en"', True),  # absent: ne is true
        # co, sw, ew
        ('name.familyName co "o\'mal"', True),
        ('name.familyName co "x"', False),
        ('externalId co "ext"', False),
        ('externalId co "EXT"', True),
        ('userName sw "bj"', True),
        ('userName sw "jensen"', False),
        ('userName ew "EXAMPLE.COM"', True),
        ('userName ew "example"', False),
        ('title co ""', True),
        # gt, ge, lt, le on strings: lexicographic, case-folded unless caseExact
        ('title gt "tour"', True),
        ('title gt "tour guide"', False),
        ('title ge "TOUR GUIDE"', True),
        ('title lt "u"', True),
        ('title le "Tour Guide"', True),
        ('title lt "Tour"', False),
        ('externalId gt "a"', False),  # "B" < "a" when case matters
        # pr
        ("title pr", True),
        ("nickName pr", False),  # empty string is not present
        ("locale pr", False),
        ("phoneNumbers pr", False),  # empty list
        ("addresses pr", False),  # list of an empty object
        ("emails pr", True),
        ("name pr", True),
        ("emails.primary pr", True),
        ("ims.display pr", False),
        ("active pr", True),
        # booleans
        ("active eq true", True),
        ("active eq false", False),
        ("active ne false", True),
        ('active eq "True"', True),
        ('active eq "yes"', False),
        ("emails.primary eq true", True),
        # null
        ("locale eq null", True),
        ("title eq null", False),
        ("title ne null", True),
        ("locale ne null", False),
        # numbers against strings compare as text
        ("title eq 5", False),
        # unknown but well-formed attributes are never present
        ('shoeSize eq "9"', False),
        ('shoeSize ne "9"', True),
        ("shoeSize pr", False),
        ('not (shoeSize eq "9")', True),
        ('name.middle eq "x"', False),
        ('userName.first eq "x"', False),
        ('emails[color eq "red"]', False),
        ('shoes[size eq "9"]', False),
        # schemas (RFC 7643 §3)
        (f'schemas eq "{ENT}"', True),
        (f'schemas eq "{ENT.lower()}"', True),
        ('schemas eq "urn:ietf:params:scim:schemas:extension:other:2.0:User"', False),
        # URN-qualified paths
        (f'{USER_SCHEMA}:userName sw "B"', True),
        (f'{ENT}:department eq "sales"', True),
        (f'{ENT.upper()}:DEPARTMENT eq "Sales"', True),
        (f'{ENT}:manager.value eq "m-1"', True),
        (f'{ENT}:manager.displayName co "bo"', True),
        (f"{ENT}:costCenter pr", False),
        ('department eq "Sales"', False),  # not a core attribute
    ],
)
def test_operators(text: str, expected: bool) -> None:
    assert user_matches(text) is expected
    validate_filter(parse_filter(text), USER_RESOURCE)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # any value of a multi-valued attribute may match
        ('emails.value co "@jensen.org"', True),
        ('emails.value ew "@nowhere.org"', False),
        ('emails co "JENSEN.ORG"', True),  # a complex attribute compares its `value`
        ('emails eq "babs@jensen.org"', True),
        ('emails.type eq "home"', True),
        ('emails.type ne "work"', True),  # the home address differs
        ('ims.type ne "xmpp"', False),
        # valuePath: one element must satisfy the whole bracket filter
        ('emails[type eq "work" and value co "@example.com"]', True),
        ('emails[type eq "home" and value co "@example.com"]', False),
        ('emails.type eq "home" and emails.value co "@example.com"', True),  # across elements
        ('emails[type eq "home" or primary eq true]', True),
        ('emails[not (type eq "work")]', True),
        ('emails[TYPE eq "WORK"]', True),
        ("emails[primary pr]", True),
        ('phoneNumbers[type eq "work"]', False),
        ('name[givenName eq "barbara"]', True),
        ('not (emails[type eq "other"])', True),
        (
            'emails[type eq "work" and value co "@example.com"] or '
            'ims[type eq "xmpp" and value co "@foo.com"]',
            True,
        ),
        # RFC 7644 §3.4.2.2 examples
        (
            'userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")',
            True,
        ),
        (
            'userType ne "Employee" and not (emails co "example.com" or '
            'emails.value co "example.org")',
            False,
        ),
        ('userType eq "Employee" and (emails.type eq "work")', True),
        ('title pr and userType eq "Employee"', True),
        ('title pr or userType eq "Intern"', True),
        ('userType eq "Intern" or not (title pr)', False),
    ],
)
def test_multi_valued_and_logic(text: str, expected: bool) -> None:
    assert user_matches(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('meta.lastModified gt "2011-05-13T04:42:34Z"', False),
        ('meta.lastModified ge "2011-05-13T04:42:34Z"', True),
        ('meta.lastModified le "2011-05-13T04:42:34Z"', True),
        ('meta.lastModified lt "2011-05-13T04:42:35Z"', True),
        ('meta.lastModified gt "2011-05-13T04:42:33.999Z"', True),
        # chronological, not lexicographic: offsets count
        ('meta.lastModified eq "2011-05-13T06:42:34+02:00"', True),
        ('meta.lastModified lt "2011-05-13T05:00:00+02:00"', False),
        ('meta.lastModified gt "2011-05-13T04:42:34"', False),  # no offset: UTC
        ('meta.created lt "2011-01-01T00:00:00Z"', True),
        ('meta.lastModified sw "2011-05"', True),  # substring ops compare the text
        ('meta.lastModified gt "2011-05-13T04:42:34Z" or meta.created pr', True),
    ],
)
def test_datetime_ordering(text: str, expected: bool) -> None:
    assert user_matches(text) is expected


def test_stored_datetime_that_does_not_parse_never_matches() -> None:
    broken = {**USER, "meta": {"lastModified": "yesterday"}}
    assert not user_matches('meta.lastModified lt "2030-01-01T00:00:00Z"', broken)
    assert not user_matches('meta.lastModified gt "2000-01-01T00:00:00Z"', broken)


def test_absent_attributes_and_not() -> None:
    bare: dict[str, Any] = {"schemas": [USER_SCHEMA], "id": "1", "userName": "u"}
    assert user_matches('title ne "x"', bare)
    assert not user_matches('title eq "x"', bare)
    assert not user_matches('title gt "a"', bare)
    assert user_matches('not (title eq "x")', bare)
    assert not user_matches("not (userName pr)", bare)
    assert not user_matches('emails[type eq "work"]', bare)
    assert not user_matches(f'{ENT}:department eq "x"', bare)
    assert user_matches(f'{ENT}:department ne "x"', bare)
    assert not user_matches("name.givenName pr", bare)
    garbage: dict[str, Any] = {**bare, ENT: "not an object", "emails": ["x", None, 5]}
    assert not user_matches(f"{ENT}:department pr", garbage)
    assert not user_matches('emails.value eq "x"', garbage)
    assert not user_matches('emails[value eq "x"]', garbage)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("active gt true", "boolean"),
        ('active lt "true"', "boolean"),
        ('active co "t"', "boolean"),
        ("emails.primary ge false", "boolean"),
        ('name eq "Barbara"', "complex"),
        ('name co "B"', "complex"),
        (f'{ENT}:manager eq "m-1"', "complex"),
        ('meta gt "2011"', "complex"),
        ('meta.lastModified gt "not a date"', "dateTime"),
        ("meta.lastModified gt 5", "dateTime"),
        ('x509Certificates.value gt "A"', "binary"),
        ("title gt null", "null"),
        ('userName[value eq "x"]', "complex"),
        ('urn:ietf:params:scim:schemas:extension:unknown:2.0:User:x eq "1"', "not a schema"),
        (f'{GROUP_SCHEMA}:displayName eq "x"', "not a schema"),
    ],
)
def test_forbidden_comparisons_are_invalid_filter(text: str, match: str) -> None:
    parsed = parse_filter(text)
    with pytest.raises(InvalidFilter, match=match) as caught:
        matches(parsed, USER, USER_RESOURCE)
    assert caught.value.scim_type == "invalidFilter"
    with pytest.raises(InvalidFilter, match=match):
        validate_filter(parsed, USER_RESOURCE)


def test_every_branch_is_checked_even_where_evaluation_would_stop_early() -> None:
    """A filter is refused or accepted whatever the resource: the bad term
    after a false `and` is refused too, by validation and by matching."""
    parsed = parse_filter('userName eq "nobody" and active gt true')
    with pytest.raises(InvalidFilter):
        matches(parsed, USER, USER_RESOURCE)
    with pytest.raises(InvalidFilter):
        validate_filter(parsed, USER_RESOURCE)
    with pytest.raises(InvalidFilter):
        compile_filter(parsed, USER_RESOURCE)
    inner = parse_filter('emails[type eq "x" or primary lt true]')
    with pytest.raises(InvalidFilter):
        validate_filter(inner, USER_RESOURCE)
    validate_filter(parse_filter('shoeSize gt true and emails[color eq "x"]'), USER_RESOURCE)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('displayName eq "tour guides"', True),
        ('displayName eq "Other"', False),
        ('id eq "g-1" and members[value eq "2819c223-7f76-453a-919d-413861904646"]', True),
        ('id eq "g-1" and members[value eq "2819C223-7F76-453A-919D-413861904646"]', False),
        ('members.value eq "nobody"', False),
        ('members.display eq "BABS"', True),
        (f'{GROUP_SCHEMA}:displayName sw "Tour"', True),
    ],
)
def test_group_filters(text: str, expected: bool) -> None:
    assert matches(parse_filter(text), GROUP, GROUP_RESOURCE) is expected


def test_idp_lookups() -> None:
    assert user_matches('userName eq "bjensen@example.com"')
    assert not user_matches('userName eq "5d6b1a3e-9f7c-4c2e-8a1b-3e4f5a6b7c8d"')
    assert user_matches('externalId eq "Bjensen-EXT"')
    assert user_matches('userName sw "b"')


def test_matches_element_for_patch_filters() -> None:
    emails = USER_RESOURCE.lookup("emails")
    assert emails is not None
    work, home = USER["emails"]
    value_filter = parse_filter('type eq "work" and primary eq true')
    assert matches_element(value_filter, work, emails.attribute)
    assert not matches_element(value_filter, home, emails.attribute)
    with pytest.raises(InvalidFilter):
        matches_element(parse_filter("value.x pr"), work, emails.attribute)


def test_a_compiled_filter_tests_many_resources_as_matches_does() -> None:
    """Compiled once, the test gives each resource the answer `matches` gives."""
    text = 'emails[type eq "work" and value co "@"] or (title pr and not (active eq false))'
    parsed = parse_filter(text)
    test = compile_filter(parsed, USER_RESOURCE)
    work = {"emails": [{"type": "work", "value": "a@x"}]}
    other = {"emails": [{"type": "home", "value": "a@x"}], "active": False, "title": "T"}
    titled = {"title": "T", "active": True}
    for resource, expected in ((work, True), (other, False), (titled, True), ({}, False)):
        assert test(resource) is expected
        assert matches(parsed, resource, USER_RESOURCE) is expected
