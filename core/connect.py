"""One place that turns a Redis URL into a client: plain, Sentinel or Cluster.

`REDIS_URL` (the shadow store) and `QUEUE_REDIS_URL` (the arq queue) take:

- `redis://[[user]:password@]host:port/db`, `rediss://...` (TLS), `unix://...`:
  one Redis, as redis-py's `from_url` reads it.
- `redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db]`
  (`rediss+sentinel://` for TLS to the Redis nodes): the primary that the
  Sentinels name for `service`, followed through failovers. The password is
  the Redis nodes'; `?sentinel_password=...` gives the Sentinels' own.
- `redis+cluster://[[user]:password@]host:port[,host:port...][/0]`
  (`rediss+cluster://` for TLS): a Redis Cluster, found from any of the
  nodes given. Cluster has one database, 0. Only the shadow store may live
  there: the arq queue needs a plain (or Sentinel-managed) Redis of its own,
  named by `QUEUE_REDIS_URL` (`check_queue_placement` refuses otherwise).

Every URL takes redis-py's query options (`?socket_timeout=5&...`), and
they win over the bridge's defaults: every client has a connect timeout, a
read timeout (`DEFAULT_OPTIONS`) and, for a plain URL, a capped pool, so a Redis
that hangs costs a request seconds, never forever (docs/operations.md,
"Redis timeouts"). The queue's arq settings carry the URL's options too
(arq's own `RedisSettings.from_dsn` drops them). A pub/sub subscription
gets a client of its own without the read timeout (`connect_listener`).

The shadow store is cluster-safe by construction: each tenant's keys share
the hash tag `{t:<tenant>}` (shadow/keys.py), so every Lua script and every
transaction of one tenant stays in one slot. redis-py 5's asyncio
`RedisCluster` lacks two things the bridge uses, which `BridgeRedisCluster`
adds:

- `pipeline(transaction=True)` (MULTI/EXEC): run instead as one Lua script
  that makes the same calls, atomic like MULTI; every key must be in one
  slot, or it is refused before anything is sent.
- a registered script called inside a pipeline (redis-py blocks EVALSHA in
  cluster pipelines): sent as EVAL with the script's body, so a node that
  lost its script cache (restart, failover) still runs it.

`connect` returns the cluster client typed as `Redis`: the store uses only
commands both clients share, with these additions.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlencode

import redis as redis_sync
from arq.connections import ArqRedis, RedisSettings
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.connection import BlockingConnectionPool, SSLConnection, parse_url
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.cluster import ClusterNode as SyncClusterNode
from redis.cluster import RedisCluster as SyncRedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, ResponseError
from redis.sentinel import Sentinel as SyncSentinel

from core.wire import with_fast_wire

__all__ = [
    "BridgeRedisCluster",
    "RedisUrl",
    "RedisUrlError",
    "check_queue_placement",
    "close_sentinels",
    "connect",
    "connect_listener",
    "connect_queue",
    "describe",
    "is_cluster",
    "parse",
    "persistence",
    "queue_settings",
]

#: Seconds to open a connection, seconds to wait for any answer.
SOCKET_CONNECT_TIMEOUT_S = 2.0
SOCKET_TIMEOUT_S = 3.0
DEFAULT_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": SOCKET_CONNECT_TIMEOUT_S,
    "socket_timeout": SOCKET_TIMEOUT_S,
}
#: Connections of one plain-URL client, and how long a command waits for one
#: of them to be free before it fails (a 503). A URL's `max_connections`
#: caps Sentinel and Cluster clients too, failing at once past the cap.
MAX_CONNECTIONS = 256
POOL_WAIT_S = 2.0

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")


class RedisUrlError(ValueError):
    """A Redis URL the bridge cannot use, or a layout it refuses."""


@dataclass(frozen=True)
class RedisUrl:
    """A parsed REDIS_URL / QUEUE_REDIS_URL."""

    kind: str  # "plain" | "sentinel" | "cluster"
    url: str
    hosts: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    tls: bool = False
    #: username, password and query options, typed as redis-py parses them.
    options: dict[str, Any] = field(default_factory=dict)


def parse(url: str) -> RedisUrl:
    """Split a URL of any of the three kinds (see the module docstring)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise RedisUrlError(f"not a Redis URL: {_redact(url)!r}")
    scheme = scheme.lower()
    if scheme not in CLUSTER_SCHEMES + SENTINEL_SCHEMES:
        return RedisUrl(kind="plain", url=url)
    netloc, _, path_query = rest.partition("/")
    path, _, query = path_query.partition("?")
    if "?" in netloc:  # no path: redis+cluster://host:port?opt=1
        netloc, _, query = netloc.partition("?")
    userinfo, at, hostlist = netloc.rpartition("@")
    hosts = tuple(_host_port(h, scheme) for h in hostlist.split(",") if h.strip())
    if not hosts:
        raise RedisUrlError(f"{scheme} URL names no host: {_redact(url)!r}")
    sentinel_password = None
    pairs = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name == "sentinel_password":
            sentinel_password = value
        else:
            pairs.append((name, value))
    # redis-py's own URL parser types the credentials and the query options.
    options: dict[str, Any] = dict(
        parse_url(f"redis://{userinfo}{at}placeholder:1/0?{urlencode(pairs)}")
    )
    for key in ("host", "port", "db"):
        options.pop(key, None)
    if sentinel_password is not None:
        options["sentinel_password"] = sentinel_password
    parts = [unquote(p) for p in path.split("/") if p]
    tls = scheme.startswith("rediss")
    if scheme in SENTINEL_SCHEMES:
        if not parts:
            raise RedisUrlError(
                f"a Sentinel URL names its service: {scheme}://host:port/<service>/<db>"
            )
        db = _db(parts[1] if len(parts) > 1 else "0", url)
        return RedisUrl("sentinel", url, hosts, parts[0], db, tls, options)
    db = _db(parts[0] if parts else "0", url)
    if db != 0 or len(parts) > 1:
        raise RedisUrlError(f"Redis Cluster has only database 0: {_redact(url)!r}")
    return RedisUrl("cluster", url, hosts, "", 0, tls, options)


