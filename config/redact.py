"""Keep passwords and tokens out of logs, reports and errors."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"

# scheme://user:password@host  or  scheme://:password@host  or  scheme://token@host
_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<userinfo>[^@/\s]+)@", re.IGNORECASE)


def redact_url(text: str) -> str:
    """Replace the password (or a lone token) of every URL in ``text`` with ``***``."""

    def _mask(match: re.Match[str]) -> str:
        user, sep, _secret = match["userinfo"].partition(":")
        masked = f"{user}:***" if sep else "***"
        return f"{match['scheme']}{masked}@"

    return _CREDENTIALS.sub(_mask, text)


def redact_secrets(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of ``secrets`` (values known to be secret: a password, a token read from the
    environment) masked, longest first (one inside another is masked whole), and the passwords of URLs."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return redact_url(text)


_SECRET_KEY = re.compile(r"pass|secret|token|auth|api[-_]?key|cookie|credential", re.IGNORECASE)


def is_secret_key(key: str) -> bool:
    """Whether a key names a secret (``password``, ``Authorization``, ``X-Api-Key``...)."""
    return _SECRET_KEY.search(key) is not None


def redact_params(value: object) -> object:
    """A copy of ``value`` (dicts, lists, strings) with secrets masked: values under keys that name a
    secret (``password``, ``Authorization``, ``X-Api-Key``...) and passwords inside URLs."""
    if isinstance(value, dict):
        return {k: "***" if _SECRET_KEY.search(str(k)) and v else redact_params(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_params(v) for v in value]
    if isinstance(value, str):
        return redact_url(value)
    return value
