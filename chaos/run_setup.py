"""The run's setup: what one node holds against the Redis under test, from set-up to close.

A local or master node opens it from its profile (:func:`open_setup`): profile validated, chaos
against a remote target refused without the opt-in, embedded topology started, fault proxy opened,
admin connected, the traffic's access probed and every scheduled fault checked, all before any
user spawns. A worker adopts its master's (chaos/distributed/worker.py). Closing it stops what it
started. Bad input is a :class:`~chaos.settings.SetupError` with one line.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.cluster import RedisCluster

from chaos.faults import CommandRefused, FaultTarget, MissingPrerequisite, build_fault, fault_class
from chaos.faults.http import HttpParams
from chaos.profile import load_profile
from chaos.service import ServiceUnderTest, open_service
from chaos.settings import URL_OPTION, Settings, SetupError
from config.loader import ProfileError
from config.proxy import ProxySettings
from config.redact import redact_url
from config.schema import Profile
from recovery.environment import RunEnvironment
from scenarios.run import IntegrityResult, PackRun, RedisClient
from targets.access import Access, AccessError, admin_url, resolve_access, scheme_error
from targets.clients import is_cluster_url
from targets.connect import ConnectError, open_client
from targets.embedded import EmbeddedRedisError
from targets.greenlets import describe
from targets.netproxy import NetworkDriver, NetworkProxyError
from targets.parsers import ParserUnavailable, parser_kwargs
from targets.proxies import open_proxy
from targets.safety import remote_chaos_refusal
from targets.server_version import ServerVersion, server_versions
from targets.topologies import TOPOLOGIES, start_topology
from targets.topology import Topology
from targets.witness import Node, WitnessError, Witnesses, node_of

logger = logging.getLogger("redis_resilience")


def connect_admin(url: str, name: str, retries: int = 0, access: Access | None = None) -> RedisClient:
    """The pack's own connection (chaos and checks): named apart from traffic, no hidden retries.
    On a cluster, a cluster client: it reads and cleans up across every primary. ``access``: the
    admin credentials and TLS (credentials in ``url`` win over them: see targets.access.admin_url)."""
    try:
        return open_client(url, name, access or Access(), "admin", retries)
    except ConnectError as exc:
        raise SetupError(str(exc)) from None


def check_connection_mode(profile: Profile, url: str, source: str) -> None:
    """What the cluster client does not take: ``client.connection: dedicated`` (one connection per user; a
    cluster client keeps a pool per node) and ``client.parser: python`` (it takes no parser class: its
    nodes read with redis-py's default, hiredis); and a parser this environment does not have."""
    try:
        parser_kwargs(profile.client.parser)
    except ParserUnavailable as exc:
        raise SetupError(f"{source}: {exc}") from None
    if profile.client.pool == "blocking" and not url.startswith(("redis://", "rediss://")):
        raise SetupError(
            f"{source}: client.pool: blocking is for redis:// and rediss:// targets (redis-py has no blocking "
            "sentinel or cluster pool; use default)"
        )
    if not is_cluster_url(url):
        return
    if profile.client.connection == "dedicated":
        raise SetupError(
            f"{source}: client.connection: dedicated is for redis://, rediss:// and sentinel:// targets; a "
            "cluster client keeps a pool per node (use pooled)"
        )
    if profile.client.parser == "python":
        raise SetupError(f"{source}: client.parser: python is not available on a cluster target (use hiredis)")
    if profile.client.maint_notifications != "auto":
        raise SetupError(
            f"{source}: client.maint_notifications: {profile.client.maint_notifications} is for redis://, rediss:// "
            "and sentinel:// targets (the pack leaves a cluster client's to redis-py: use auto)"
        )


def check_traffic_access(run: PackRun) -> None:
    """One connection as the traffic makes them (its credentials, TLS and ``CLIENT SETNAME`` tag),
    opened and closed before any user spawns: a traffic user the target refuses is bad input."""
    try:
        open_client(run.url, f"{run.traffic_tag}setup", run.access, "traffic").close()
    except ConnectError as exc:
        raise SetupError(str(exc)) from None


def target_access(profile: Profile, url: str, source: str) -> tuple[Access, Access]:
    """The traffic and admin credentials and TLS for ``url``, secrets read now (see targets/access.py)."""
    try:
        return resolve_access(profile.target, url, source)
    except AccessError as exc:
        raise SetupError(str(exc)) from None


@dataclass
class RunSetup:
    """One node's hold on the target: its profile, the run, the admin connection, what it started.

    :param source: where the profile came from (its path, or "the master's profile")
    :param embedded: the embedded topology this node started, if any
    :param proxy: the fault proxy traffic goes through (network faults), if any
    :param remote_refusal: set when chaos against this target needs the opt-in (on-demand faults
        that act only on the pack's own clients still run)
    :param chaos_enabled: the profile schedules faults and ``--no-chaos`` is not given
    """

    profile: Profile
    source: str
    run: PackRun
    admin: RedisClient
    admin_url: str
    embedded: Topology | None = None
    proxy: NetworkDriver | None = None
    remote_refusal: str | None = None
    chaos_enabled: bool = False
    witnesses: Witnesses | None = None
    service: ServiceUnderTest | None = None

    @property
    def label(self) -> str:
        """The target as logs and the report name it (credentials redacted)."""
        return self.embedded.label() if self.embedded is not None else redact_url(self.run.url)

    def fault_target(self) -> FaultTarget:
        """What faults may touch: the admin connection, this run's tag, this node's pools, the managed servers."""
        run = self.run
        return FaultTarget(
            admin=self.admin,
            traffic_tag=run.traffic_tag,
            reset_pools=run.reset_pools,
            network=self.proxy,
            servers=self.embedded,
            own_names=run.own_names,
            service_url=run.service_url,
        )

    def primaries(self) -> list[Node]:
        """The data nodes the traffic depends on now (the witness watches them)."""
        return [node_of(client) for client in self.fault_target().node_admins()]

    def read_environment(self) -> RunEnvironment:
        """What this run runs (the report's ``environment``): the tools' versions here, the profile's client,
        and ``INFO server`` of each data node the traffic depends on now. Never raises: a node that cannot
        be asked is an entry with its error."""
        try:
            admins = self.fault_target().node_admins()
        except (redis.RedisError, OSError) as exc:  # a cluster whose slot map cannot be read
            servers: tuple[ServerVersion, ...] = (ServerVersion(self.label, None, None, describe(exc)),)
        else:
            servers = server_versions(admins)
        return RunEnvironment(self.profile.client, servers)

    def start_witnesses(self) -> None:
        """A witness on every primary (``recovery.witness``); one that gets no reply is bad input."""
        settings = self.profile.recovery.witness
        if not settings.enabled:
            return
        publish = not isinstance(self.admin, RedisCluster)  # a cluster's PUBLISH reaches every node: PING there
        self.witnesses = Witnesses(
            self.primaries, self.run.witness_name, settings.period_ms, settings.late_ms, _witness_crashed, publish
        )
        try:
            self.witnesses.refresh()
        except (WitnessError, redis.RedisError, OSError) as exc:
            self.witnesses.close()
            self.witnesses = None
            raise SetupError(f"{self.source}: recovery.witness: {describe(exc)}") from None

    def check_service_faults(self) -> None:
        """Faults that need what this run has: a service for an ``http`` fault's ``path``; Redis users for a
        fault on the pack's own clients (``pool_reset``): a service-only run has none to reset."""
        profile = self.profile
        for index, spec in enumerate(profile.chaos.faults):
            where = f"{self.source}: chaos.faults[{index}] ({spec.name})"
            if isinstance(spec, HttpParams) and spec.path is not None and profile.service is None:
                raise SetupError(f"{where}: path needs a service to call (the profile's service section), or give url")
            service_only = profile.service is not None and profile.workload.total_weight == 0
            if service_only and fault_class(spec.name).runs_on == "traffic_nodes":
                raise SetupError(
                    f"{where}: acts on the pack's own redis-py clients, and this service-only run has none "
                    "(workload.mix weights are 0). To reset the service's own connections, call its reset "
                    "endpoint with the http fault, e.g. {name: http, path: /chaos/redis-reset} (docs/service.md)"
                )

    def check_capabilities(self) -> None:
        """Before any load: every scheduled fault can run here (managed caches disable commands)."""
        target = self.fault_target()
        for index, spec in enumerate(self.profile.chaos.faults):
            try:
                build_fault(spec, target).check()
            except (CommandRefused, redis.RedisError) as exc:
                raise SetupError(f"{self.source}: fault {spec.name} cannot run on {self.label}: {exc}") from None
            except MissingPrerequisite as exc:  # on this machine: an executable, an environment variable
                raise SetupError(f"{self.source}: chaos.faults[{index}] ({spec.name}): {exc}") from None

    def setup_message(self) -> dict[str, Any]:
        """The run as a master tells its workers."""
        return {
            "run_id": self.run.run_id,
            "profile": self.profile.model_dump(mode="json"),
            "url": self.run.url,
            "admin_url": self.admin_url,
            "service_url": self.run.service_url,
        }

    def check_integrity(self) -> tuple[dict[str, IntegrityResult] | None, str | None]:
        """This node's acknowledged writes against the server; (None, why) when they could not be read."""
        try:
            return self.run.verify_integrity(self.admin), None
        except (redis.RedisError, OSError) as exc:
            error = describe(exc)
            logger.error("redis-resilience: could not check acknowledged writes: %s", error)
            return None, error

    def cleanup_keys(self) -> None:
        try:
            removed = self.run.cleanup_keys(self.admin)
            logger.info("redis-resilience: removed %d keys under %s*", removed, self.run.key_prefix)
        except (redis.RedisError, OSError) as exc:
            logger.error("redis-resilience: could not remove the run's keys: %s", redact_url(str(exc)))

    def pool_status(self) -> dict[str, int]:
        """This node's pooled connections (redis-py)."""
        pools = list(self.run.pools)
        in_use = idle = 0
        for pool in pools:
            (free, _), (used, _) = pool.get_connection_count()
            idle, in_use = idle + free, in_use + used
        return {"pools": len(pools), "in_use": in_use, "idle": idle, "total": in_use + idle}

    def server_status(self) -> dict[str, Any]:
        """The run's connections as the server lists them (never raises: the error is part of it)."""
        tag = self.run.traffic_tag
        server: dict[str, Any] = {"tag": tag, "clients": None, "error": None}
        try:
            admin = self.admin
            nodes = (  # a cluster: every primary as last mapped (a status poll does not refresh the slot map)
                [admin.get_redis_connection(n) for n in admin.get_primaries()]
                if isinstance(admin, RedisCluster)
                else [admin]
            )
            names = [c.get("name", "") for node in nodes for c in node.client_list()]
            server["clients"] = sum(1 for name in names if name.startswith(tag))
        except Exception as exc:  # a status never fails
            server["error"] = describe(exc)
        return server

    def exited_server(self) -> str | None:
        """A server of the embedded topology that exited on its own (not by a fault), described; else None."""
        if self.embedded is None:
            return None
        for server in (*self.embedded.servers, *self.embedded.sentinels):
            process = server.process  # a fault that stops a server clears this first
            code = process.poll() if process is not None else None
            if process is None or code is None:
                continue
            server.process = None
            return (
                f"embedded {server.binary} (pid {process.pid}, port {server.port}) exited on its own (exit code {code})"
            )
        return None

    def close(self) -> None:
        """Close the service it started, the witnesses, the admin connection, the proxy and the embedded
        topology (idempotent)."""
        if self.service is not None:
            self.service.close()
            self.service = None
        if self.witnesses is not None:
            self.witnesses.close()
            self.witnesses = None
        _close_quietly(self.admin)
        if self.proxy is not None:
            self.proxy.close()
            self.proxy = None
        if self.embedded is not None:
            self.embedded.stop()


def _close_quietly(client: RedisClient) -> None:
    with contextlib.suppress(Exception):
        client.close()


def open_setup(settings: Settings) -> RunSetup:
    """The local or master node's setup, from its profile and options (see the module docstring)."""
    try:
        profile = load_profile(settings.profile_path)
    except ProfileError as exc:
        raise SetupError(str(exc)) from None
    url = settings.redis_url or profile.target.url
    if settings.redis_url and (problem := scheme_error(url, URL_OPTION)):
        raise SetupError(problem)
    # Before anything connects: chaos off this machine only with an explicit opt-in (targets/safety.py).
    remote_refusal = None if profile.chaos.allow_remote or settings.allow_remote_chaos else remote_chaos_refusal(url)
    chaos_enabled = profile.chaos.enabled and not settings.no_chaos
    if remote_refusal is not None and chaos_enabled:
        raise SetupError(remote_refusal)
    traffic_access, admin_access = target_access(profile, url, settings.profile_path)
    with contextlib.ExitStack() as opened:  # on bad input, what was started is stopped again
        embedded = None
        if url in TOPOLOGIES:
            try:
                target = profile.target
                embedded = start_topology(url, target.persistence, target.server, target.server_binary)
            except EmbeddedRedisError as exc:
                raise SetupError(str(exc)) from None
            atexit.register(embedded.stop)
            opened.callback(embedded.stop)
            url = embedded.url
        admin_at = url
        proxy = None
        if profile.target.proxy is not None:  # traffic goes through the fault proxy, the admin does not
            speaks_resp = any(fault_class(f.name).speaks_resp for f in profile.chaos.faults)
            proxy, url = _open_proxy(profile.target.proxy, url, settings.profile_path, speaks_resp)
            opened.callback(proxy.close)
        run = PackRun(profile, url, uuid.uuid4().hex[:8], node="0", access=traffic_access)
        admin = connect_admin(admin_url(admin_at, profile.target), run.admin_name, access=admin_access)
        opened.callback(_close_quietly, admin)
        check_traffic_access(run)
        check_connection_mode(profile, url, settings.profile_path)
        setup = RunSetup(
            profile, settings.profile_path, run, admin, admin_at, embedded, proxy, remote_refusal, chaos_enabled
        )
        if chaos_enabled:
            setup.check_capabilities()
        if chaos_enabled:
            setup.check_service_faults()
        setup.service = open_service(profile.service, settings, url, settings.profile_path, run.key_prefix)
        if setup.service is not None:
            opened.callback(setup.service.close)
            run.service_url = setup.service.url
        setup.start_witnesses()
        opened.pop_all()
    return setup


def _witness_crashed(exc: BaseException) -> None:
    """A witness stopped reading its probe: the faults after it have no outage figures; said, never silent."""
    logger.error("redis-resilience: a witness stopped: %s", describe(exc))


def _proxy_crashed(exc: BaseException) -> None:
    """A greenlet of the built-in proxy crashed: the connection it served is closed (the clients see a
    dropped connection, as in the window's figures); said here so that it is never silent."""
    logger.error("redis-resilience: the fault proxy dropped a connection after a crash: %s", describe(exc))


def _open_proxy(settings: ProxySettings, url: str, source: str, speaks_resp: bool) -> tuple[NetworkDriver, str]:
    """Start the fault proxy in front of ``url``; the proxy and the URL traffic uses instead.
    ``speaks_resp``: a scheduled fault speaks RESP to the clients (``maintenance``), so the built-in proxy reads it."""
    if not url.startswith(("redis://", "rediss://")):
        raise SetupError(f"{source}: target.proxy needs a standalone target, not {url}")
    resp_aware = settings.driver == "builtin" and (settings.resp_aware or speaks_resp)
    if resp_aware and url.startswith("rediss://"):
        raise SetupError(
            f"{source}: target.proxy: the maintenance fault (resp_aware) reads RESP, which TLS hides: "
            "use a redis:// target, or no maintenance fault"
        )
    parts = urlsplit(url)
    try:
        proxy = open_proxy(settings, parts.hostname or "127.0.0.1", parts.port or 6379, _proxy_crashed, resp_aware)
    except NetworkProxyError as exc:
        raise SetupError(f"{source}: target.proxy: {exc}") from None
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@" if userinfo else ""
    return proxy, urlunsplit(parts._replace(netloc=f"{netloc}{proxy.host}:{proxy.port}"))
