"""The default worker: several jobs in flight in threads of one process, LMS connections kept between jobs."""

from __future__ import annotations

import queue as queues
import signal
import threading
import time

import redis
from rq.exceptions import DequeueTimeout
from rq.worker import BaseWorker

from .. import jobs
from .timeouts import WatchdogDeathPenalty
from .upkeep import WAKE_SECONDS, Upkeep

# Waits between tries while Redis does not answer: doubling from the first, up to the last.
BACKOFF_FIRST, BACKOFF_MOST = 0.5, 30.0
# After the grace, jobs stop between steps; a step that then takes longer than this is cut off and its job requeued.
STEP_LIMIT_AFTER_GRACE = 5.0


class ThreadedWorker(Upkeep, BaseWorker):
    """Run up to `concurrency` jobs at once, each in a thread; the main thread dequeues, beats and cleans.

    A job that raises ends as RQ records it, without touching the others. A crash of the whole
    process (out of memory, a kill) leaves its jobs in RQ's started registry: their heartbeats
    stop and any worker's upkeep queues them again, from their checkpoints, within four intervals.

    SIGTERM (a PaaS restart, sent to every process at once): no new job is taken; jobs in hand
    may finish for `grace` seconds, then stop after the step in hand and are queued again.
    """

    death_penalty_class = WatchdogDeathPenalty  # RQ's default uses SIGALRM, which only the main thread receives

    def __init__(self, *args, concurrency: int = 1, grace: float = 20.0, **kwargs):
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency!r}")
        super().__init__(*args, **kwargs)
        self.concurrency, self.grace = concurrency, grace
        self._running: dict[str, tuple] = {}  # execution id -> (job, queue, execution)
        self._handed: queues.SimpleQueue = queues.SimpleQueue()  # jobs for the lanes to take
        self._freed = threading.Event()
        self._stop_at: float | None = None
        self._rejoin = False
        self._jobs_beat_at = 0.0  # its own clock: RQ beats the worker (_beat_at) on every wake, via is_suspended
        self._suspension_checked_at = 0.0

    def work(self, burst: bool = False, logging_level: str | None = "INFO", with_scheduler: bool = True, **_) -> bool:
        """Take jobs until stopped (or, in burst mode, until the queue is empty); survive Redis outages."""
        self._backoff(lambda: self.bootstrap(logging_level))
        if with_scheduler:
            self._backoff(lambda: self._start_scheduler(burst, logging_level))
        self._install_signal_handlers()
        for number in range(self.concurrency):
            threading.Thread(target=self._lane, name=f"lane {number + 1}", daemon=True).start()
        worked = False
        try:
            while self._stop_at is None:
                taken = self._backoff(lambda: self._step(burst))
                if taken is None:
                    break
                worked = worked or taken
            self._finish_in_hand()
        finally:
            self._backoff(self.teardown, attempts=3)
        return worked

    @property
    def stop_asked(self) -> bool:
        """Say whether SIGTERM or SIGINT came."""
        return self._stop_at is not None

    def _step(self, burst: bool) -> bool | None:
        """Do upkeep and take one job if a thread is free; None once a burst is done."""
        if time.monotonic() - self._suspension_checked_at >= WAKE_SECONDS:
            self.check_for_suspension(burst)  # a round trip (it beats the worker too): once a second, not per job
            self._suspension_checked_at = time.monotonic()
        if self.should_run_maintenance_tasks:
            self.run_maintenance_tasks()
        self._beat_running()
        if len(self._running) >= self.concurrency:
            self._freed.wait(WAKE_SECONDS)
            self._freed.clear()
            return False
        try:
            result = self.queue_class.dequeue_any(self._ordered_queues, None if burst else self.dequeue_timeout,
                                                  connection=self.connection, job_class=self.job_class,
                                                  serializer=self.serializer, death_penalty_class=self.death_penalty_class)
        except DequeueTimeout:
            return False
        if result is None:
            if not self._running:
                return None
            self._freed.wait(WAKE_SECONDS)
            self._freed.clear()
            return False
        job, queue = result
        jobs.context().rules.get()  # a cheap stat when nothing changed
        execution = self.prepare_execution(job)
        self._running[execution.id] = (job, queue, execution)
        self._handed.put((job, queue, execution))
        return True

    def _lane(self) -> None:
        """Run jobs one after another in this thread, whose LMS connectors (sessions, connections) live on."""
        jobs.context().warm(self.connection)
        while True:
            job, queue, execution = self._handed.get()
            try:
                self.perform_job(job, queue, execution)
            except Exception:
                # Redis went away while RQ recorded the outcome: the job stays "started" and upkeep retries it.
                self.log.exception("Worker %s: could not record the outcome of job %s", self.name, job.id)
            finally:
                self._running.pop(execution.id, None)
                self._freed.set()

    def _beat_running(self) -> None:
        """Renew the heartbeats of jobs in flight every interval, so that they are not taken for abandoned."""
        if time.monotonic() - self._jobs_beat_at < self.job_monitoring_interval:
            return
        self._jobs_beat_at = time.monotonic()
        self.heartbeat(self.worker_ttl + 60)
        for job, _, execution in list(self._running.values()):
            if job.started_at:
                self.maintain_heartbeats(job, execution)

    def _backoff(self, action, attempts: int | None = None):
        """Run an action, waiting and trying again while Redis does not answer."""
        wait, tried = BACKOFF_FIRST, 0
        while True:
            try:
                return action()
            except (redis.ConnectionError, redis.TimeoutError) as error:
                tried += 1
                if attempts is not None and tried >= attempts:
                    return None
                self.log.warning("Worker %s: Redis does not answer (%s); trying again in %.1f s", self.name, error, wait)
                if self._sleep(wait):
                    return None
                wait = min(wait * 2, BACKOFF_MOST)
                self._rejoin = True
            else:
                if getattr(self, "_rejoin", False):
                    self._rejoin = False
                    self._register_again()

    def _register_again(self) -> None:
        """After an outage, register again if Redis lost the worker's key (a restart without it, or its TTL ran out)."""
        try:
            if not self.connection.exists(self.key):
                self.register_birth()
        except redis.RedisError:
            self._rejoin = True

    def _sleep(self, seconds: float) -> bool:
        """Sleep, cut short by a stop request; say whether one came."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._stop_at is not None:
                return True
            time.sleep(min(0.1, deadline - time.monotonic()))
        return False

    def _install_signal_handlers(self):
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)

    def request_stop(self, signum, frame):
        """Stop taking jobs; a second signal stops the jobs in hand after their step at once."""
        if self._stop_at is None:
            self._stop_at = time.monotonic()
            self.log.info("Worker %s: stopping: no new jobs; %d in hand may finish for %g s", self.name,
                          len(self._running), self.grace)
        else:
            jobs.context().stopping.set()

    def _finish_in_hand(self) -> None:
        """Let the jobs in hand finish within the grace; stop them after their step; requeue any still stuck."""
        deadline = (self._stop_at or time.monotonic()) + self.grace
        while self._running and time.monotonic() < deadline and not jobs.context().stopping.is_set():
            self._backoff(self._beat_running, attempts=1)
            self._freed.wait(0.2)
            self._freed.clear()
        if not self._running:
            return
        jobs.context().stopping.set()
        deadline = time.monotonic() + STEP_LIMIT_AFTER_GRACE
        while self._running and time.monotonic() < deadline:
            self._freed.wait(0.2)
            self._freed.clear()
        for job, queue, execution in list(self._running.values()):
            self._backoff(lambda: self._requeue(job, queue, execution), attempts=3)

    def _requeue(self, job, queue, execution) -> None:
        """Queue a job whose step did not end in time again, at the front, with the checkpoints it saved."""
        self.log.warning("Worker %s: job %s is still in an LMS call at shutdown; queued again", self.name, job.id)
        with self.connection.pipeline() as pipe:
            execution.delete(job=job, pipeline=pipe)
            queue._enqueue_job(job, pipeline=pipe, at_front=True)
            pipe.execute()
