"""Keep passwords and tokens out of logs, reports and errors."""

from __future__ import annotations

import re

# scheme://user:password@host  or  scheme://:password@host  or  scheme://token@host
_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<userinfo>[^@/\s]+)@", re.IGNORECASE)


def redact_url(text: str) -> str:
    """Replace the password (or a lone token) of every URL in ``text`` with ``***``."""

    def _mask(match: re.Match[str]) -> str:
        user, sep, _secret = match["userinfo"].partition(":")
        masked = f"{user}:***" if sep else "***"
        return f"{match['scheme']}{masked}@"

    return _CREDENTIALS.sub(_mask, text)
