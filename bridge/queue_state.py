"""How many jobs are in each of RQ's states, and how long the most overdue one has waited past its time."""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis
from rq import Queue
from rq.registry import (DeferredJobRegistry, FailedJobRegistry, ReadyJobRegistry, ScheduledJobRegistry,
                         StartedJobRegistry)
from rq.utils import utcparse

STATES = ("queued", "started", "deferred", "scheduled", "ready", "failed")
# The states whose jobs have a time by which they should have run (deferred ones wait for their parent).
TIMED = ("queued", "started", "scheduled", "ready")
REGISTRIES = {"started": StartedJobRegistry, "deferred": DeferredJobRegistry, "scheduled": ScheduledJobRegistry,
              "ready": ReadyJobRegistry, "failed": FailedJobRegistry}


@dataclass(frozen=True)
class QueueState:
    """Job counts per state, and per timed state the seconds its most overdue job is late (0 when none is)."""

    counts: dict
    overdue: dict

    def stuck(self, limit: float) -> dict:
        """Return the states whose most overdue job is later than `limit` seconds, with how late."""
        return {state: seconds for state, seconds in self.overdue.items() if seconds > limit}


def read_state(connection: redis.Redis, queue_name: str, now: float | None = None) -> QueueState:
    """Read every state's count and its earliest entry in one round trip, then the queue head's age."""
    now = time.time() if now is None else now
    queue = Queue(queue_name, connection=connection)
    keys = {state: registry(queue_name, connection=connection).key for state, registry in REGISTRIES.items()}
    with connection.pipeline(transaction=False) as pipe:
        pipe.llen(queue.key)
        pipe.lindex(queue.key, 0)
        for state in REGISTRIES:
            pipe.zcard(keys[state])
        for state in ("started", "scheduled", "ready"):
            pipe.zrange(keys[state], 0, 0, withscores=True)
        queued, head, *rest = pipe.execute()
    counts = {"queued": queued, **dict(zip(REGISTRIES, rest[:len(REGISTRIES)]))}
    # started: the score is when the heartbeat lapses; scheduled: when the job is due; ready: when it became ready.
    overdue = {state: max(0.0, now - first[0][1]) if first else 0.0
               for state, first in zip(("started", "scheduled", "ready"), rest[len(REGISTRIES):])}
    overdue["queued"] = 0.0
    if head is not None:
        enqueued = connection.hget(f"{queue.job_class.redis_job_namespace_prefix}{head.decode()}", "enqueued_at")
        if enqueued:
            overdue["queued"] = max(0.0, now - utcparse(enqueued.decode()).timestamp())
    return QueueState(counts, {state: overdue[state] for state in TIMED})