def is_cluster(url: str) -> bool:
    return bool(url) and parse(url).kind == "cluster"


def describe(url: str) -> str:
    """The URL without its password, for logs and error messages."""
    return _redact(url)


def check_queue_placement(redis_url: str, queue_redis_url: str) -> None:
    """Refuse a layout that cannot work: arq's queue on a Redis Cluster.

    arq keeps its queue, job keys and results under fixed global names and
    moves them in MULTI/EXEC steps across them; on a cluster those keys land
    on different nodes. With the shadow store on a cluster, the queue needs
    a Redis of its own.
    """
    if queue_redis_url and is_cluster(queue_redis_url):
        raise RedisUrlError(
            "QUEUE_REDIS_URL must be a plain or Sentinel-managed Redis, not a Redis Cluster "
            f"({describe(queue_redis_url)}): arq's queue cannot be spread over slots"
        )
    if is_cluster(redis_url) and not queue_redis_url:
        raise RedisUrlError(
            f"REDIS_URL is a Redis Cluster ({describe(redis_url)}): the arq queue cannot "
            "live there; set QUEUE_REDIS_URL to a Redis of its own "
            "(redis://host:port/0 or redis+sentinel://...)"
        )


# -- async clients -------------------------------------------------------------------


def connect(url: str, **options: Any) -> Redis:
    """The shadow store's client for `url` (plain, Sentinel or Cluster).

    `options` go to the connections (e.g. `socket_connect_timeout=2`) over
    `DEFAULT_OPTIONS`; the URL's own options win over both. The caller closes
    the client with `aclose()`. No I/O happens here.
    """
    parsed = parse(url)
    options = {**DEFAULT_OPTIONS, **options}
    if parsed.kind == "plain":
        return _with_fast_wire(Redis.from_pool(_plain_pool(url, options)))
    if parsed.kind == "sentinel":
        client: Redis = _sentinel_master(parsed, options, _SentinelRedis)
        return _with_fast_wire(client)
    kwargs = {**options, **_connection_options(parsed)}
    if parsed.tls:
        kwargs["ssl"] = True
    return cast(
        Redis,
        BridgeRedisCluster(  # type: ignore[abstract]
            startup_nodes=[ClusterNode(host, port) for host, port in parsed.hosts],
            **kwargs,
        ),
    )


