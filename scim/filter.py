"""SCIM filter and PATCH path parser and printer (RFC 7644 §3.4.2.2, §3.5.2).

A hand-written recursive-descent parser over a small on-demand tokenizer.
The filter text is read from a query string, so it is hostile input: every
failure is a `ScimError` (never IndexError, ValueError or RecursionError),
and length, nesting depth and number of terms are bounded.

Lenient where real clients differ from Figure 1 and nothing is ambiguous:
any whitespace run separates tokens (Okta sends a trailing space), `not`
may or may not be followed by a space (RFC 7644 erratum 7319), operators,
`and`/`or`/`not` and `true`/`false`/`null` are case-insensitive, and
attribute names may be `$ref` (RFC 7643 uses it though ATTRNAME forbids `$`).
A comparison value may be written without quotes, as Microsoft's reference
SCIM service and the clients written against it send it (`userName sw O`,
`meta.created gt 2015-10-10T14:38:21`): a bare word starting with a letter,
or an RFC 3339 date or date-time, is read as that string. A bare `and`,
`or` or `not`, a double quote inside a bare word, a value that starts with a
quote that is not JSON's, or a malformed number stays an error: there the
meaning is not clear.
"""

from __future__ import annotations

import functools
import json
import math
import re
from typing import NamedTuple, NoReturn

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
from scim.errors import InvalidFilter, InvalidPath, ScimError
from scim.schema import GROUP_SCHEMA, USER_SCHEMA, known_schema_urn

__all__ = [
    "MAX_FILTER_DEPTH",
    "MAX_FILTER_LENGTH",
    "MAX_FILTER_TERMS",
    "equality_key",
    "format_filter",
    "format_patch_path",
    "format_path",
    "parse_filter",
    "parse_patch_path",
]

MAX_FILTER_LENGTH = 4096
MAX_FILTER_DEPTH = 64
MAX_FILTER_TERMS = 200

_NAME = r"(?:[A-Za-z][A-Za-z0-9_-]*|\$ref)"
_ATTR_RE = re.compile(rf"({_NAME})(?:\.({_NAME}))?", re.IGNORECASE)
_SUB_RE = re.compile(rf"\.({_NAME})", re.IGNORECASE)
_URN_RE = re.compile(r"urn:[A-Za-z0-9][A-Za-z0-9-]*(?::[A-Za-z0-9._-]+)+", re.IGNORECASE)
# One path token: an optional URN and the attribute, up to the next space or bracket.
_WORD_RE = re.compile(r"[A-Za-z$][A-Za-z0-9_:.$-]*")
_NUMBER_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_:.$-")
_SPACE = frozenset(" \t\r\n")
_COMPARE_OPS: dict[str, CompareOp] = {
    "eq": "eq", "ne": "ne", "co": "co", "sw": "sw", "ew": "ew",
    "gt": "gt", "ge": "ge", "lt": "lt", "le": "le",
}  # fmt: skip
_LITERALS: dict[str, Literal_] = {"true": True, "false": False, "null": None}
_OPERATOR_HINT = "an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr)"
# Unquoted comparison values: up to whitespace, a bracket or a parenthesis.
_BARE_RE = re.compile(r"[A-Za-z][^\s()\[\]]*")
_DATETIME_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?(?:Z|[+-][0-9]{2}:[0-9]{2})?)?",
    re.IGNORECASE,
)
_VALUE_ENDS = frozenset(" \t\r\n()[]")
_KEYWORDS = frozenset({"and", "or", "not"})


class _Token(NamedTuple):
    kind: str  # "(" ")" "[" "]" "string" "number" "word" "end"
    text: str
    pos: int
    value: Literal_ = None

    def is_word(self, *words: str) -> bool:
        return self.kind == "word" and self.text.lower() in words


def _describe(tok: _Token) -> str:
    if tok.kind == "end":
        return "the end of the filter"
    shown = tok.text if len(tok.text) <= 40 else tok.text[:37] + "..."
    return repr(shown)


