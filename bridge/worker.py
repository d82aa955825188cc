"""The RQ worker the bridge runs: it keeps the rule set fresh before each fork."""

from __future__ import annotations

from rq import Queue, SimpleWorker, Worker

from . import jobs
from .logs import configure_logging
from .redis_client import connect, redis_url
from .settings import Settings

# A killed worker's job is found abandoned once its heartbeat lapses (monitoring interval + RQ's 60 s)
# and a worker's maintenance runs (this interval): about two minutes in all, then RQ retries it.
JOB_MONITORING_INTERVAL = 30
MAINTENANCE_INTERVAL = 30


class BridgeWorker(Worker):
    """An RQ worker whose parent process reloads changed rules, so work horses inherit them parsed.

    SIGTERM (a PaaS restarting the dyno) is RQ's warm shutdown: the job in hand is finished first.
    """

    def execute_job(self, job, queue):
        """Refresh the rule set (a cheap stat when nothing changed), then fork and run the job."""
        jobs.context().rules.get()
        return super().execute_job(job, queue)


class InlineBridgeWorker(SimpleWorker):
    """A worker that runs jobs in its own process: no fork per job, LMS connections and tokens kept between jobs.

    Faster (see bench/worker_throughput.py), but a job that crashes the interpreter takes the worker with it.
    """

    def execute_job(self, job, queue):
        """Refresh the rule set, then run the job here."""
        jobs.context().rules.get()
        return super().execute_job(job, queue)


def run_worker(settings: Settings, burst: bool = False) -> bool:
    """Run a worker on the bridge's queue, with RQ's scheduler so that delayed retries fire."""
    configure_logging(settings.log_level, settings.log_format)
    jobs.configure(settings).rules.get()
    connection = connect(redis_url(settings), settings)
    queue = Queue(settings.queue_name, connection=connection)
    worker_class = InlineBridgeWorker if settings.worker_mode == "inline" else BridgeWorker
    worker = worker_class([queue], connection=connection, job_monitoring_interval=JOB_MONITORING_INTERVAL,
                          maintenance_interval=MAINTENANCE_INTERVAL)
    return worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level.upper())
