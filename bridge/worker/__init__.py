"""The RQ worker the bridge runs: threads (the default) or a work horse per job, with upkeep on time."""

from __future__ import annotations

import logging
import signal
import threading

import redis
from rq import Queue

from .. import jobs
from ..logs import configure_logging
from ..redis_client import connect, redis_url
from ..settings import Settings
from .forking import ForkingWorker
from .threaded import BACKOFF_FIRST, BACKOFF_MOST, ThreadedWorker
from .upkeep import MISSED_BEATS, without_rq_success_lines

log = logging.getLogger("bridge.worker")
# The defaults, for tools that run a plain RQ worker the same way (bench/baseline.py).
JOB_MONITORING_INTERVAL = MAINTENANCE_INTERVAL = Settings.job_heartbeat_seconds


def abandoned_within(settings: Settings) -> int:
    """Return the longest a killed worker's job waits before it is retried: its heartbeat lapses, then upkeep runs."""
    beat = settings.job_heartbeat_seconds
    return beat + MISSED_BEATS * beat + beat


def build_worker(settings: Settings, connection: redis.Redis):
    """Return the worker of the configured mode on the bridge's queue."""
    queue = Queue(settings.queue_name, connection=connection)
    common = dict(connection=connection, job_monitoring_interval=settings.job_heartbeat_seconds,
                  grace=settings.shutdown_grace_seconds)
    if settings.worker_mode == "fork":
        return ForkingWorker([queue], **common)
    return ThreadedWorker([queue], concurrency=settings.worker_concurrency, **common)


def run_worker(settings: Settings, burst: bool = False) -> bool:
    """Run a worker with RQ's scheduler (so that delayed retries fire) until stopped; start again after a Redis outage."""
    configure_logging(settings.log_level, settings.log_format)
    if settings.log_level.upper() != "DEBUG":
        logging.getLogger("rq.worker").addFilter(without_rq_success_lines)
    jobs.configure(settings).rules.get()
    connection = connect(redis_url(settings), settings)
    wait = BACKOFF_FIRST
    while True:
        worker = build_worker(settings, connection)
        try:
            worked = worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level.upper())
        except (redis.ConnectionError, redis.TimeoutError) as error:
            log.warning("Redis does not answer (%s); the worker starts again in %.1f s", error, wait)
        else:
            if burst or worker.stop_asked:
                return worked
            # RQ's forking worker leaves its loop on a Redis error ("unhandled exception, quitting").
            log.warning("the worker stopped on an error; it starts again in %.1f s", wait)
        if _pause(wait):
            return False
        wait = min(wait * 2, BACKOFF_MOST)


def _pause(seconds: float) -> bool:
    """Sleep between two workers; say whether SIGTERM or SIGINT came meanwhile."""
    asked = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: asked.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return asked.wait(seconds)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
