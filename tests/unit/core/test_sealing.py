"""LMS API keys sealed at rest (core/sealing.py): an authenticated cipher,
several keys for rotation, plain values from before sealing still read."""

from __future__ import annotations

import pytest

from core.sealing import SEALED_PREFIX, Sealer, SealError, is_sealed

OLD = "old-key-0123456789-0123456789-0123456789"
NEW = "new-key-abcdefghij-abcdefghij-abcdefghij"
SECRET = "sk-live-acme-9f8e7d6c5b4a"


def test_a_sealed_value_holds_nothing_of_the_secret_and_opens_again() -> None:
    sealer = Sealer([NEW])
    sealed = sealer.seal(SECRET)
    assert is_sealed(sealed)
    assert SECRET not in sealed
    assert sealer.unseal(sealed) == SECRET
    assert sealer.seal(sealed) == sealed  # never sealed twice


def test_a_tampered_value_is_refused_not_misread() -> None:
    sealer = Sealer([NEW])
    sealed = sealer.seal(SECRET)
    body = sealed[len(SEALED_PREFIX) :]
    flipped = body[:20] + ("A" if body[20] != "A" else "B") + body[21:]
    with pytest.raises(SealError):
        sealer.unseal(SEALED_PREFIX + flipped)


def test_keys_rotate_newest_first_and_reseal_moves_to_the_newest() -> None:
    under_old = Sealer([OLD]).seal(SECRET)
    both = Sealer([NEW, OLD])
    assert both.unseal(under_old) == SECRET  # the old key still opens
    moved = both.reseal(under_old)
    assert Sealer([NEW]).unseal(moved) == SECRET  # the old key can now go
    with pytest.raises(SealError):
        Sealer([OLD]).unseal(moved)
    with pytest.raises(SealError):
        Sealer([NEW]).unseal(under_old)


def test_a_value_stored_before_sealing_reads_as_it_is_and_reseals() -> None:
    sealer = Sealer([NEW])
    assert sealer.unseal(SECRET) == SECRET
    assert sealer.unseal(sealer.reseal(SECRET)) == SECRET


def test_short_keys_are_refused_and_the_sealer_never_shows_them() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        Sealer(["short"])
    assert NEW not in repr(Sealer([NEW]))
