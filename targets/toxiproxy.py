"""The Toxiproxy driver: a proxy on a running Toxiproxy server, driven through its HTTP API
(see targets/netproxy.py for the toxics)."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, ClassVar, Final

from config.proxy import ProxySettings
from targets.netproxy import NetworkProxyError, Stream, ToxicCounts, check_toxic

logger = logging.getLogger(__name__)

HTTP_TIMEOUT_S: Final = 5.0


class ToxiproxyDriver:
    """A proxy named ``settings.name`` on a running Toxiproxy server, created here and deleted by :meth:`close`.

    A proxy of that name left by an earlier run is replaced. It listens on 127.0.0.1.
    """

    kind: ClassVar[str] = "toxiproxy"

    def __init__(self, settings: ProxySettings, upstream_host: str, upstream_port: int) -> None:
        self.api = settings.toxiproxy_api
        self.name = settings.name
        self.host = "127.0.0.1"
        upstream = f"[{upstream_host}]:{upstream_port}" if ":" in upstream_host else f"{upstream_host}:{upstream_port}"
        spec = {
            "name": self.name,
            "listen": f"{self.host}:{settings.listen_port}",
            "upstream": upstream,
            "enabled": True,
        }
        status, body = self._call("POST", "/proxies", spec)
        if status == 409:
            logger.warning("toxiproxy: replacing the proxy %s left by an earlier run", self.name)
            self._call("DELETE", self._path())
            status, body = self._call("POST", "/proxies", spec)
        if status != 201:
            raise NetworkProxyError(f"Toxiproxy at {self.api} refused to create proxy {self.name}: {_error(body)}")
        try:
            self.port = int(str(body["listen"]).rsplit(":", 1)[1])
        except (TypeError, KeyError, IndexError, ValueError):
            raise NetworkProxyError(f"Toxiproxy at {self.api} answered without a listen address: {body!r}") from None

    def __repr__(self) -> str:
        return f"ToxiproxyDriver({self.name} at {self.api}, {self.host}:{self.port})"

    def _path(self, *parts: str) -> str:
        return "/".join(("/proxies", *(urllib.parse.quote(p, safe="") for p in (self.name, *parts))))

    def _call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One API call: (status, decoded JSON or None). Only an unreachable API raises."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.api + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (OSError, urllib.error.URLError) as exc:
            reason = getattr(exc, "reason", exc)
            raise NetworkProxyError(f"the Toxiproxy API at {self.api} is unreachable: {reason}") from None
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace").strip()

    # ---- NetworkDriver ----

    def check(self) -> None:
        status, body = self._call("GET", self._path())
        if status != 200:
            raise NetworkProxyError(f"Toxiproxy at {self.api} has no proxy {self.name}: {_error(body)}")

    def add_toxic(
        self, name: str, kind: str, attributes: dict[str, int | float], stream: Stream, toxicity: float = 1.0
    ) -> None:
        check_toxic(kind, attributes, stream, toxicity)
        # toxicity is a field of the toxic beside its attributes (Toxiproxy draws it per link itself)
        toxic = {"name": name, "type": kind, "stream": stream, "toxicity": toxicity, "attributes": attributes}
        status, body = self._call("POST", self._path("toxics"), toxic)
        if status != 200:
            raise NetworkProxyError(f"Toxiproxy at {self.api} refused toxic {name} ({kind}): {_error(body)}")

    def remove_toxic(self, name: str) -> None:
        status, body = self._call("DELETE", self._path("toxics", name))
        if status not in (200, 204, 404):
            raise NetworkProxyError(f"Toxiproxy at {self.api} did not remove toxic {name}: {_error(body)}")

    def toxic_counts(self, name: str) -> ToxicCounts | None:
        return None  # Toxiproxy does not say which links a toxic acts on

    def remove_all(self) -> None:
        status, body = self._call("GET", self._path("toxics"))
        if status == 200 and isinstance(body, list):
            for toxic in body:
                self.remove_toxic(str(toxic["name"]))

    def close(self) -> None:
        status, body = self._call("DELETE", self._path())
        if status not in (200, 204, 404):
            raise NetworkProxyError(f"Toxiproxy at {self.api} did not delete proxy {self.name}: {_error(body)}")

    def connections(self) -> int | None:
        return None  # Toxiproxy does not expose a cheap count


def _error(body: Any) -> str:
    if isinstance(body, dict) and "error" in body:
        return f"{body['error']} (status {body.get('status', '?')})"
    return str(body)[:200]
