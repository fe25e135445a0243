"""Every in-process cache of the store is capped (core/lru.py): a stranger's
guesses or a great many tenants never grow a process past its caps, and a
flood of unknown names never pushes live credentials out."""

from __future__ import annotations

import secrets

from redis.asyncio import Redis

from shadow import ResourceStore, Tenant, TenantStore, keys
from tests.integration.shadow.test_shadow_store import watching


def junk_token() -> str:
    """A token of the right shape that no tenant issued."""
    return f"scimb_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}"


async def get_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("get", "hget"))


async def test_credential_caches_stay_within_their_caps(redis: Redis) -> None:
    store = TenantStore(redis, cache_ttl_s=60, cache_entries=20, miss_entries=10)
    tokens = {}
    for n in range(30):
        await store.create(Tenant(slug=f"t{n}", name="T", lms_url="u", lms_api_key="k"))
        tokens[f"t{n}"] = await store.issue_token(f"t{n}")
    async with watching(store):
        for slug, issued in tokens.items():
            assert await store.authenticate(slug, issued.token) == issued.token_id
        for n in range(200):
            assert await store.credentials(f"nosuch{n}", junk_token()) == (None, None)
            assert (await store.credentials("t29", junk_token()))[1] is None
        assert store.cache_sizes() == {"tenants": 20, "tokens": 20, "misses": 10, "last_used": 20}
        # The misses have their own cap: the live tokens are still cached (the
        # record removed behind the cache's back, which no revocation does).
        await redis.hdel(keys.tokens("t15"), tokens["t15"].token_id)  # type: ignore[misc]
        assert await store.authenticate("t15", tokens["t15"].token) == tokens["t15"].token_id


async def test_a_malformed_slug_or_token_is_refused_before_any_lookup(redis: Redis) -> None:
    store = TenantStore(redis, cache_ttl_s=60)
    await store.create(Tenant(slug="acme", name="A", lms_url="u", lms_api_key="k"))
    issued = await store.issue_token("acme")
    async with watching(store):
        before = await get_calls(redis)
        for bad_slug in ("ACME", "a" * 64, "acme\n", "-acme", "ac me", ""):
            assert await store.credentials(bad_slug, issued.token) == (None, None)
        for bad_token in ("junk", "scimb_0123456789abcdef_short", issued.token + "!", "x" * 500):
            assert await store.credentials("acme", bad_token) == (None, None)
        assert await get_calls(redis) == before
        assert store.cache_sizes()["misses"] == 0


async def test_the_recent_documents_stay_within_their_cap(redis: Redis) -> None:
    store = ResourceStore(redis, recent_size=10)
    for n in range(40):
        doc = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": f"u{n}"}
        await store.write("acme", "u", f"u{n}", "create", doc)
        await store.get("acme", "u", f"nosuch{n}")
    assert len(store._recent) == 10
