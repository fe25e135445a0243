"""The admin page's own settings, read once from the environment.

`BRIDGE_SESSION_SECRET` signs the session cookie. Without it each process
draws a random key at start: sessions then end when the process restarts
and do not carry from one API process to another, so set the same secret
on every API process behind a load balancer.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping

import msgspec

__all__ = ["SESSION_SECRET_ENV", "WebSettings", "load_web_settings"]

SESSION_SECRET_ENV = "BRIDGE_SESSION_SECRET"
#: A session lasts this long from login, whatever happens in between.
SESSION_TTL_S = 8 * 3600
#: The anonymous session that carries the login form's CSRF token.
LOGIN_TTL_S = 3600


class WebSettings(msgspec.Struct, frozen=True, kw_only=True):
    session_secret: bytes
    session_ttl_s: int = SESSION_TTL_S
    login_ttl_s: int = LOGIN_TTL_S

    def __repr__(self) -> str:  # never the secret in a log line or traceback
        return f"WebSettings(session_ttl_s={self.session_ttl_s})"


def load_web_settings(env: Mapping[str, str] | None = None) -> WebSettings:
    env = os.environ if env is None else env
    secret = env.get(SESSION_SECRET_ENV, "")
    if secret and len(secret) < 16:
        raise ValueError(f"{SESSION_SECRET_ENV} must be at least 16 characters")
    return WebSettings(
        session_secret=secret.encode() if secret else secrets.token_bytes(32),
    )