class _Parser:
    """Filter = or-chain of and-chains of unary terms (RFC 7644 §3.4.2.2:
    grouping, then `not` over `and` over `or`); `and`/`or` chains are loops,
    so Python recursion only grows with parentheses and brackets."""

    def __init__(self, text: str, pos: int = 0) -> None:
        self.text = text
        self.pos = pos
        self.depth = 0
        self.terms = 0
        self.in_brackets = False
        self._peeked: _Token | None = None

    # -- tokens ---------------------------------------------------------
    def peek(self) -> _Token:
        if self._peeked is None:
            self._peeked = self._scan()
        return self._peeked

    def next(self) -> _Token:
        tok = self.peek()
        self._peeked = None
        return tok

    def expect(self, kind: str, what: str) -> _Token:
        tok = self.next()
        if tok.kind != kind:
            self.fail(what, tok)
        return tok

    def fail(self, expected: str, tok: _Token) -> NoReturn:
        raise InvalidFilter(
            f"Expected {expected} at character {tok.pos + 1} of the filter, found {_describe(tok)}"
        )

    def _scan(self) -> _Token:
        text, i = self.text, self.pos
        while i < len(text) and text[i] in _SPACE:
            i += 1
        if i >= len(text):
            self.pos = i
            return _Token("end", "", i)
        char = text[i]
        if char in "()[]":
            self.pos = i + 1
            return _Token(char, char, i)
        if char == '"':
            return self._string(i)
        if char == "-" or "0" <= char <= "9":
            return self._number(i)
        word = _WORD_RE.match(text, i)
        if word is None:
            raise InvalidFilter(f"Unexpected character {char!r} at character {i + 1} of the filter")
        self.pos = word.end()
        return _Token("word", word.group(), i)

    def _string(self, start: int) -> _Token:
        """A JSON string (RFC 8259 §7); json does the escapes, we find the end."""
        text, j = self.text, start + 1
        while j < len(text) and text[j] != '"':
            j += 2 if text[j] == "\\" else 1
        if j >= len(text):
            raise InvalidFilter(f"Unterminated string starting at character {start + 1}")
        raw = text[start : j + 1]
        try:
            value = json.loads(raw, strict=False)
            # json accepts a lone surrogate escape ("\ud800"), which is no
            # character: it could not be stored, compared or sent to Redis.
            value.encode("utf-8")
        except ValueError:
            raise InvalidFilter(
                f"Invalid escape in the string starting at character {start + 1}"
            ) from None
        self.pos = j + 1
        return _Token("string", raw, start, value)

    def _number(self, start: int) -> _Token:
        found = _NUMBER_RE.match(self.text, start)
        end = found.end() if found else start + 1
        if found is None or (end < len(self.text) and self.text[end] in _WORD_CHARS):
            raise InvalidFilter(f"Malformed number at character {start + 1} of the filter")
        raw = found.group()
        value: int | float = float(raw) if found.group(1) or found.group(2) else int(raw)
        if not math.isfinite(value):
            raise InvalidFilter(f"Number out of range at character {start + 1} of the filter")
        self.pos = end
        return _Token("number", raw, start, value)

    # -- grammar --------------------------------------------------------
    def parse_or(self) -> Filter:
        result = self.parse_and()
        while self.peek().is_word("or"):
            self.next()
            result = Or(result, self.parse_and())
        return result

    def parse_and(self) -> Filter:
        result = self.parse_unary()
        while self.peek().is_word("and"):
            self.next()
            result = And(result, self.parse_unary())
        return result

    def parse_unary(self) -> Filter:
        tok = self.next()
        if tok.kind == "(":
            return self.group(tok)
        if tok.kind != "word":
            self.fail("an attribute path, '(' or 'not'", tok)
        if tok.is_word("not"):
            after = self.peek()
            if after.kind == "(":
                return Not(self.group(self.next()))
            if not (after.kind == "[" or after.is_word("pr", *_COMPARE_OPS)):
                self.fail("'(' after 'not'", after)
        return self.attr_exp(tok)

    def group(self, opening: _Token) -> Filter:
        self.enter(opening)
        inner = self.parse_or()
        self.expect(")", "'and', 'or' or ')'")
        self.depth -= 1
        return inner

    def enter(self, tok: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_FILTER_DEPTH:
            raise InvalidFilter(
                f"Filter nested deeper than {MAX_FILTER_DEPTH} levels at character {tok.pos + 1}"
            )

    def attr_exp(self, tok: _Token) -> Filter:
        path = _split_path(tok.text, f"at character {tok.pos + 1}", InvalidFilter)
        if self.in_brackets and (path.urn is not None or path.sub_attr is not None):
            self.fail("a plain sub-attribute name inside '[...]'", tok)
        op_tok = self.next()
        if op_tok.kind == "[":
            return self.value_path(path, op_tok)
        self.terms += 1
        if self.terms > MAX_FILTER_TERMS:
            raise InvalidFilter(f"Filter has more than {MAX_FILTER_TERMS} comparisons")
        if op_tok.is_word("pr"):
            after = self.peek()
            if after.kind in ("string", "number") or after.is_word(*_LITERALS):
                self.fail("'and', 'or' or the end after 'pr' (pr takes no value)", after)
            return Present(path)
        op = _COMPARE_OPS.get(op_tok.text.lower()) if op_tok.kind == "word" else None
        if op is None:
            self.fail(_OPERATOR_HINT + " or '['", op_tok)
        value_tok = self.value()
        if value_tok.kind in ("string", "number"):
            return Compare(path, op, value_tok.value)
        if value_tok.kind == "word" and value_tok.text.lower() in _LITERALS:
            return Compare(path, op, _LITERALS[value_tok.text.lower()])
        self.fail("a value (a JSON string, number, true, false or null)", value_tok)

    def value(self) -> _Token:
        """The comparison value: a JSON string, number, `true`/`false`/`null`,
        or (read generously) an unquoted word or RFC 3339 date-time, as a string."""
        text, i = self.text, self.pos
        while i < len(text) and text[i] in _SPACE:
            i += 1
        bare = _DATETIME_RE.match(text, i) or _BARE_RE.match(text, i)
        if bare is None or (bare.end() < len(text) and text[bare.end()] not in _VALUE_ENDS):
            return self.next()
        word = bare.group()
        if word.lower() in _LITERALS:
            return self.next()
        if word.lower() in _KEYWORDS or '"' in word or not word.isprintable():
            raise InvalidFilter(
                f"Unquoted value {word[:40]!r} at character {i + 1} of the filter is ambiguous;"
                " quote it"
            )
        try:
            word.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidFilter(f"Invalid character in the value at character {i + 1}") from None
        self.pos = bare.end()
        return _Token("string", word, i, word)

    def value_path(self, path: AttrPath, opening: _Token) -> ValuePath:
        if self.in_brackets:
            raise InvalidFilter(
                f"Nested '[' at character {opening.pos + 1}: a [...] filter cannot contain another"
            )
        if path.sub_attr is not None:
            self.fail("'[' after a multi-valued attribute, not a sub-attribute", opening)
        self.enter(opening)
        self.in_brackets = True
        inner = self.parse_or()
        self.expect("]", "'and', 'or' or ']'")
        self.in_brackets = False
        self.depth -= 1
        return ValuePath(path, inner)


def _split_path(
    word: str, where: str, error: type[ScimError], *, allow_schema: bool = False
) -> AttrPath:
    """`[URN ":"] ATTRNAME ["." ATTRNAME]`: the URN ends at the last colon (URNs
    contain colons and dots, attribute names neither). A bare known schema URN
    names a whole extension, which only a PATCH path may do (RFC 7644 §3.5.2)."""
    urn: str | None = None
    rest = word
    if ":" in word:
        if known_schema_urn(word):
            if allow_schema:
                return AttrPath(attr="", urn=word)
            raise error(f"{where}: {word!r} is a schema URN; name one of its attributes")
        urn, _, rest = word.rpartition(":")
        if not _URN_RE.fullmatch(urn):
            raise error(f"{where}: {urn!r} is not a schema URN")
    found = _ATTR_RE.fullmatch(rest)
    if found is None:
        raise error(
            f"{where}: {rest!r} is not an attribute name or name.subAttribute "
            "(a letter, then letters, digits, '-' or '_')"
        )
    return AttrPath(attr=found.group(1), sub_attr=found.group(2), urn=urn)


# The filter of nearly every IdP lookup (Entra's Test Connection and each
# match before a create): `attr[.sub] eq "text"` with no escape in the text.
# It is read in one regex match; anything else goes through the full parser,
# which gives the same tree for these (tests/unit/scim/test_filter_fast_path.py).
_SIMPLE_EQ_RE = re.compile(
    r"[ \t\r\n]*([A-Za-z][A-Za-z0-9_-]*)(?:\.([A-Za-z][A-Za-z0-9_-]*))?"
    r'[ \t\r\n]+[eE][qQ][ \t\r\n]+"([^"\\]*)"[ \t\r\n]*'
)


def parse_filter(text: str) -> Filter:
    """Parse a `filter` parameter (RFC 7644 §3.4.2.2, Figure 1); InvalidFilter otherwise."""
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidFilter(
            f"Filter is {len(text)} characters long; at most {MAX_FILTER_LENGTH} are allowed"
        )
    simple = _SIMPLE_EQ_RE.fullmatch(text)
    if simple is not None and simple.group(3).isprintable():
        attr, sub_attr, value = simple.groups()
        return Compare(AttrPath(attr=attr, sub_attr=sub_attr), "eq", value)
    return parse_filter_fully(text)


def parse_filter_fully(text: str) -> Filter:
    """`parse_filter` without its fast path (the grammar, token by token)."""
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidFilter(
            f"Filter is {len(text)} characters long; at most {MAX_FILTER_LENGTH} are allowed"
        )
    if not text.strip():
        raise InvalidFilter("Filter is empty")
    parser = _Parser(text)
    result = parser.parse_or()
    end = parser.next()
    if end.kind != "end":
        parser.fail("'and', 'or' or the end of the filter", end)
    return result


# Paths up to this long are cached (the trees are frozen, so sharing them is safe);
# clients send the same few paths in every PATCH.
_MAX_CACHED_PATH = 200


def parse_patch_path(text: str) -> PatchPath:
    """Parse a PATCH `path` (RFC 7644 §3.5.2, Figure 7): `attrPath`,
    `valuePath [subAttr]` or a bare schema URN.

    RFC 7644 §3.12 lists invalidFilter for "PATCH (Path Filter)" and
    invalidPath for a malformed path, so a fault between `[` and `]` raises
    InvalidFilter and any other fault raises InvalidPath.
    """
    if len(text) > _MAX_CACHED_PATH:
        return _parse_patch_path(text)
    return _cached_parse_patch_path(text)


def _parse_patch_path(text: str) -> PatchPath:
    stripped = text.strip()
    if not stripped:
        raise InvalidPath("PATCH path is empty")
    if len(stripped) > MAX_FILTER_LENGTH:
        raise InvalidPath(f"PATCH path is longer than {MAX_FILTER_LENGTH} characters")
    head, bracket, _ = stripped.partition("[")
    if not _WORD_RE.fullmatch(head):
        raise InvalidPath(f"PATCH path {stripped[:80]!r} does not start with an attribute path")
    if not bracket:
        return PatchPath(_split_path(head, "PATCH path", InvalidPath, allow_schema=True))
    attr = _split_path(head, "PATCH path", InvalidPath)
    if attr.sub_attr is not None:
        raise InvalidPath(f"PATCH path: '[' must follow a multi-valued attribute, not {head!r}")
    parser = _Parser(stripped, len(head))
    value_filter = parser.value_path(attr, parser.next())
    rest = stripped[parser.pos :]
    if not rest:
        return PatchPath(attr, value_filter.filter)
    sub = _SUB_RE.fullmatch(rest)
    if sub is None:
        raise InvalidPath(
            f"PATCH path: expected '.subAttribute' or the end after ']', found {rest!r}"
        )
    return PatchPath(attr, value_filter.filter, sub.group(1))


_cached_parse_patch_path = functools.lru_cache(maxsize=1024)(_parse_patch_path)


# -- printing -------------------------------------------------------------
def format_path(path: AttrPath) -> str:
    text = f"{path.urn}:{path.attr}" if path.urn and path.attr else path.urn or path.attr
    return f"{text}.{path.sub_attr}" if path.sub_attr else text


def _format_value(value: Literal_) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidFilter(f"{value!r} cannot be written in a filter")
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def format_filter(f: Filter) -> str:
    """Canonical text: lower-case keywords, single spaces, and only the
    parentheses needed for `parse_filter` to rebuild the same tree (our
    chains are left-nested, so a right operand of the same kind is wrapped)."""
    if isinstance(f, Compare):
        return f"{format_path(f.path)} {f.op} {_format_value(f.value)}"
    if isinstance(f, Present):
        return f"{format_path(f.path)} pr"
    if isinstance(f, Not):
        return f"not ({format_filter(f.inner)})"
    if isinstance(f, ValuePath):
        return f"{format_path(f.path)}[{format_filter(f.filter)}]"
    if isinstance(f, And):
        left = _wrap(f.left, isinstance(f.left, Or))
        return f"{left} and {_wrap(f.right, isinstance(f.right, And | Or))}"
    return f"{format_filter(f.left)} or {_wrap(f.right, isinstance(f.right, Or))}"


def _wrap(f: Filter, parens: bool) -> str:
    return f"({format_filter(f)})" if parens else format_filter(f)


def format_patch_path(path: PatchPath) -> str:
    text = format_path(path.attr)
    if path.value_filter is not None:
        text += f"[{format_filter(path.value_filter)}]"
    return f"{text}.{path.sub_attr}" if path.sub_attr else text


# -- index planning -------------------------------------------------------
_INDEXED = {"id": "id", "username": "userName", "externalid": "externalId",
            "displayname": "displayName"}  # fmt: skip
_CORE_URNS = {USER_SCHEMA.lower(), GROUP_SCHEMA.lower()}


def equality_key(f: Filter) -> tuple[str, str] | None:
    """(canonical attribute, value) when `f` is, or top-level-ands, an `eq` on
    an indexable identifier, so the store can fetch candidates from an index.

    The caller must still evaluate the whole filter on the candidates; the
    value is as written (userName and displayName compare case-insensitively,
    so their index must fold case). Prefers id, then userName, externalId,
    displayName: the most selective first.
    """
    found: dict[str, str] = {}
    stack: list[Filter] = [f]
    while stack:
        node = stack.pop()
        if isinstance(node, And):
            stack += (node.right, node.left)
            continue
        if not (isinstance(node, Compare) and node.op == "eq" and isinstance(node.value, str)):
            continue
        path = node.path
        name = _INDEXED.get(path.attr.lower())
        core = path.urn is None or path.urn.lower() in _CORE_URNS
        if name and core and path.sub_attr is None:
            found.setdefault(name, node.value)
    for name in ("id", "userName", "externalId", "displayName"):
        if name in found:
            return name, found[name]
    return None
