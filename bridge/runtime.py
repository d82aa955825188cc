"""What one running bridge shares between requests: settings, live rules and the Redis client."""

from __future__ import annotations

from functools import cached_property

import redis

from .redis_client import connect, redis_url
from .rules import LiveRules
from .settings import Settings


class Runtime:
    """Settings, live rules and a lazily opened Redis client."""

    def __init__(self, settings: Settings, env: dict | None = None):
        self.settings = settings
        self.rules = LiveRules(settings.rules_dir, env=env, check_every=settings.rules_check_seconds,
                               env_file=settings.env_file)

    @cached_property
    def redis(self) -> redis.Redis:
        """Return the Redis client; it connects on first use, not here."""
        return connect(redis_url(self.settings), self.settings)
