"""The pack's settings for one process, from its command line (chaos/plugin.py) or given by a library user."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from config.loader import DEFAULT_PROFILE

# The target option. Its environment variable is not REDIS_URL: an application's REDIS_URL left
# in a shell must never silently retarget a chaos run.
URL_FLAG = "--redis-url"
URL_ENV = "RESILIENCE_REDIS_URL"
URL_OPTION = f"{URL_FLAG} ({URL_ENV})"  # as messages name it
SERVICE_FLAG = "--service-url"
SERVICE_ENV = "RESILIENCE_SERVICE_URL"


class SetupError(Exception):
    """The pack cannot start: ``str()`` is the one-line message (exit code 2, no traceback)."""


@dataclass(frozen=True)
class Settings:
    """The pack's command-line options."""

    profile_path: str = str(DEFAULT_PROFILE)
    redis_url: str | None = None
    report_path: str | None = None
    no_chaos: bool = False
    allow_remote_chaos: bool = False
    service_url: str | None = None
    allow_remote_service: bool = False
    html_path: str | None = None
    junit_path: str | None = None
    progress: bool = True
    metrics_port: int | None = None
    pushgateway: str | None = None

    @classmethod
    def from_options(cls, options: Any) -> Settings:
        return cls(
            profile_path=options.resilience_profile,
            redis_url=options.redis_url or None,
            report_path=options.resilience_report or None,
            no_chaos=bool(options.no_chaos),
            allow_remote_chaos=bool(getattr(options, "allow_remote_chaos", False)),
            service_url=getattr(options, "service_url", None) or None,
            allow_remote_service=bool(getattr(options, "allow_remote_service", False)),
            html_path=getattr(options, "resilience_html", None) or None,
            junit_path=getattr(options, "resilience_junit", None) or None,
            progress=not bool(getattr(options, "no_resilience_progress", False)),
            metrics_port=getattr(options, "resilience_metrics_port", None) or None,
            pushgateway=getattr(options, "resilience_pushgateway", None) or None,
        )
