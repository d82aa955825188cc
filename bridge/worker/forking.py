"""The fork mode: RQ's work horse per job, for rules whose jobs might crash the interpreter."""

from __future__ import annotations

import signal
import threading

from rq.worker import HerokuWorker

from .. import jobs
from .upkeep import Upkeep


class ForkingWorker(Upkeep, HerokuWorker):
    """A work horse per job (RQ's Worker), with Heroku-style shutdown and the bridge's upkeep.

    A PaaS sends SIGTERM to every process at once: the horse ignores it (HerokuWorker), the parent
    stops taking jobs and tells the horse (SIGRTMIN); the job may finish for `grace` seconds, then
    stops after the step in hand and is queued again.
    """

    def __init__(self, *args, grace: float = 20.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.grace = grace

    @property
    def stop_asked(self) -> bool:
        """Say whether SIGTERM or SIGINT came (RQ's own flag is set only when one comes during a job)."""
        return self._shutdown_requested_date is not None

    def execute_job(self, job, queue):
        """Refresh the rule set (a cheap stat when nothing changed), then fork and run the job."""
        jobs.context().rules.get()
        return super().execute_job(job, queue)

    def request_stop_sigrtmin(self, signum, frame):
        """In the horse: let the job finish within the grace, then stop it between steps (requeued, not failed)."""
        self.log.info("Worker %s: shutting down; the job in hand may finish for %g s", self.name, self.grace)
        timer = threading.Timer(self.grace, jobs.context().stopping.set)
        timer.daemon = True
        timer.start()
        signal.signal(signal.SIGRTMIN, lambda *_: jobs.context().stopping.set())
