"""What every bridge worker does besides running jobs: heartbeats, finding abandoned and stranded jobs on time."""

from __future__ import annotations

import time

from rq.registry import ReadyJobRegistry

# How often an idle worker wakes from its wait for a job to look after the queue (seconds).
WAKE_SECONDS = 1
# A job moved to "ready" (its parent done) this long ago and still not queued lost a race: queue it now.
READY_GRACE_SECONDS = 1.0
# A job whose heartbeat is this many beats overdue is abandoned (its worker died) and retried.
MISSED_BEATS = 2


class Upkeep:
    """A mixin for RQ workers: wake every second, beat and clean every `job_monitoring_interval`.

    RQ runs its maintenance only when a worker wakes from a dequeue wait of worker_ttl - 15 s
    (405 s by default), so an idle worker would leave a killed worker's job for minutes.
    """

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
        """Queue stranded ready jobs; when due, RQ's maintenance: abandoned jobs, registries, the scheduler."""
        self._ready_swept_at = time.monotonic()
        for queue in self.queues:
            sweep_ready(queue)
        if super().should_run_maintenance_tasks:
            super().run_maintenance_tasks()

    def heartbeat(self, timeout: int | None = None, pipeline=None):
        """Beat at most once per interval when idle (RQ beats on every wake)."""
        if timeout is None and pipeline is None and time.monotonic() - self._beat_at < self.job_monitoring_interval:
            return
        self._beat_at = time.monotonic()
        super().heartbeat(timeout, pipeline)

    def get_heartbeat_ttl(self, job, working_time: float = 0.0) -> int:
        """Let a job's heartbeat lapse after MISSED_BEATS silent intervals (RQ's own grace is a fixed 60 s)."""
        interval = self.job_monitoring_interval
        if job.timeout and job.timeout > 0:
            interval = max(1, min(interval, int(job.timeout - working_time)))
        return interval + MISSED_BEATS * self.job_monitoring_interval


def sweep_ready(queue) -> list:
    """Queue the jobs whose parents finished but that nobody queued (two workers raced); return them."""
    registry = ReadyJobRegistry(queue.name, connection=queue.connection, job_class=queue.job_class,
                                serializer=queue.serializer)
    stranded = queue.connection.zrangebyscore(registry.key, 0, time.time() - READY_GRACE_SECONDS)
    return registry.enqueue_jobs([registry.parse_job_id(job_id) for job_id in stranded]) if stranded else []