def _with_fast_wire(client: Redis) -> Redis:
    """The client's connections pack commands in C and check idle connections
    without a socket read (core.wire); the pool has made none yet, so each
    one it makes is of the new class."""
    pool = client.connection_pool
    pool.connection_class = with_fast_wire(pool.connection_class)
    return client


def connect_listener(url: str) -> Redis:
    """A client for a pub/sub subscription (the credential-change watcher,
    shadow/tenants.py): its own connections, the connect timeout kept but no
    read timeout, since a subscription is quiet for hours and a read timeout
    would drop it (and every cache it keeps honest) each time; TCP keepalive
    on. Commands go through the ordinary client."""
    client = connect(url, socket_keepalive=True)
    pool = getattr(client, "connection_pool", None)  # a cluster has none (and no watcher)
    if pool is not None:
        pool.connection_kwargs["socket_timeout"] = None
    return client


def connect_queue(url: str, **options: Any) -> ArqRedis:
    """An arq client of the queue's Redis (plain or Sentinel), with the same
    defaults and URL options as `connect`, for enqueueing and reading the
    queue outside a worker (API, CLI)."""
    parsed = parse(url)
    if parsed.kind == "cluster":
        raise RedisUrlError(f"the arq queue cannot live on a Redis Cluster ({describe(url)})")
    options = {**DEFAULT_OPTIONS, **options}
    if parsed.kind == "sentinel":
        queue: ArqRedis = _sentinel_master(parsed, options, _SentinelArqRedis)
        return queue
    return cast(ArqRedis, ArqRedis.from_pool(_plain_pool(url, options)))


def _plain_pool(url: str, options: dict[str, Any]) -> BlockingConnectionPool:
    """A capped pool that makes a command wait for a free connection (at most
    `POOL_WAIT_S`) rather than fail, and connects outside its lock."""
    return BlockingConnectionPool.from_url(
        url, **{"max_connections": MAX_CONNECTIONS, "timeout": POOL_WAIT_S, **options}
    )


def queue_settings(url: str) -> RedisSettings:
    """arq's `RedisSettings` for the queue's URL (plain or Sentinel), with
    what of the URL's options and `DEFAULT_OPTIONS` arq can take: the connect
    timeout, a connection cap the URL sets, TLS settings. (arq's
    `create_pool` sets no read timeout, and its pool fails at once past a
    cap, so none is imposed; a worker that should have a read timeout passes
    `connect_queue`'s client as arq's `redis_pool`.)"""
    parsed = parse(url)
    if parsed.kind == "cluster":
        raise RedisUrlError(f"the arq queue cannot live on a Redis Cluster ({describe(url)})")
    if parsed.kind == "plain":
        opts = {**DEFAULT_OPTIONS, **parse_url(url)}
        unix = opts.get("path") if url.lower().startswith("unix://") else None
        place: dict[str, Any] = (
            {"unix_socket_path": unix}
            if unix
            else {"host": opts.get("host") or "localhost", "port": int(opts.get("port") or 6379)}
        )
        tls = {k: opts[k] for k in _ARQ_TLS_OPTIONS if k in opts}
        return RedisSettings(
            **place,
            **tls,
            database=int(opts.get("db") or 0),
            username=opts.get("username"),
            password=opts.get("password"),
            ssl=opts.get("connection_class") is SSLConnection,
            conn_timeout=_whole_seconds(opts["socket_connect_timeout"]),
            max_connections=opts.get("max_connections"),
        )
    opts = {**DEFAULT_OPTIONS, **parsed.options}
    return RedisSettings(
        host=list(parsed.hosts),
        sentinel=True,
        sentinel_master=parsed.service,
        database=parsed.db,
        username=opts.get("username"),
        password=opts.get("password"),
        ssl=parsed.tls,
        conn_timeout=_whole_seconds(opts["socket_connect_timeout"]),
        max_connections=opts.get("max_connections"),
    )


