"""One-time messages of the admin page, kept on the server.

Every form answers with a redirect (Post/Redirect/Get); what the next page
must say (and a just-issued SCIM token or admin key, the one time it is
shown) waits in Redis under the session (`keys.web_flash`) and is deleted as
it is read. A reload, or Back, finds nothing there: the secret is never shown
twice and no form is ever sent again. Each message names the section of the
page it is about, and the page shows it inside that section, next to the
control that caused it (docs/admin-page.md).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from api.services import Services
from api.web.session import Session
from shadow import keys

__all__ = ["FLASH_TTL_S", "Flash", "pop_flashes", "push_flash"]

#: A message (or a secret) not picked up by then is gone.
FLASH_TTL_S = 600

Tone = Literal["good", "warn", "bad", "info"]


class Flash(msgspec.Struct, frozen=True, kw_only=True):
    """One message for the next page of this session."""

    #: The id of the page section it belongs in (`tokens`, `breaker`, ...).
    section: str
    tone: Tone = "good"
    text: str
    #: A secret to show this once (a new SCIM token or admin key).
    secret: str | None = None
    secret_name: str | None = None
    #: What a form should be filled with again (a refused draft), by field name.
    form: dict[str, str] = msgspec.field(default_factory=dict)
    #: Anything else the section shows once (a mapping preview's result).
    data: dict[str, Any] = msgspec.field(default_factory=dict)


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Flash).decode


async def push_flash(services: Services, session: Session, flash: Flash) -> None:
    if not session.sid:
        return
    key = keys.web_flash(session.sid)
    async with services.redis.pipeline(transaction=True) as pipe:
        pipe.rpush(key, _encode(flash))
        pipe.expire(key, FLASH_TTL_S)
        await pipe.execute()


async def pop_flashes(services: Services, session: Session | None) -> dict[str, list[Flash]]:
    """This session's waiting messages by section, deleted as they are read."""
    if session is None or not session.sid:
        return {}
    key = keys.web_flash(session.sid)
    async with services.redis.pipeline(transaction=True) as pipe:
        pipe.lrange(key, 0, -1)
        pipe.delete(key)
        raw, _ = await pipe.execute()
    found: dict[str, list[Flash]] = {}
    for item in raw:
        try:
            flash = _decode(item)
        except msgspec.DecodeError:
            continue
        found.setdefault(flash.section, []).append(flash)
    return found
