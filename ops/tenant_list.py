"""The tenant list of the admin API and the admin page: paged, sorted by
what needs a look, searchable by slug or name.

Its cost follows the tenants with work, not all of them: the figures are
read only for the tenants in the index of tenants with work
(shadow/work.py), which sort first; an idle tenant has nothing pending,
failed or held, so the rest follow in slug order, and only the page's rows
are read in full (by the shell, with `tenant_health`). A search reads the
names hash (one command).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import msgspec
from redis.asyncio import Redis

from shadow import Tenant, TenantStore
from shadow.work import TenantFigures, WorkIndex, read_figures

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "SORTS", "Sort", "TenantPage", "tenant_list"]

Sort = Literal["attention", "failed", "pending", "oldest_pending", "breaker", "slug"]
SORTS: tuple[str, ...] = get_args(Sort)
#: Rows per page when the caller names none; `MAX_LIMIT` at most.
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_INF = float("inf")


def _key(sort: Sort) -> Any:
    """Sort key of a tenant's figures, most in need of a look first."""

    def oldest(f: TenantFigures) -> float:
        return float(f.oldest_pending_ms) if f.oldest_pending_ms is not None else _INF

    def breaker(f: TenantFigures) -> int:
        return -int(f.breaker_tripped or f.held > 0)

    keys: dict[str, Any] = {
        "attention": lambda f: (breaker(f), -f.failed, -f.pending, oldest(f), f.tenant),
        "failed": lambda f: (-f.failed, -f.pending, f.tenant),
        "pending": lambda f: (-f.pending, oldest(f), f.tenant),
        "oldest_pending": lambda f: (oldest(f), -f.pending, f.tenant),
        "breaker": lambda f: (breaker(f), -f.held, -f.failed, f.tenant),
    }
    return keys[sort]


def _matches(q: str, slug: str, names: dict[str, str]) -> bool:
    return q in slug or q in names.get(slug, "").lower()


class TenantPage(msgspec.Struct, frozen=True):
    """One page of the list: its tenants in order, and where it is."""

    tenants: list[Tenant]
    total: int
    next_offset: int | None
    q: str


async def tenant_list(
    redis: Redis,
    store: TenantStore,
    *,
    sort: Sort = "attention",
    q: str = "",
    offset: int = 0,
    limit: int = DEFAULT_LIMIT,
) -> TenantPage:
    """One page of tenants in the order asked for (module docstring); the
    shells read each row's health (ops/views.py `tenant_health`)."""
    slugs = await store.slugs()
    q = q.strip().lower()
    if q:
        names = await store.names()
        slugs = [s for s in slugs if _matches(q, s, names)]
    if sort == "slug":
        ordered = slugs
    else:
        wanted = set(slugs)
        busy = [s for s in await WorkIndex(redis).tenants() if s in wanted]
        figures = await read_figures(redis, busy)
        first = [f.tenant for f in sorted(figures, key=_key(sort))]
        placed = set(first)
        ordered = first + [s for s in slugs if s not in placed]
    page = ordered[offset : offset + limit]
    tenants = [t for t in await store.get_many(page) if t is not None]
    following = offset + len(page)
    return TenantPage(
        tenants=tenants,
        total=len(ordered),
        next_offset=following if following < len(ordered) else None,
        q=q,
    )
