"""Open the Redis connection the bridge queues on: redis://, rediss:// (TLS) or unix://."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import redis

from .settings import Settings

log = logging.getLogger("bridge.redis")


def client_options(url: str, settings: Settings) -> dict:
    """Return the keyword arguments for a client of a Redis URL: short timeouts, and TLS options for rediss://."""
    # Short timeouts, so that a webhook waits seconds, not minutes, when Redis is down.
    options: dict = {"socket_connect_timeout": 2, "socket_timeout": 10, "health_check_interval": 30}
    if urlsplit(url).scheme != "rediss":
        return options  # plain TCP and unix sockets refuse the ssl_* arguments
    options["ssl_cert_reqs"] = settings.redis_tls_verify
    if settings.redis_tls_verify == "none":
        # Encrypted but not authenticated: what Heroku's self-signed add-on certificates allow.
        options["ssl_check_hostname"] = False
    elif settings.redis_tls_ca_file:
        options["ssl_ca_certs"] = str(settings.redis_tls_ca_file)
    return options


def connect(url: str, settings: Settings | None = None) -> redis.Redis:
    """Return a client for a Redis URL; the TLS settings come from the environment when none are given."""
    settings = settings or Settings.from_env()
    options = client_options(url, settings)
    if options.get("ssl_cert_reqs") == "none":
        log.warning("TLS to Redis is not verified (BRIDGE_REDIS_TLS_VERIFY=none): traffic is encrypted, the server is not checked")
    return redis.Redis.from_url(url, **options)


def redis_url(settings: Settings) -> str:
    """Return the Redis URL, or say how to get one."""
    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is not set: set it, or run `bridge serve` without it for the embedded mode")
    return settings.redis_url
