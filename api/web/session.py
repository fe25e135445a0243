"""Login, the session cookie and CSRF tokens of the admin page.

The session is a signed cookie: `<payload>.<mac>`, both base64url, the MAC
an HMAC-SHA256 of the payload under `BRIDGE_SESSION_SECRET`
(api/web/config.py), compared in constant time. The payload names who
logged in (the operator, or a tenant and its admin key id), a random CSRF
token, a random session id and when it ends. A logged-in session is also
live on the server: `keys.web_session(sid)` exists until it expires or the
user logs out, so a cookie copied before logout cannot be replayed after it.
The cookie never holds the operator token or the admin key: every request
re-checks the credential behind it,

- the operator: a MAC of the current `BRIDGE_ADMIN_TOKEN` (the
  *fingerprint*) must match, so rotating the token (or emptying it) ends
  every operator session at once;
- a tenant key: the key id must still be live in Redis, so revoking the key
  ends its sessions at once.

Before login the browser gets an *anonymous* session (no principal, only a
CSRF token) so that the login form is CSRF-protected too; a login replaces
it with a fresh one and a fresh CSRF token (no session fixation).

The cookie is HttpOnly, SameSite=Strict, Path=/admin, and Secure when the
public URL is https. Every state-changing form is a POST carrying the
session's CSRF token in a hidden field (`csrf_token`), checked before the
form is read any further.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Any, Literal

import msgspec
from litestar import Request
from litestar.datastructures import Cookie

from api.admin.auth import Principal, same_secret
from api.services import Services
from api.web.config import WebSettings
from shadow import keys
from shadow.admin_keys import AdminKeyStore

__all__ = [
    "COOKIE_NAME",
    "CSRF_FIELD",
    "CsrfRefused",
    "LoginRequired",
    "Session",
    "authenticate",
    "check_csrf",
    "clear_cookie",
    "end_session",
    "had_session",
    "login_session",
    "read_session",
    "session_cookie",
]

COOKIE_NAME = "scim_bridge_admin"
COOKIE_PATH = "/admin"
CSRF_FIELD = "csrf_token"
_CONTEXT = b"scim-bridge admin session v1\x00"


class LoginRequired(Exception):  # control flow: answered with a redirect to the login form
    """No valid session: the page needs a login."""


class CsrfRefused(Exception):
    """A state-changing form without the session's CSRF token."""


class Session(msgspec.Struct, frozen=True, kw_only=True):
    """What the cookie carries (signed, not encrypted: nothing secret in it)."""

    kind: Literal["anonymous", "operator", "tenant"]
    csrf: str
    expires: int
    tenant: str | None = None
    key_id: str | None = None
    fingerprint: str | None = None
    #: The server-side id of a logged-in session (`keys.web_session`).
    sid: str | None = None

    @property
    def principal(self) -> Principal:
        if self.kind == "anonymous":
            raise LoginRequired
        return Principal(operator=self.kind == "operator", tenant=self.tenant, key_id=self.key_id)


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Session).decode


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(web: WebSettings, payload: str) -> str:
    return _b64(hmac.new(web.session_secret, _CONTEXT + payload.encode(), hashlib.sha256).digest())


def _fingerprint(web: WebSettings, operator_token: str) -> str:
    """Names the operator token without revealing it (a MAC under the session key)."""
    mac = hmac.new(web.session_secret, b"operator\x00" + operator_token.encode(), hashlib.sha256)
    return mac.hexdigest()[:32]


def sign(web: WebSettings, session: Session) -> str:
    payload = _b64(_encode(session))
    return f"{payload}.{_mac(web, payload)}"


def unsign(web: WebSettings, value: str) -> Session | None:
    """The session in a cookie value, or None when it is forged, malformed or expired."""
    payload, dot, mac = value.partition(".")
    if not dot or len(value) > 4096:
        return None
    if not hmac.compare_digest(mac.encode(), _mac(web, payload).encode()):
        return None
    try:
        session = _decode(_unb64(payload))
    except (ValueError, msgspec.DecodeError):
        return None
    return session if session.expires > time.time() else None


def anonymous_session(web: WebSettings) -> Session:
    return Session(
        kind="anonymous",
        csrf=secrets.token_urlsafe(24),
        expires=int(time.time()) + web.login_ttl_s,
    )


