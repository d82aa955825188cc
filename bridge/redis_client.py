"""Open the Redis connection the bridge queues on."""

from __future__ import annotations

import redis

from .settings import Settings


def connect(url: str) -> redis.Redis:
    """Return a client that fails fast, so a webhook waits seconds, not minutes, when Redis is down."""
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10, health_check_interval=30)


def redis_url(settings: Settings) -> str:
    """Return the Redis URL, or say how to get one."""
    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is not set: set it, or run `bridge serve` without it for the embedded mode")
    return settings.redis_url
