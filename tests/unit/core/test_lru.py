"""The capped cache every in-process cache is built on (core/lru.py)."""

from __future__ import annotations

import pytest

from core.lru import LruCache


def test_filled_past_its_cap_it_keeps_the_cap_and_drops_the_least_recent() -> None:
    cache: LruCache[int, str] = LruCache(3)
    for n in range(1000):
        cache.put(n, str(n))
    assert len(cache) == 3
    assert [n in cache for n in (996, 997, 998, 999)] == [False, True, True, True]


def test_a_read_keeps_an_entry() -> None:
    cache: LruCache[str, int] = LruCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent
    cache.put("c", 3)
    assert "a" in cache
    assert cache.get("b") is None


def test_pop_and_clear() -> None:
    cache: LruCache[str, int] = LruCache(2)
    cache.put("a", 1)
    assert cache.pop("a") == 1
    assert cache.pop("a") is None
    cache.put("b", 2)
    cache.clear()
    assert len(cache) == 0


def test_a_cache_holds_at_least_one_entry() -> None:
    with pytest.raises(ValueError, match="at least one"):
        LruCache(0)