async def login_session(web: WebSettings, services: Services, principal: Principal) -> Session:
    """A fresh session (new id, new CSRF token) for a caller who just logged
    in, made live on the server for as long as it lasts."""
    expires = int(time.time()) + web.session_ttl_s
    csrf = secrets.token_urlsafe(24)
    sid = secrets.token_urlsafe(24)
    await services.redis.set(keys.web_session(sid), "1", ex=web.session_ttl_s)
    if principal.operator:
        fingerprint = _fingerprint(web, services.settings.admin_token)
        return Session(
            kind="operator", csrf=csrf, expires=expires, fingerprint=fingerprint, sid=sid
        )
    return Session(
        kind="tenant",
        csrf=csrf,
        expires=expires,
        tenant=principal.tenant,
        key_id=principal.key_id,
        sid=sid,
    )


async def end_session(services: Services, session: Session) -> None:
    """Log out: the session (and any message it had not shown) is gone for
    every copy of its cookie."""
    if session.sid:
        await services.redis.delete(keys.web_session(session.sid), keys.web_flash(session.sid))


async def authenticate(services: Services, secret: str) -> Principal | None:
    """The caller a presented operator token or tenant admin key names, as the
    admin API decides it (api/admin/auth.py): constant-time, the operator
    comparison always done, an empty operator token never matching."""
    secret = secret.strip()
    if not secret or len(secret) > 512:
        return None
    operator_token = services.settings.admin_token
    if same_secret(secret, operator_token or "\x00disabled") and operator_token:
        return Principal(operator=True)
    found = await AdminKeyStore(services.redis).authenticate(secret)
    if found is None:
        return None
    tenant, key_id = found
    return Principal(operator=False, tenant=tenant, key_id=key_id)


async def read_session(
    request: Request[Any, Any, Any], web: WebSettings, services: Services
) -> Session | None:
    """The request's session, if its cookie is genuine, unexpired and the
    credential behind it still holds; an anonymous session as it is."""
    raw = request.cookies.get(COOKIE_NAME)
    session = unsign(web, raw) if raw else None
    if session is None or session.kind == "anonymous":
        return session
    if not session.sid or not await services.redis.exists(keys.web_session(session.sid)):
        return None  # logged out (or expired) on the server
    if session.kind == "operator":
        token = services.settings.admin_token
        current = _fingerprint(web, token) if token else ""
        ok = bool(token) and hmac.compare_digest(current, session.fingerprint or "")
        return session if ok else None
    if session.tenant is None or session.key_id is None:
        return None
    live = await services.redis.hexists(keys.admin_keys(session.tenant), session.key_id)  # type: ignore[misc]
    return session if live else None


def had_session(request: Request[Any, Any, Any], web: WebSettings) -> bool:
    """True when the browser shows a logged-in session cookie of ours that no
    longer holds (expired, logged out, its key revoked): the page then says
    the session ended rather than asking for a login out of the blue."""
    raw = request.cookies.get(COOKIE_NAME, "")
    payload, dot, mac = raw.partition(".")
    if (
        not dot
        or len(raw) > 4096
        or not hmac.compare_digest(mac.encode(), _mac(web, payload).encode())
    ):
        return False
    try:
        return _decode(_unb64(payload)).kind != "anonymous"
    except (ValueError, msgspec.DecodeError):
        return False


def session_cookie(web: WebSettings, services: Services, session: Session) -> Cookie:
    return Cookie(
        key=COOKIE_NAME,
        value=sign(web, session),
        path=COOKIE_PATH,
        max_age=max(0, session.expires - int(time.time())),
        httponly=True,
        samesite="strict",
        secure=services.settings.public_url.lower().startswith("https://"),
    )


def clear_cookie(services: Services) -> Cookie:
    return Cookie(
        key=COOKIE_NAME,
        value="",
        path=COOKIE_PATH,
        max_age=0,
        httponly=True,
        samesite="strict",
        secure=services.settings.public_url.lower().startswith("https://"),
    )


def check_csrf(session: Session, form: dict[str, str]) -> None:
    """Refuse a form whose hidden CSRF field is missing or not this session's."""
    presented = form.get(CSRF_FIELD, "")
    if not presented or not hmac.compare_digest(presented.encode(), session.csrf.encode()):
        raise CsrfRefused
