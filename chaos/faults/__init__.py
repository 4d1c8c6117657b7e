"""The faults: one module each, registered by name (chaos/faults/registry.py).

Adding a fault is its module (params + class, ``@register_fault`` on the class) and its import
line here; docs/extending.md walks through it.
"""

from __future__ import annotations

from chaos.faults import (  # noqa: F401  (each import registers its fault)
    client_kill,
    client_pause,
    exec_command,
    failover,
    http,
    maintenance,
    network,
    oom,
    pool_reset,
    server_restart,
)
from chaos.faults.base import CommandRefused, Fault, FaultParams, FaultTarget, MissingPrerequisite
from chaos.faults.registry import (
    FAULTS,
    build_fault,
    fault_class,
    fault_names,
    parse_fault_spec,
    register_fault,
    spec_type,
)

__all__ = [
    "FAULTS",
    "CommandRefused",
    "Fault",
    "FaultParams",
    "FaultTarget",
    "MissingPrerequisite",
    "build_fault",
    "fault_class",
    "fault_names",
    "parse_fault_spec",
    "register_fault",
    "spec_type",
]
