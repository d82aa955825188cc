"""Pure signature helpers: HMAC digests, constant-time matching, secrets for rotation, replay windows.

Nothing here knows a sender. Every check that fails raises `Unauthorized` with a short reason
that never contains a secret or an expected signature.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Iterable
from datetime import datetime, timezone

from .errors import Unauthorized

ALGORITHMS = ("sha1", "sha256", "sha512")
ENCODINGS = ("hex", "base64")
DEFAULT_TOLERANCE = 300

_NUMBER = re.compile(r"\d{1,16}(\.\d{1,9})?")
# Unix time in milliseconds passes this mark in 1973; in seconds not before the year 5138.
_MILLISECONDS_FROM = 100_000_000_000


def utf8(text: str) -> bytes:
    """Encode text as UTF-8, keeping odd code points instead of failing on them."""
    return text.encode("utf-8", "surrogatepass")


def secrets_of(value) -> list[str]:
    """Return the configured secrets, one or a list (several during a rotation)."""
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, (list, tuple)):
        return [item for item in value if isinstance(item, str) and item]
    return []


def require_secrets(options, key: str = "secret") -> list[str]:
    """Return the source's secrets, or refuse every request when none is configured."""
    found = secrets_of(options.get(key))
    if not found:
        # Fail closed: a signed source without its secret must not let anything in.
        raise Unauthorized(f"source has no {key} configured")
    return found


def digest(key: bytes, message: bytes, algorithm: str = "sha256") -> bytes:
    """Return the HMAC of a message."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
    return hmac.digest(key, message, algorithm)


def encode(raw: bytes, encoding: str) -> str:
    """Write a digest as text the way senders put it in a header."""
    if encoding == "hex":
        return raw.hex()
    if encoding == "base64":
        return base64.b64encode(raw).decode("ascii")
    raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, got {encoding!r}")


def decode(text: str, encoding: str) -> bytes | None:
    """Read a signature written in hex or base64; None when it is neither."""
    try:
        if encoding == "hex":
            return bytes.fromhex(text.strip())
        # Some proxies turn "+" into a space on the way (reported against HubSpot's v3 header).
        text = text.strip("\t\r\n").replace(" ", "+")
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (ValueError, binascii.Error):
        return None


def matches(given: str | None, expected: Iterable[bytes], encoding: str) -> bool:
    """Tell whether a signature equals one of the expected digests, in constant time."""
    if not given:
        return False
    raw = decode(given, encoding)
    if raw is None:
        return False
    found = False
    for candidate in expected:
        # No early exit: the time taken does not tell which secret matched.
        found |= hmac.compare_digest(raw, candidate)
    return found


def same_text(given: str | None, secrets: Iterable[str]) -> bool:
    """Tell whether a shared token equals one of the secrets, in constant time."""
    if given is None:
        return False
    raw = utf8(given)
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(raw, utf8(secret))
    return found


def whsec_key(secret: str) -> bytes:
    """Return the HMAC key of a Standard Webhooks secret: the base64 after whsec_."""
    key = secret.removeprefix("whsec_")
    raw = decode(key, "base64") if key else None
    if not raw:
        raise Unauthorized("source secret is not a whsec_ base64 key")
    return raw


def basic_credentials(header: str | None) -> tuple[str, str]:
    """Return (username, password) from an Authorization: Basic header, or refuse it."""
    scheme, _, encoded = (header or "").strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise Unauthorized("missing Basic credentials")
    try:
        username, colon, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (ValueError, binascii.Error):
        raise Unauthorized("unreadable Basic credentials") from None
    if not colon:
        raise Unauthorized("unreadable Basic credentials")
    return username, password


def parse_timestamp(value: str | None) -> float | None:
    """Read a timestamp: Unix seconds, Unix milliseconds or ISO 8601; None when unreadable."""
    if not value:
        return None
    value = value.strip()
    if _NUMBER.fullmatch(value):
        number = float(value)
        return number / 1000 if number >= _MILLISECONDS_FROM else number
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def check_window(value: str | None, now: float, tolerance: int, header: str) -> float:
    """Return the timestamp, or refuse it when unreadable or further than `tolerance` seconds from now."""
    if not value:
        raise Unauthorized(f"missing {header} timestamp")
    when = parse_timestamp(value)
    if when is None:
        raise Unauthorized(f"unreadable {header} timestamp")
    if not abs(now - when) <= tolerance:  # written so that a NaN clock refuses too
        raise Unauthorized(f"timestamp outside the {tolerance} s window")
    return when


def tolerance_of(options, default: int = DEFAULT_TOLERANCE) -> int:
    """Return the replay window in seconds, from the source's options or the scheme's default."""
    value = options.get("tolerance")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return default
