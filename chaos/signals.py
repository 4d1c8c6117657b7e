"""The stop signals a local or master process received, for the report ("interrupted by SIGINT").

Locust handles SIGINT and SIGTERM itself (it quits); this only remembers which came, and delivers
Ctrl-C to Locust's main greenlet, never into a user or the chaos greenlet mid-command: Locust then
quits as usual and the pack reverts, checks and reports.
"""

from __future__ import annotations

import signal

import gevent


class StopSignals:
    """The last stop signal received (None: none); owned by the role, installed by the plugin."""

    def __init__(self) -> None:
        self.received: str | None = None

    def install(self) -> None:
        gevent.signal_handler(signal.SIGINT, self._on_sigint)
        gevent.signal_handler(signal.SIGTERM, self._on_sigterm)

    def _on_sigint(self) -> None:
        self.received = "SIGINT"
        gevent.get_hub().parent.throw(KeyboardInterrupt())

    def _on_sigterm(self) -> None:
        """Beside Locust's own SIGTERM handler (which quits): remember it."""
        self.received = "SIGTERM"
