"""Secrets sealed at rest: LMS API keys are stored encrypted, never in plain
text, so no AOF file, snapshot or replica of Redis holds one.

`Sealer` wraps `cryptography`'s MultiFernet (AES-128-CBC with an HMAC-SHA256
tag: authenticated, so a tampered value is refused rather than misread).
`BRIDGE_SECRET_KEY` holds one key, or several separated by commas, newest
first: values are sealed under the newest and unsealed under any, so keys
rotate without downtime (`scim-bridge tenant reseal` re-seals every tenant
under the newest). Each key is at least 32 random characters; the Fernet key
is derived from it with SHA-256.

Only the processes that call the LMS (the worker, `doctor`) unseal.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

__all__ = ["MIN_KEY_LENGTH", "SEALED_PREFIX", "SealError", "Sealer", "is_sealed"]

#: Marks a sealed value, so a stored plain value (from before sealing) is
#: told apart and sealed when next saved or re-sealed.
SEALED_PREFIX = "sealed:"
MIN_KEY_LENGTH = 32


class SealError(ValueError):
    """A sealed value that no configured key opens (or no key is configured)."""


def is_sealed(value: str) -> bool:
    return value.startswith(SEALED_PREFIX)


class Sealer:
    """Seals and unseals secrets under the configured keys (newest first)."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        for key in keys:
            if len(key) < MIN_KEY_LENGTH:
                raise ValueError(f"each key needs at least {MIN_KEY_LENGTH} characters")
        self._fernet = MultiFernet([Fernet(_derive(key)) for key in keys])

    def __repr__(self) -> str:
        return "Sealer(<keys redacted>)"

    def seal(self, secret: str) -> str:
        """The secret sealed under the newest key; an already sealed value as it is."""
        if is_sealed(secret):
            return secret
        return SEALED_PREFIX + self._fernet.encrypt(secret.encode()).decode("ascii")

    def unseal(self, stored: str) -> str:
        """The secret; a value stored before sealing comes back as it is."""
        if not is_sealed(stored):
            return stored
        try:
            return self._fernet.decrypt(stored[len(SEALED_PREFIX) :].encode("ascii")).decode()
        except (InvalidToken, UnicodeError) as exc:
            raise SealError("no configured BRIDGE_SECRET_KEY opens this sealed value") from exc

    def reseal(self, stored: str) -> str:
        """The value sealed under the newest key (plain values get sealed)."""
        if not is_sealed(stored):
            return self.seal(stored)
        try:
            token = self._fernet.rotate(stored[len(SEALED_PREFIX) :].encode("ascii"))
        except InvalidToken as exc:
            raise SealError("no configured BRIDGE_SECRET_KEY opens this sealed value") from exc
        return SEALED_PREFIX + token.decode("ascii")


def _derive(key: str) -> bytes:
    return base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest())
