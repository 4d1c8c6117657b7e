"""The reply parser a profile names (``client.parser``), as keyword arguments of redis-py's pool.

- ``hiredis`` (the default): nothing. redis-py picks hiredis's parser itself when hiredis is installed,
  as it does for an application; the pack refuses the setting when hiredis is missing, so that a report
  never depends on what happens to be installed.
- ``python``: redis-py's own parser, as ``parser_class``. redis-py has no public name for that class: an
  application that wants it imports it from ``redis._parsers`` as this function does. It is the one
  private name the pack uses, imported only when a profile asks for it (tests/test_stock_client.py).
"""

from __future__ import annotations

from typing import Any, Literal

from redis.utils import HIREDIS_AVAILABLE

Parser = Literal["hiredis", "python"]


class ParserUnavailable(ValueError):
    """The profile asks for a parser this environment does not have."""


def parser_kwargs(parser: Parser) -> dict[str, Any]:
    """What a pool is given for ``parser``: nothing for hiredis (redis-py's own choice), the class for python."""
    if parser == "hiredis":
        if not HIREDIS_AVAILABLE:
            raise ParserUnavailable("client.parser: hiredis, but hiredis is not installed (pip install hiredis)")
        return {}
    from redis._parsers import _RESP2Parser  # redis-py's Python parser (its RESP3 sibling on a RESP3 connection)

    return {"parser_class": _RESP2Parser}
