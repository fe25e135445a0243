"""Text from outside never names another key (docs/architecture.md, invariant 10): every
fixed key under a kind's prefix is something no resource id can be."""

from __future__ import annotations

import pytest

from shadow import keys

T = "acme"


@pytest.mark.parametrize(
    "key",
    [
        keys.resource_ids(T, "u"),
        keys.resource_ids(T, "g"),
        keys.unique_index(T, "u"),
        keys.gone_users(T),
        keys.external_id_index(T, "u", "ext"),
        keys.display_name_index(T, "Team"),
        keys.user_groups(T, "u-1"),
        keys.members(T, "g-1"),
    ],
)
def test_no_fixed_key_under_a_kind_can_be_read_as_a_resource(key: str) -> None:
    for kind in ("u", "g"):
        head = f"{keys.prefix(T)}{kind}:"
        if key.startswith(head):
            assert not keys.is_resource_id(key[len(head) :]), key


@pytest.mark.parametrize(
    "text",
    ["ids", "gone", "u-1:groups", "x:1", "", " ", "a b", "{t:b}", "a" * 65, None, 7, "é"],
)
def test_text_that_could_name_another_key_is_not_an_id(text: object) -> None:
    assert not keys.is_resource_id(text)


@pytest.mark.parametrize("text", ["6f1c2c9e-1111-4444-8888-123456789abc", "u-1", "old-id"])
def test_the_ids_the_bridge_and_its_tests_use_are_ids(text: str) -> None:
    assert keys.is_resource_id(text)
