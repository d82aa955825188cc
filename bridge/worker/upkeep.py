"""What every bridge worker does besides running jobs: heartbeats, finding abandoned and stranded jobs on time."""

from __future__ import annotations

import logging
import time

from rq.exceptions import NoSuchJobError
from rq.executions import Execution
from rq.job import JobStatus
from rq.registry import FailedJobRegistry, ReadyJobRegistry, StartedJobRegistry
from rq.utils import as_text, now

from .. import jobs

# How often an idle worker wakes from its wait for a job to look after the queue (seconds).
WAKE_SECONDS = 1
# A job moved to "ready" (its parent done) this long ago and still not queued lost a race: queue it now.
READY_GRACE_SECONDS = 1.0
# A job whose heartbeat is this many beats overdue is abandoned (its worker died) and queued again.
MISSED_BEATS = 2
# A job whose worker died this many times while running it is failed, visibly, not resumed for ever:
# something in the job itself (memory, a crash in a library) takes its worker down.
MAX_RESUMES = 5


class Upkeep:
    """A mixin for RQ workers: wake every second, beat and clean every `job_monitoring_interval`.

    RQ runs its maintenance only when a worker wakes from a dequeue wait of worker_ttl - 15 s
    (405 s by default), so an idle worker would leave a killed worker's job for minutes.
    """

    log_result_lifespan = False  # RQ's "result is kept for 1209600 seconds", on every job

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.maintenance_interval = self.job_monitoring_interval
        self.worker_ttl = self.job_monitoring_interval * (MISSED_BEATS + 2)
        self._ready_swept_at = 0.0
        self._beat_at = 0.0

    @property
    def dequeue_timeout(self) -> int:
        """Wait at most a second for a job, so that upkeep runs on time when the queue is idle."""
        return WAKE_SECONDS

    @property
    def should_run_maintenance_tasks(self) -> bool:
        """Say whether the ready sweep or the full maintenance is due (RQ asks on every wake)."""
        return time.monotonic() - self._ready_swept_at >= WAKE_SECONDS or super().should_run_maintenance_tasks

    def run_maintenance_tasks(self):
        """Resume abandoned jobs, queue stranded ready ones; when due, RQ's maintenance: registries, the scheduler."""
        self._ready_swept_at = time.monotonic()
        for queue in self.queues:
            # Before RQ's cleanup, which would count a dead worker as the job's failure (a retry used, or failed).
            resume_abandoned(queue)
            sweep_ready(queue)
        if super().should_run_maintenance_tasks:
            super().run_maintenance_tasks()

    def heartbeat(self, timeout: int | None = None, pipeline=None):
        """Beat at most once per interval when idle (RQ beats on every wake)."""
        if timeout is None and pipeline is None and time.monotonic() - self._beat_at < self.job_monitoring_interval:
            return
        self._beat_at = time.monotonic()
        super().heartbeat(timeout, pipeline)

    def handle_execution_ended(self, job, queue, heartbeat_ttl: int):
        """Beat the ended job only when a callback runs next (RQ beats always: a round trip per job for nothing)."""
        if job.get_status(refresh=False) == JobStatus.FAILED or job.success_callback is not None:
            super().handle_execution_ended(job, queue, heartbeat_ttl)
        else:
            job.ended_at = now()

    def get_heartbeat_ttl(self, job, working_time: float = 0.0) -> int:
        """Let a job's heartbeat lapse after MISSED_BEATS silent intervals (RQ's own grace is a fixed 60 s)."""
        interval = self.job_monitoring_interval
        if job.timeout and job.timeout > 0:
            interval = max(1, min(interval, int(job.timeout - working_time)))
        return interval + MISSED_BEATS * self.job_monitoring_interval


# RQ's INFO lines for each job that succeeds: the bridge's own "job succeeded" line says the same, with the delivery.
RQ_SUCCESS_LINES = frozenset({"Successfully completed %s job in %ss on worker %s",
                              "Successfully completed job %s in %ss on worker %s", "Worker %s: %s: %s (%s)"})


def without_rq_success_lines(record) -> bool:
    """A logging filter: drop RQ's per-job success lines below WARNING (one line per job is the bridge's)."""
    return record.levelno >= logging.WARNING or record.msg not in RQ_SUCCESS_LINES


def sweep_ready(queue) -> list:
    """Queue the jobs whose parents finished but that nobody queued (two workers raced); return them."""
    registry = ReadyJobRegistry(queue.name, connection=queue.connection, job_class=queue.job_class,
                                serializer=queue.serializer)
    stranded = queue.connection.zrangebyscore(registry.key, 0, time.time() - READY_GRACE_SECONDS)
    return registry.enqueue_jobs([registry.parse_job_id(job_id) for job_id in stranded]) if stranded else []


def resume_abandoned(queue) -> list:
    """Queue again, at the front, the started jobs whose heartbeat lapsed (their worker died); return their ids.

    A dead worker is not the job's failure: no retry is used up, and the job resumes after its last
    completed step (its checkpoints are in its meta). RQ's own cleanup would instead retry it
    like a failed try, or fail it for good when its retries are spent.
    """
    connection = queue.connection
    registry = StartedJobRegistry(queue.name, connection=connection, job_class=queue.job_class,
                                  serializer=queue.serializer)
    resumed = []
    for entry in connection.zrangebyscore(registry.key, 0, time.time()):
        if not connection.zrem(registry.key, entry):
            continue  # another worker's upkeep took it first
        execution = Execution.from_composite_key(as_text(entry), connection)
        try:
            job = queue.job_class.fetch(execution.job_id, connection=connection, serializer=queue.serializer)
        except NoSuchJobError:
            continue
        if job.get_status(refresh=False) != JobStatus.STARTED:
            continue  # a leftover entry of a job that ended
        resumes = int(job.meta.get("resumes", 0)) + 1
        with connection.pipeline() as pipe:
            execution.delete(job=job, pipeline=pipe)
            if resumes > MAX_RESUMES:
                job.set_status(JobStatus.FAILED, pipeline=pipe)
                FailedJobRegistry(queue.name, connection=connection, job_class=queue.job_class,
                                  serializer=queue.serializer).add(job, ttl=job.failure_ttl, pipeline=pipe,
                                                                   exc_string=f"its worker died {MAX_RESUMES} times while running it")
            else:
                job.meta["resumes"] = resumes
                job.save_meta()
                queue._enqueue_job(job, pipeline=pipe, at_front=True)
            pipe.execute()
        if resumes > MAX_RESUMES:
            jobs.on_worker_deaths(job, connection, MAX_RESUMES)
            continue
        jobs.on_abandoned(job, connection)
        resumed.append(job.id)
    return resumed
