"""Keep secrets out of everything the bridge stores, logs or shows: one vocabulary and two helpers."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

REDACTED = "[redacted]"
# A field or header whose name says it holds a secret is hidden whatever its value.
SECRET_WORDS = ("password", "secret", "token", "api-key", "api_key", "apikey", "authorization", "cookie")


def is_secret_name(name: str) -> bool:
    """Tell whether a field or header name says it holds a secret."""
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every known secret in a text, in its plain and URL-encoded spellings."""
    for secret in secrets:
        # Very short values would blank out ordinary text; secrets are never that short.
        if secret and len(secret) >= 4:
            for spelling in _spellings(secret):
                text = text.replace(spelling, REDACTED)
    return text


@lru_cache(maxsize=1024)
def _spellings(secret: str) -> tuple[str, ...]:
    """Return a secret's plain and URL-encoded spellings (worked out once: every stored string is scrubbed)."""
    return tuple({secret, quote_plus(secret), quote(secret, safe="")})


@lru_cache(maxsize=256)
def spellings_in_json(secrets: tuple[str, ...]) -> tuple[tuple[str, ...], bool]:
    """Return every spelling scrub() replaces, and whether each would show unchanged in data written as JSON."""
    spellings = tuple(spelling for secret in secrets if secret and len(secret) >= 4 for spelling in _spellings(secret))
    return spellings, all(spelling.isascii() and spelling.isprintable() and '"' not in spelling and "\\" not in spelling
                          for spelling in spellings)


def without_credentials(url: str) -> str:
    """Return a URL with any user:password@ taken out, for messages and logs."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="[redacted]@" + parts.netloc.rpartition("@")[2]))


def redact(value: Any, secrets: Iterable[str] = (), by_name: bool = True) -> Any:
    """Return a copy of decoded data with known secret values scrubbed from its text (and secret-named fields hidden)."""
    secrets = list(secrets)
    if isinstance(value, dict):
        return {key: REDACTED if by_name and is_secret_name(str(key)) else redact(item, secrets, by_name)
                for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item, secrets, by_name) for item in value]
    if isinstance(value, str):
        return scrub(value, secrets)
    return value
