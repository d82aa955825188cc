"""The refused-request log: each webhook a hook URL answered with a 4xx, kept redacted per source for a while.

What is kept explains a refusal and never suffices to replay it: credential headers and signatures are
replaced by their shape, known secrets are scrubbed, and the body is a short redacted preview, not its bytes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

import redis

from ..bodies import BodyLimits, decode_body
from ..errors import BadRequest
from ..redaction import is_secret_name, redact, scrub
from .hints import SENDERS, hint, shape

KEY = "bridge:refused:{}"
SOURCES_KEY = "bridge:refused:sources"
PER_SOURCE = 100
TTL = 7 * 24 * 3600
PREVIEW_CHARS = 2000
PREVIEW_READ = 64 * 1024  # a refused body is only parsed for its preview when it is this small
PREVIEW_LIMITS = BodyLimits(fields=1000)
_PROOF_WORDS = ("signature", "hmac", "sig", "auth", "token", "secret", "key", "cookie", "password")


def _is_proof(name: str) -> bool:
    lowered = name.lower()
    return lowered in SENDERS or is_secret_name(lowered) or any(word in lowered for word in _PROOF_WORDS)


def redacted_headers(headers: Mapping[str, str], secrets: list[str]) -> dict[str, str]:
    """Return the headers with every credential or signature replaced by its shape, and secrets scrubbed."""
    return {name.lower(): shape(str(value)) if _is_proof(name) else scrub(str(value), secrets)[:200]
            for name, value in headers.items()}


def preview(raw: bytes | None, content_type: str, secrets: list[str]) -> str:
    """Return a short redacted preview of a refused body: its data with secret fields hidden, else its text."""
    if not raw:
        return ""
    text = raw[:PREVIEW_READ].decode("utf-8", "replace")
    data = None
    if len(raw) <= PREVIEW_READ:
        try:
            # The receiver's own bounded decoding: a refused body is hostile more often than not.
            data = decode_body(raw, content_type, PREVIEW_LIMITS)
        except BadRequest:
            data = None  # not what it claims to be: shown as text
    shown = json.dumps(redact(data, secrets), ensure_ascii=False, default=str) if data is not None else scrub(text, secrets)
    return shown if len(shown) <= PREVIEW_CHARS else shown[:PREVIEW_CHARS] + " …"


def entry(source: str, source_type: str, options: Mapping, status: int, error: str, reason: str, method: str,
          path: str, headers: Mapping[str, str], query: Mapping[str, str], raw: bytes | None, secrets: list[str],
          max_body_bytes: int | None = None, now: float | None = None) -> dict:
    """Describe one refused request, redacted, with a hint at what is wrong (pure)."""
    lowered = {name.lower(): str(value) for name, value in headers.items()}
    content_type = lowered.get("content-type", "")
    return {
        "at": time.time() if now is None else now,
        "source": source,
        "type": source_type,
        "status": status,
        "error": error,
        "reason": scrub(reason, secrets),
        "hint": hint(source_type, options, reason, status, lowered, content_type, max_body_bytes),
        "method": method,
        "path": path,
        "query": {name: shape(value) if _is_proof(name) else scrub(value, secrets)[:200] for name, value in query.items()},
        "headers": redacted_headers(lowered, secrets),
        "content_type": content_type,
        "length": len(raw) if raw is not None else int(declared) if (declared := lowered.get("content-length", "")).isdigit() else 0,
        "body": preview(raw, content_type, secrets),
    }


def keep(connection: redis.Redis, item: dict) -> None:
    """Store a refused request under its source, keeping the newest PER_SOURCE for TTL seconds (best effort)."""
    key = KEY.format(item["source"])
    try:
        with connection.pipeline(transaction=False) as pipe:
            pipe.lpush(key, json.dumps(item, default=str))
            pipe.ltrim(key, 0, PER_SOURCE - 1)
            pipe.expire(key, TTL)
            pipe.zadd(SOURCES_KEY, {item["source"]: item["at"]})
            pipe.expire(SOURCES_KEY, TTL)
            pipe.execute()
    except redis.RedisError:
        pass  # the refusal is answered and counted all the same


def recent(connection: redis.Redis, source: str | None = None, since: float | None = None, limit: int = 100) -> list[dict]:
    """Return refused requests, newest first, of one source or all, no older than the TTL or `since`."""
    oldest = max(time.time() - TTL, since or 0)
    sources = [source] if source else [name.decode() for name in connection.zrevrangebyscore(SOURCES_KEY, "+inf", oldest)]
    with connection.pipeline(transaction=False) as pipe:
        for name in sources:
            pipe.lrange(KEY.format(name), 0, PER_SOURCE - 1)
        lists = pipe.execute() if sources else []
    items = [json.loads(raw) for found in lists for raw in found]
    items = [item for item in items if item["at"] >= oldest]
    items.sort(key=lambda item: item["at"], reverse=True)
    return items[:limit]


def count(connection: redis.Redis, source: str) -> int:
    """Return how many refused requests of a source are kept."""
    return connection.llen(KEY.format(source))

