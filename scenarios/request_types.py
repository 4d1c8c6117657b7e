"""The request types a user class fires, declared on the class: the recovery tracker measures those.

Locust's ``request`` event carries a ``request_type``. The pack's users declare theirs (``RedisUser``:
``REDIS``, ``ServiceUser``: ``HTTP``), and a user class of yours declares its own::

    class OrdersUser(DeclaresRequestTypes, User):
        request_types = ("ORDERS",)

At each test's start the tracker is given the types that the user classes Locust runs declare
(:func:`declared_request_types`): their requests get fault windows, a baseline and ``by_type`` figures
in the report. A request of a type no class declares is not measured (the tracker says so once).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar


class DeclaresRequestTypes:
    """Mixin for a Locust user class: ``request_types``, the ``request_type`` values it fires.

    A subclass inherits its base's types; to add one, extend them
    (``request_types = (*RedisUser.request_types, "LOCK")``). TypeError at the class's definition when
    ``request_types`` is not a tuple of non-empty strings (``("MYDB")`` is a string, not a tuple).
    """

    request_types: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        types = cls.request_types
        if not isinstance(types, tuple) or not all(isinstance(t, str) and t for t in types):
            raise TypeError(f"{cls.__name__}.request_types: expected a tuple of names such as ('MYDB',), got {types!r}")


def declared_request_types(user_classes: Iterable[type]) -> frozenset[str]:
    """Every request type the user classes declare (a class that declares none adds none)."""
    return frozenset(t for cls in user_classes if issubclass(cls, DeclaresRequestTypes) for t in cls.request_types)
