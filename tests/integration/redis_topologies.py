"""Real Redis topologies on free loopback ports, from Debian's redis-server and redis-cli.

``RedisClusterSet``: 3 primaries and 3 replicas (``--cluster-enabled yes``, created with
``redis-cli --cluster create … --cluster-replicas 1 --cluster-yes``), with a short node timeout so
a killed primary's replica takes over in a few seconds. ``SentinelSet``: 1 master, 2 replicas and
3 sentinels (``redis-server <conf> --sentinel``; Debian's ``redis-sentinel`` is the same binary
and its package may not be installed). Both start in a few seconds and stop every process they
started, also when starting fails half-way.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import redis
from redis.cluster import ClusterNode, RedisCluster

from tests.helpers import REDIS_SERVER, Process, free_port, wait_for

REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
# How soon a silent node counts as failed: short, so failover tests take seconds, not the
# default 15 s; long enough that a busy 2-core machine does not cause spurious failovers.
CLUSTER_NODE_TIMEOUT_MS = 2000
SENTINEL_DOWN_AFTER_MS = 2000
MASTER_NAME = "testmaster"


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too, both below the range the kernel
    hands out for port 0 and outgoing connections: those ports stay unbound for a while (a
    cluster created later), and another test's free_port() must not be given one of them."""
    return free_port(also_free=10000)


def _server(workdir: Path, port: int, *extra: str) -> Process:
    data = workdir / f"redis-{port}"
    data.mkdir(exist_ok=True)
    argv = [
        REDIS_SERVER,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(data),
        "--save", "",
        "--appendonly", "no",
        *extra,
    ]  # fmt: skip
    return Process(argv, port, workdir / f"redis-{port}.log")


class _Group:
    def __init__(self) -> None:
        self.processes: list[Process] = []

    def _start(self, proc: Process) -> Process:
        self.processes.append(proc)
        proc.start()
        return proc

    def stop(self) -> None:
        for proc in self.processes:
            if proc.proc is not None and proc.proc.poll() is None:
                proc.proc.kill()
                proc.proc.wait(5)