#: TLS options arq's `RedisSettings` has, by the names redis-py's URLs use.
_ARQ_TLS_OPTIONS = ("ssl_keyfile", "ssl_certfile", "ssl_cert_reqs", "ssl_ca_certs")


def _whole_seconds(value: Any) -> int:
    """arq's `conn_timeout` is whole seconds: a fraction rounds up, never to 0."""
    return max(1, math.ceil(float(value)))


class _ConnectsOutsideTheLock:
    """Mixin for a redis-py asyncio pool: a new connection is opened outside
    the pool's lock. redis-py 5 opens it holding the lock, so while Redis
    hangs each request waits for every earlier one's connection to time
    out, and the hundredth waits a hundred timeouts. The lock guards the
    pool's lists; the connection taken from them is this caller's alone
    (redis-py's `BlockingConnectionPool`, which plain URLs get, connects
    outside its lock already)."""

    _lock: Any
    get_available_connection: Any
    ensure_connection: Any
    release: Any

    async def get_connection(self, command_name: Any = None, *keys: Any, **options: Any) -> Any:
        async with self._lock:
            connection = self.get_available_connection()
        try:
            await self.ensure_connection(connection)
        except BaseException:
            await self.release(connection)
            raise
        return connection


class _SentinelPool(_ConnectsOutsideTheLock, SentinelConnectionPool):
    pass


