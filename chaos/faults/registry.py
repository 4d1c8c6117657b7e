"""The fault registry: a plain dict from a profile's fault name to its params and class.

A fault registers itself with one decorator line on its class (``@register_fault(MyParams)``);
chaos/faults/__init__.py imports the pack's own, and a locustfile or package of yours can register
more before the test starts (docs/extending.md). Everything else that knows the fault names is
derived from here: the profile's ``chaos.faults`` entries (a union told apart by ``name``), its
JSON Schema, the on-demand faults of the web UI.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Annotated, Any, Literal, NamedTuple, TypeVar, Union, get_args, get_origin

from pydantic import Field, TypeAdapter, ValidationError

from chaos.faults.base import Fault, FaultParams, FaultTarget

F = TypeVar("F", bound=type)


class FaultKind(NamedTuple):
    params: Any  # a FaultParams subclass, or an Annotated union of them (network's toxics)
    fault: Any  # a class taking (params, target) and satisfying Fault


FAULTS: dict[str, FaultKind] = {}


def _names(params: Any) -> set[str]:
    """The ``name`` literal(s) a params type (a model or a union of models) accepts."""
    while get_origin(params) is Annotated:
        params = get_args(params)[0]
    if get_origin(params) in (Union, types.UnionType):
        return set().union(*(_names(member) for member in get_args(params)))
    field = params.model_fields.get("name") if isinstance(params, type) and issubclass(params, FaultParams) else None
    if field is None or get_origin(field.annotation) is not Literal:
        raise TypeError(f"{params!r}: fault params subclass FaultParams with name: Literal['<fault name>']")
    return set(get_args(field.annotation))


def register_fault(params: Any) -> Callable[[F], F]:
    """Class decorator: ``@register_fault(ClientKillParams)`` on ``class ClientKill``.

    The class's ``name`` must be the one literal its params accept; a name registered twice by
    another class is an error (a fault of yours cannot silently replace the pack's).
    """

    def register(fault: F) -> F:
        name = str(getattr(fault, "name", ""))
        if _names(params) != {name}:
            raise TypeError(f"fault {fault.__name__}: its name {name!r} must be the params' only name literal")
        existing = FAULTS.get(name)
        if existing is not None and existing.fault is not fault:
            raise ValueError(f"fault {name!r} is registered already (by {existing.fault.__module__})")
        FAULTS[name] = FaultKind(params, fault)
        return fault

    return register


def fault_names() -> list[str]:
    return sorted(FAULTS)


def fault_class(name: str) -> Any:
    """The class registered under ``name``; KeyError if none is."""
    return FAULTS[name].fault


def spec_type() -> Any:
    """One entry of a profile's ``chaos.faults``: the registered params, told apart by ``name``."""
    members = tuple(kind.params for kind in FAULTS.values())
    if len(members) == 1:
        return members[0]
    return Annotated[Union[members], Field(discriminator="name")]  # noqa: UP007  (a runtime-built union)


def parse_fault_spec(data: dict[str, Any]) -> FaultParams:
    """A fault entry from plain data (the web UI, a worker): ValueError with a one-line message."""
    try:
        spec: FaultParams = TypeAdapter(spec_type()).validate_python(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'fault'}: {e['msg']}" for e in exc.errors())
        raise ValueError(problems) from None
    return spec


def build_fault(spec: FaultParams, target: FaultTarget) -> Fault:
    """Instantiate the fault a profile entry names."""
    fault: Fault = FAULTS[spec.name].fault(spec, target)
    return fault