class RedisClusterSet(_Group):
    def __init__(self, workdir: Path, primaries: int = 3, replicas: int = 1):
        super().__init__()
        self.workdir = workdir
        self.ports = [cluster_port() for _ in range(primaries * (1 + replicas))]
        self.replicas = replicas

    def start(self) -> RedisClusterSet:
        try:
            for port in self.ports:
                self._start(
                    _server(
                        self.workdir,
                        port,
                        "--cluster-enabled", "yes",
                        "--cluster-config-file", f"nodes-{port}.conf",
                        "--cluster-node-timeout", str(CLUSTER_NODE_TIMEOUT_MS),
                        # A replica of a fresh, idle test cluster may count as too stale to take over.
                        "--cluster-replica-validity-factor", "0",
                    )
                )  # fmt: skip
            nodes = [f"127.0.0.1:{p}" for p in self.ports]
            created = subprocess.run(
                [
                    REDIS_CLI,
                    "--cluster",
                    "create",
                    *nodes,
                    "--cluster-replicas",
                    str(self.replicas),
                    "--cluster-yes",
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert created.returncode == 0, created.stdout[-2000:] + created.stderr[-2000:]
            wait_for(self._healthy, 30, 0.1, what="every cluster node to say cluster_state:ok")
        except BaseException:
            self.stop()
            raise
        return self

    def _healthy(self) -> bool:
        return all(self._state(port) == "ok" for port in self.live_ports())

    def _state(self, port: int) -> str:
        try:
            info = redis.Redis(port=port, socket_timeout=2).execute_command("CLUSTER INFO")
        except redis.RedisError as exc:
            return f"down ({exc})"
        return str(info.get("cluster_state", ""))

    def live_ports(self) -> list[int]:
        return [p.port for p in self.processes if p.proc is not None and p.proc.poll() is None]

    @property
    def url(self) -> str:
        """REDIS_URL with two seed nodes, as a user would give it."""
        return f"redis://127.0.0.1:{self.ports[0]},127.0.0.1:{self.ports[1]}"

    def env(self) -> dict[str, str]:
        return {"REDIS_CLUSTER": "true", "REDIS_URL": self.url}

    def client(self) -> RedisCluster:
        nodes = [ClusterNode("127.0.0.1", port) for port in self.live_ports()]
        return RedisCluster(startup_nodes=nodes, socket_timeout=5, socket_connect_timeout=2)

    def primary_for(self, key: str) -> int:
        """The port of the primary that serves ``key``'s slot now."""
        client = self.client()
        try:
            node = client.get_node_from_key(key)
            return int(node.port)
        finally:
            client.close()

    def kill_primary_for(self, key: str, wait: bool = True) -> int:
        """SIGKILL the primary serving ``key``; with ``wait``, wait until a replica serves its
        slot. Returns the killed port (``restart`` brings it back, as a replica of the new one)."""
        port = self.primary_for(key)
        proc = next(p for p in self.processes if p.port == port)
        assert proc.proc is not None
        proc.proc.kill()
        proc.proc.wait(5)
        if wait:
            self.wait_taken_over(key, port)
        return port

    def wait_taken_over(self, key: str, port: int) -> None:
        def promoted() -> bool:
            try:
                return self.primary_for(key) != port and self._healthy()
            except Exception:
                return False

        wait_for(promoted, 30, 0.2, what=f"a replica to take over from {port}")

    def restart(self, port: int) -> None:
        proc = next(p for p in self.processes if p.port == port)
        proc.start()
        wait_for(self._healthy, 30, 0.1, what="the cluster to be whole again")


class SentinelSet(_Group):
    def __init__(self, workdir: Path, replicas: int = 2, sentinels: int = 3):
        super().__init__()
        self.workdir = workdir
        self.master_port = free_port()
        self.replica_ports = [free_port() for _ in range(replicas)]
        self.sentinel_ports = [free_port() for _ in range(sentinels)]

    def start(self) -> SentinelSet:
        try:
            self._start(_server(self.workdir, self.master_port))
            for port in self.replica_ports:
                self._start(_server(self.workdir, port, "--replicaof", "127.0.0.1", str(self.master_port)))
            for port in self.sentinel_ports:
                conf = self.workdir / f"sentinel-{port}.conf"
                conf.write_text(
                    f"port {port}\nbind 127.0.0.1\ndir {self.workdir}\n"
                    f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} 2\n"
                    f"sentinel down-after-milliseconds {MASTER_NAME} {SENTINEL_DOWN_AFTER_MS}\n"
                    f"sentinel failover-timeout {MASTER_NAME} 10000\n"
                    f"sentinel parallel-syncs {MASTER_NAME} 2\n"
                )
                self._start(
                    Process(
                        [REDIS_SERVER, str(conf), "--sentinel"], port, self.workdir / f"sentinel-{port}.log"
                    )
                )
            wait_for(self._settled, 30, 0.1, what="replicas in sync and every sentinel seeing them")
        except BaseException:
            self.stop()
            raise
        return self

    def _settled(self) -> bool:
        for port in self.replica_ports:
            info = redis.Redis(port=port, socket_timeout=2).info("replication")
            if info.get("master_link_status") != "up":
                return False
        for port in self.sentinel_ports:
            try:
                found = redis.Redis(port=port, socket_timeout=2).execute_command(
                    "SENTINEL", "REPLICAS", MASTER_NAME
                )
            except redis.RedisError:
                return False
            if len(found) < len(self.replica_ports):
                return False
        return True

    def env(self) -> dict[str, str]:
        return {
            "REDIS_SENTINELS": ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports),
            "REDIS_SENTINEL_MASTER": MASTER_NAME,
        }

    def master_address(self) -> tuple[str, int]:
        for port in self.sentinel_ports:
            try:
                found: Any = redis.Redis(port=port, socket_timeout=2).execute_command(
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME
                )
            except redis.RedisError:
                continue
            return found[0].decode(), int(found[1])
        raise AssertionError("no sentinel answered")

    def client(self) -> redis.Redis:
        """A client of the current master, found through the sentinels (as the programs do)."""
        from redis.sentinel import Sentinel

        sentinel = Sentinel([("127.0.0.1", p) for p in self.sentinel_ports], socket_timeout=2)
        master: redis.Redis = sentinel.master_for(MASTER_NAME, socket_timeout=5, socket_connect_timeout=2)
        return master

    def kill_master(self, wait: bool = True) -> int:
        """SIGKILL the master; with ``wait``, wait until the sentinels have promoted a replica."""
        _host, port = self.master_address()
        proc = next(p for p in self.processes if p.port == port)
        assert proc.proc is not None
        proc.proc.kill()
        proc.proc.wait(5)
        if wait:
            self.wait_promoted(port)
        return port

    def wait_promoted(self, port: int) -> None:
        def promoted() -> bool:
            try:
                _h, new = self.master_address()
                role = redis.Redis(port=new, socket_timeout=2).info("replication").get("role")
                return new != port and role == "master"
            except redis.RedisError:
                return False

        wait_for(promoted, 40, 0.2, what="the sentinels to promote a replica")
