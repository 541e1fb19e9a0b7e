"""The one place that builds Redis clients: standalone, Sentinel or Cluster, from RedisSettings.

Bridge and dashboard (worker, relay, sessions, boot and pre-start checks, healthcheck) all get
their client from ``connect``, so nothing else needs to know the mode. Each mode is redis-py's
own: ``Redis.from_url``, ``Sentinel(...).master_for`` (asks the Sentinels for the master on
every new connection, so a promoted replica is found after a failover) and ``RedisCluster``
(routes each command by its key's slot and refreshes the slot map after a failover).

The server version check (bridge/server_versions.py) runs on every new connection in every
mode: for a cluster, redis-py's own connect hook has already done the handshake, so the check
is handed only its verifying half.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable
from typing import Any

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.commands.core import Script
from redis.connection import Encoder
from redis.exceptions import (
    ClusterDownError,
    CrossSlotTransactionError,
    InvalidPipelineStack,
    RedisClusterException,
    TryAgainError,
)
from redis.retry import Retry
from redis.sentinel import Sentinel

from bridge.contract.env import RedisSettings
from bridge.contract.server_versions import RedisVersionCheck

# How each client was made, so that ``with_timeout`` can make one like it (the bridge's last
# status write at stop must not wait out the usual timeouts, or a cluster's retries).
_recipes: weakref.WeakKeyDictionary[Any, tuple[RedisSettings, RedisVersionCheck | None, dict[str, Any]]]
_recipes = weakref.WeakKeyDictionary()

# redis-py's cluster raises RedisClusterException, which is no RedisError, when no node can be
# reached at all or a slot has no node; a cluster still forming, or between a primary's failure
# and its replica's promotion, answers CLUSTERDOWN (or TRYAGAIN while a slot moves). For the
# callers that retry, all of these are Redis being away, not a refusal of what was sent.
UNREACHABLE: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    RedisClusterException,
    ClusterDownError,
    TryAgainError,
)
ERRORS: tuple[type[Exception], ...] = (redis.RedisError, RedisClusterException)

# A cluster's connection errors are retried this many times, refreshing the slot map in between
# (redis-py's default is 3 with up to a few seconds' backoff); a caller's own loop retries too.
CLUSTER_RETRIES = 2


def connect(
    where: RedisSettings | str, version_check: RedisVersionCheck | None = None, **options: Any
) -> Any:
    """A client for ``where`` (settings, or a plain URL meaning a standalone server).

    ``options`` are redis-py connection options (timeouts, ``decode_responses``, ...), the same
    in every mode. The result is a ``redis.Redis`` (standalone, Sentinel) or a ``RedisCluster``;
    both offer the commands, pipelines (``transaction=False``), scripts and pub/sub used here.
    """
    settings = RedisSettings(url=where, where="") if isinstance(where, str) else where
    client: Any
    if settings.mode == "sentinel":
        client = _sentinel_master(settings, version_check, options)
    elif settings.mode == "cluster":
        client = _cluster(settings, version_check, options)
    else:
        client = redis.Redis.from_url(settings.url, redis_connect_func=version_check, **options)
    _recipes[client] = (settings, version_check, options)
    return client


def _sentinel_master(
    settings: RedisSettings, version_check: RedisVersionCheck | None, options: dict[str, Any]
) -> redis.Redis:
    sentinel_options: dict[str, Any] = {k: v for k, v in options.items() if k.startswith("socket_")}
    if settings.sentinel_password:
        sentinel_options["password"] = settings.sentinel_password
    sentinel = Sentinel(list(settings.sentinels), sentinel_kwargs=sentinel_options)
    assert settings.sentinel_master is not None
    master: redis.Redis = sentinel.master_for(
        settings.sentinel_master,
        password=settings.password,
        db=settings.db,
        redis_connect_func=version_check,
        **options,
    )
    return master


def _cluster(
    settings: RedisSettings, version_check: RedisVersionCheck | None, options: dict[str, Any]
) -> ClusterClient:
    # redis-py passes no health_check_interval to a cluster's nodes (not among its allowed keys),
    # and deprecates retry_on_timeout there (its own retry covers timeouts).
    kept = {k: v for k, v in options.items() if k not in ("health_check_interval", "retry_on_timeout")}
    url = redis.connection.parse_url(settings.url)
    nodes = [ClusterNode(host, port) for host, port in settings.seeds]
    # RedisCluster runs its own handshake first, then this hook.
    hook = version_check.verify if version_check is not None else None

    def make() -> RedisCluster:
        return RedisCluster(
            startup_nodes=nodes,
            username=url.get("username"),
            password=url.get("password"),
            ssl=settings.url.startswith("rediss://"),
            redis_connect_func=hook,
            retry=Retry(ExponentialWithJitterBackoff(base=0.1, cap=1.0), retries=CLUSTER_RETRIES),
            **kept,
        )

    return ClusterClient(
        make,
        hook,
        Encoder(
            kept.get("encoding", "utf-8"),
            kept.get("encoding_errors", "strict"),
            kept.get("decode_responses", False),
        ),
    )


def _as_redis_errors(call: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(call)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except (CrossSlotTransactionError, InvalidPipelineStack):
            raise  # mistakes in the calling code, not Redis being away
        except RedisClusterException as exc:
            raise redis.ConnectionError(str(exc)) from exc

    return run


class _Pipeline:
    """A cluster pipeline whose ``execute`` fails like a standalone one when no node answers."""

    def __init__(self, pipeline: Any):
        self._pipeline = pipeline
        self.execute = _as_redis_errors(pipeline.execute)

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._pipeline, name)
        if not callable(found):
            return found

        def queue(*args: Any, **kwargs: Any) -> Any:
            queued = found(*args, **kwargs)
            return self if queued is self._pipeline else queued  # chained calls stay wrapped

        return queue


class ClusterClient:
    """A RedisCluster made on first use, and again on each use until that works, whose failures
    are RedisErrors.

    ``RedisCluster()`` asks its seed nodes for the slot map at once and raises when none answers,
    where a ``redis.Redis`` would connect on its first command: so a bridge or dashboard started
    while the cluster is down would fail to start. And with every node down, its commands raise
    RedisClusterException, which is no RedisError. Here both are ``redis.ConnectionError``, which
    every caller already handles as Redis being away (as with a standalone Redis that is down).
    """

    def __init__(self, make: Callable[[], RedisCluster], hook: Any, encoder: Encoder):
        self._make = make
        self._client: RedisCluster | None = None
        self._lock = threading.Lock()
        self._encoder = encoder
        # What server_versions.version_check_of looks for, known without connecting.
        self.user_on_connect_func = hook

    def cluster(self) -> RedisCluster:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    try:
                        self._client = self._make()
                    except RedisClusterException as exc:
                        raise redis.ConnectionError(str(exc)) from exc
        return self._client

    def __getattr__(self, name: str) -> Any:
        found = _as_redis_errors(getattr)(self.cluster(), name)
        if name == "pipeline":
            return lambda *args, **kwargs: _Pipeline(found(*args, **kwargs))
        return _as_redis_errors(found) if callable(found) else found

    def get_encoder(self) -> Encoder:
        return self._encoder

    def register_script(self, script: str) -> Script:
        """A script that runs on this cluster once it is reachable (nothing is sent now)."""
        return Script(self, script)  # type: ignore[arg-type]  # it only needs get_encoder and evalsha

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def made(client: Any) -> bool:
    """Whether ``connect`` made ``client`` (so ``with_timeout`` can make another like it)."""
    try:
        return client in _recipes
    except TypeError:  # not weakly referable: certainly not one of ours
        return False


def with_timeout(client: Any, seconds: float) -> Any:
    """A client like ``client`` (same servers, same credentials) that gives up after ``seconds``.

    A client this module did not make (fakeredis in tests) is returned as it is.
    """
    if not made(client):
        return client
    recipe = _recipes[client]
    settings, version_check, options = recipe
    changed = dict(options, socket_timeout=seconds, socket_connect_timeout=seconds)
    return connect(settings, version_check, **changed)


def is_cluster(client: Any) -> bool:
    return isinstance(client, (RedisCluster, ClusterClient))


def subscriber(client: Any, *, fresh: bool = False, **options: Any) -> Any:
    """A pub/sub object on ``client``.

    In a cluster a plain SUBSCRIBE on any node hears a PUBLISH made on any other (the cluster bus
    forwards it), so one connection to one node is enough; redis-py picks the node that owns the
    first channel's slot. After a failover that node may be gone while redis-py's slot map still
    names it: with ``fresh`` (a caller resubscribing after an error) the map is refreshed first.
    """
    if fresh and is_cluster(client):
        try:
            client.nodes_manager.initialize()
        except RedisClusterException as exc:  # no node reachable: as a standalone Redis that is down
            raise redis.ConnectionError(str(exc)) from exc
    return client.pubsub(**options)
