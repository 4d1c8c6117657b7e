"""The fault registry: a plain dict from a profile's fault name to its params and class."""

from __future__ import annotations

from typing import Annotated, Any, NamedTuple

from pydantic import Field

from chaos.faults.base import CommandRefused, Fault, FaultParams, FaultTarget
from chaos.faults.client_kill import ClientKill, ClientKillParams
from chaos.faults.client_pause import ClientPause, ClientPauseParams
from chaos.faults.failover import Failover, FailoverParams
from chaos.faults.http import Http, HttpParams
from chaos.faults.network import Network, NetworkParams
from chaos.faults.oom import Oom, OomParams
from chaos.faults.pool_reset import PoolReset, PoolResetParams
from chaos.faults.server_restart import ServerRestart, ServerRestartParams


class FaultKind(NamedTuple):
    params: type[FaultParams]
    fault: Any  # a class taking (params, target) and satisfying Fault


REGISTRY: dict[str, FaultKind] = {
    "client_kill": FaultKind(ClientKillParams, ClientKill),
    "pool_reset": FaultKind(PoolResetParams, PoolReset),
    "client_pause": FaultKind(ClientPauseParams, ClientPause),
    "oom": FaultKind(OomParams, Oom),
    "server_restart": FaultKind(ServerRestartParams, ServerRestart),
    "failover": FaultKind(FailoverParams, Failover),
    "http": FaultKind(HttpParams, Http),
    "network": FaultKind(NetworkParams, Network),
}

# One entry of a profile's chaos.faults list, told apart by its ``name``.
FaultSpec = Annotated[
    ClientKillParams
    | PoolResetParams
    | ClientPauseParams
    | OomParams
    | ServerRestartParams
    | FailoverParams
    | HttpParams
    | NetworkParams,
    Field(discriminator="name"),
]


def build_fault(spec: FaultParams, target: FaultTarget) -> Fault:
    """Instantiate the fault a profile entry names."""
    fault: Fault = REGISTRY[spec.name].fault(spec, target)
    return fault


__all__ = ["REGISTRY", "CommandRefused", "Fault", "FaultParams", "FaultSpec", "FaultTarget", "build_fault"]
