"""Gunicorn settings from the environment, for a Procfile-based PaaS.

Gunicorn reads ./gunicorn.conf.py by itself, so `gunicorn 'bridge:create_app()'` run from the app's root
uses this file; options given on the command line still win.

| variable                    | default | meaning                                                          |
| --------------------------- | ------- | ---------------------------------------------------------------- |
| `PORT`                      | 8000    | port to listen on, on every interface                            |
| `WEB_CONCURRENCY`           | 2       | worker processes                                                 |
| `GUNICORN_THREADS`          | 4       | threads per worker process                                       |
| `GUNICORN_TIMEOUT`          | 30      | seconds a request may take before its worker is restarted        |
| `GUNICORN_GRACEFUL_TIMEOUT` | 25      | seconds to finish requests in hand after SIGTERM                 |
| `GUNICORN_KEEPALIVE`        | 5       | seconds to hold an idle keep-alive connection                    |
| `FORWARDED_ALLOW_IPS`       | `*`     | proxies whose X-Forwarded-Proto/-For are believed                |
"""

import os
import shlex
import sys

from gunicorn.glogging import Logger


def _number(name: str, default: int, least: int = 0) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None
    if value < least:
        raise ValueError(f"{name} must be at least {least}, got {value}")
    return value


bind = [f"0.0.0.0:{_number('PORT', 8000, least=1)}"]
# Two processes: one can be restarted (max_requests, a crash) while the other keeps taking webhooks.
workers = _number("WEB_CONCURRENCY", 2, least=1)
# The receiver mostly waits on Redis, so threads add capacity without the memory of more processes.
threads = _number("GUNICORN_THREADS", 4, least=1)
worker_class = "gthread"
# Heroku's router gives up on a request after 30 s; a longer timeout would only keep dead requests around.
timeout = _number("GUNICORN_TIMEOUT", 30)
# Under the 30 s a PaaS waits between SIGTERM and SIGKILL, so requests in hand finish before the kill.
graceful_timeout = _number("GUNICORN_GRACEFUL_TIMEOUT", 25)
keepalive = _number("GUNICORN_KEEPALIVE", 5)
# Logs go to stdout/stderr, where the platform collects them.
accesslog = "-"
errorlog = "-"
# The path without its query string: some senders put their secret there (`?token=...`), and logs keep no secret.
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss "%(a)s"'
# The platform's router terminates TLS and is the only way in: believe its X-Forwarded-Proto, so that the
# URL a signature covers (HubSpot signs https://...) is the URL the sender called.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*")


class AccessLogger(Logger):
    """gunicorn's logger, but for webhooks the bridge logged itself: one line per delivery, not two per request."""

    def access(self, resp, req, environ, request_time):
        if not environ.get("bridge.logged"):
            super().access(resp, req, environ, request_time)


# gunicorn switches to its statsd logger only while logger_class is its default: asked for statsd, keep that.
if not any(arg.startswith("--statsd-host") for arg in sys.argv + shlex.split(os.environ.get("GUNICORN_CMD_ARGS", ""))):
    logger_class = AccessLogger
