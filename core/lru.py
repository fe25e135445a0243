"""A dict with a size cap: what every in-process cache is built on.

A cache keyed by anything a request names (a tenant slug, a token id) grows
with the traffic unless it is capped, and a stranger choosing the keys then
chooses how much memory the process keeps (docs/operations.md, "Bounded
memory"). At the cap the least recently used entry goes.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

__all__ = ["LruCache"]

K = TypeVar("K")
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """At most `cap` entries; `get` and `put` make an entry the most recent."""

    __slots__ = ("_data", "cap")

    def __init__(self, cap: int) -> None:
        if cap < 1:
            raise ValueError("an LRU cache holds at least one entry")
        self.cap = cap
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        if len(self._data) > self.cap:
            self._data.popitem(last=False)

    def pop(self, key: K) -> V | None:
        return self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data