class _ClosesSentinels:
    """A Sentinel-managed client that also closes its Sentinel connections."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)  # type: ignore[misc]
        await close_sentinels(self)


async def close_sentinels(client: Any) -> None:
    """Close the connections to the Sentinels behind a Sentinel-managed
    client (redis-py's `aclose` leaves them open); nothing for other clients."""
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    for sentinel in getattr(manager, "sentinels", ()):
        await sentinel.aclose()


class _SentinelRedis(_ClosesSentinels, Redis):  # type: ignore[misc]
    pass


class _SentinelArqRedis(_ClosesSentinels, ArqRedis):  # type: ignore[misc]
    pass


def _sentinel_master(parsed: RedisUrl, extra: dict[str, Any], redis_class: type[Any]) -> Any:
    """The client of the primary the Sentinels name; closing it closes them too.
    The URL's options win over `extra`, as redis-py's `from_url` has it."""
    options = {**extra, **_connection_options(parsed), "db": parsed.db}
    sentinel_password = options.pop("sentinel_password", None)
    sentinel_kwargs = {
        k: v for k, v in options.items() if k in ("socket_timeout", "socket_connect_timeout")
    }
    if sentinel_password:
        sentinel_kwargs["password"] = sentinel_password
    manager = Sentinel(  # type: ignore[no-untyped-call]
        list(parsed.hosts), sentinel_kwargs=sentinel_kwargs, **options
    )
    return manager.master_for(
        parsed.service, redis_class=redis_class, connection_pool_class=_SentinelPool
    )


def _connection_options(parsed: RedisUrl) -> dict[str, Any]:
    options = dict(parsed.options)
    if options.pop("connection_class", None) is SSLConnection:
        options["ssl"] = True
    return options


# -- the cluster client ------------------------------------------------------------

# Runs the commands of a transaction in one atomic step, as MULTI/EXEC would.
# ARGV: for each command, its argument count, then the command and its arguments.
# KEYS: every key the commands touch (they route the call; all share one slot).
# A failing command gives its error in its place; the others still run.
_MULTI = """
local out, i, n = {}, 1, 0
while i <= #ARGV do
  local argc = tonumber(ARGV[i])
  n = n + 1
  out[n] = redis.pcall(unpack(ARGV, i + 1, i + argc))
  i = i + argc + 1
end
return out
"""


class BridgeRedisCluster(RedisCluster):
    """redis-py's asyncio `RedisCluster` with single-slot transactions and
    scripts in pipelines (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Connections pack commands in C (core.wire): the nodes given and
        # the nodes discovered later (made from connection_kwargs).
        fast = with_fast_wire(self.connection_kwargs["connection_class"])
        self.connection_kwargs["connection_class"] = fast
        for node in self.nodes_manager.startup_nodes.values():
            node.connection_class = fast
        self._bridge_scripts: dict[str, Any] = {}
        self._bridge_multi = self.register_script(_MULTI)

    async def initialize(self) -> RedisCluster:
        # "cannot be connected" is a connection problem to the bridge (a 503),
        # not a programming error.
        try:
            return await super().initialize()
        except RedisClusterException as exc:
            if "cannot be connected" in str(exc):
                raise RedisConnectionError(str(exc)) from exc
            raise

    def register_script(self, script: Any) -> Any:
        registered = super().register_script(script)  # type: ignore[misc]
        self._bridge_scripts[registered.sha] = registered.script
        return registered

    def pipeline(
        self, transaction: Any | None = None, shard_hint: Any | None = None
    ) -> ClusterPipeline:
        if shard_hint:
            raise RedisClusterException("shard_hint is not supported in cluster mode")
        if transaction:
            return _SlotTransaction(self)  # type: ignore[abstract]
        return _ScriptPipeline(self)  # type: ignore[abstract]

    async def keys(self, pattern: Any = "*", **kwargs: Any) -> list[Any]:
        """KEYS of every primary (redis-py asks one node): for tests and ops
        tools only, as on a single Redis."""
        found: list[Any] = []
        await self.initialize()
        for node in self.get_primaries():
            found += await self.execute_command("KEYS", pattern, target_nodes=node, **kwargs)
        return found


class _ScriptPipeline(ClusterPipeline):
    """A cluster pipeline that also carries registered scripts' calls.

    `Script(..., client=pipe)` does `await pipe.evalsha(...)`: redis-py's
    cluster pipeline blocks EVALSHA, and awaiting it would empty the stack.
    """

    def __await__(self) -> Generator[Any, None, ClusterPipeline]:
        return self._itself().__await__()

    async def _itself(self) -> ClusterPipeline:
        return self

    def evalsha(self, sha: Any, numkeys: int, *keys_and_args: Any) -> Any:
        client = cast(BridgeRedisCluster, self._client)
        script = client._bridge_scripts.get(sha if isinstance(sha, str) else sha.decode())
        if script is None:
            return self.execute_command("EVALSHA", sha, numkeys, *keys_and_args)
        # EVAL, not EVALSHA: a node that lost its script cache still runs it.
        return self.execute_command("EVAL", script, numkeys, *keys_and_args)


_SKIP_OPTIONS = ("keys", "target_nodes", "_never_decode", "EMPTY_RESPONSE", "NEVER_DECODE")


class _SlotTransaction(_ScriptPipeline):
    """`pipeline(transaction=True)` on a cluster: the queued commands run as
    one Lua script on the node of their slot (atomic, like MULTI/EXEC)."""

    async def execute(
        self, raise_on_error: bool = True, allow_redirections: bool = True
    ) -> list[Any]:
        stack, self._command_stack = self._command_stack, []
        if not stack:
            return []
        client = cast(BridgeRedisCluster, self._client)
        await client.initialize()
        route: dict[Any, None] = {}
        argv: list[Any] = []
        for cmd in stack:
            for key in await client.commands_parser.get_keys(*cmd.args) or ():
                route[key] = None
            argv.append(len(cmd.args))
            argv.extend(cmd.args)
        if not route:
            raise RedisClusterException("a transaction on Redis Cluster needs a key to route it")
        slots = {client.keyslot(key) for key in route}
        if len(slots) != 1:
            raise RedisClusterException(
                "a transaction on Redis Cluster must keep to one hash slot; these keys span "
                f"{len(slots)}: {[k.decode() if isinstance(k, bytes) else k for k in route]}"
            )
        raw = await client._bridge_multi(keys=list(route), args=argv)
        results: list[Any] = []
        for cmd, value in zip(stack, raw, strict=True):
            if isinstance(value, ResponseError):
                if raise_on_error:
                    raise value
                results.append(value)
                continue
            callback = client.response_callbacks.get(str(cmd.args[0]).upper())
            options = {k: v for k, v in cmd.kwargs.items() if k not in _SKIP_OPTIONS}
            results.append(callback(value, **options) if callback else value)
        return results


# -- persistence (synchronous: read once at start-up) -------------------------------


def persistence(url: str, timeout: float = 2.0) -> list[tuple[str, str | None, str | None]]:
    """(node, appendonly, save) of every primary behind `url`: the one Redis,
    the Sentinel-named primary, or each primary of a cluster."""
    parsed = parse(url)
    opts = {"socket_connect_timeout": timeout, "socket_timeout": timeout}
    if parsed.kind == "plain":
        client = redis_sync.Redis.from_url(url, **opts)
        try:
            return [(describe(url), *_config(client))]
        finally:
            client.close()
    base = _connection_options(parsed)
    if parsed.kind == "sentinel":
        base.pop("sentinel_password", None)
        manager = SyncSentinel(  # type: ignore[no-untyped-call]
            list(parsed.hosts),
            sentinel_kwargs={**opts, **_sentinel_auth(parsed)},
            **{**base, **opts, "db": parsed.db},
        )
        host, port = manager.discover_master(parsed.service)  # type: ignore[no-untyped-call]
        master = manager.master_for(parsed.service)  # type: ignore[no-untyped-call]
        try:
            return [(f"{parsed.service} ({host}:{port})", *_config(master))]
        finally:
            master.close()
            for sentinel in manager.sentinels:
                sentinel.close()
    cluster = SyncRedisCluster(
        startup_nodes=[SyncClusterNode(h, p) for h, p in parsed.hosts],  # type: ignore[no-untyped-call]
        **{**base, **opts},
    )
    try:
        return [
            (node.name, *_config(cluster.get_redis_connection(node)))
            for node in cluster.get_primaries()
        ]
    finally:
        cluster.close()


def _sentinel_auth(parsed: RedisUrl) -> dict[str, Any]:
    password = parsed.options.get("sentinel_password")
    return {"password": password} if password else {}


def _config(client: redis_sync.Redis) -> tuple[str | None, str | None]:
    aof = dict(client.config_get("appendonly")).get("appendonly")  # type: ignore[arg-type]
    save = dict(client.config_get("save")).get("save")  # type: ignore[arg-type]
    return _str(aof), _str(save)


def _str(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


# -- URL helpers -------------------------------------------------------------------


def _host_port(text: str, scheme: str) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        return text.strip(), 26379 if scheme in SENTINEL_SCHEMES else 6379
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise RedisUrlError(f"bad host:port {text!r} in a {scheme} URL") from None


def _db(text: str, url: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise RedisUrlError(f"bad database number {text!r} in {_redact(url)!r}") from None


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    netloc, slash, tail = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if not at:
        return url
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}{sep}{user}{':***' if colon else ''}@{hosts}{slash}{tail}"
