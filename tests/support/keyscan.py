"""Every key and value of a Redis database as bytes, whatever the type:
what a test searches to show that nothing of a tenant or a person is left."""

from __future__ import annotations

from redis.asyncio import Redis


async def every_key_and_value(redis: Redis) -> list[bytes]:
    """Each key name, then each of its members, fields, values and stream
    entries, one item per piece (SCAN, so it works on any size)."""
    found: list[bytes] = []
    async for key in redis.scan_iter(count=1000):
        found.append(key)
        kind = (await redis.type(key)).decode()
        if kind == "string":
            found.append(await redis.get(key) or b"")
        elif kind == "hash":
            for field, value in (await redis.hgetall(key)).items():  # type: ignore[misc]
                found += [field, value]
        elif kind == "set":
            found += list(await redis.smembers(key))  # type: ignore[misc]
        elif kind == "zset":
            found += list(await redis.zrange(key, 0, -1))
        elif kind == "list":
            found += list(await redis.lrange(key, 0, -1))  # type: ignore[misc]
        elif kind == "stream":
            for entry_id, fields in await redis.xrange(key):
                found.append(entry_id)
                for field, value in fields.items():
                    found += [field, value]
        elif kind != "none":  # "none": it expired (or went) since the scan named it
            raise AssertionError(f"a key of a type the scan does not read: {kind}")
    return found


async def traces_of(redis: Redis, *needles: str) -> list[bytes]:
    """The keys and values that contain any of `needles` (ignoring case)."""
    wanted = [n.lower().encode() for n in needles]
    return [
        item for item in await every_key_and_value(redis) if any(w in item.lower() for w in wanted)
    ]
