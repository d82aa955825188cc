"""Put failed work back: retry failed jobs, or replay a stored delivery through the current rules."""

from __future__ import annotations

import time
from collections.abc import Iterator

import redis
from rq.job import Job
from rq.registry import FailedJobRegistry

from .deliveries import Outcome, accept, load_record, new_delivery_id, note
from .engine import decide_all
from .errors import NotFound
from .rules import RuleSet
from .settings import Settings


def failed_jobs(connection: redis.Redis, settings: Settings, rule: str | None = None, lms: str | None = None,
                since: float | None = None, until: float | None = None) -> Iterator[Job]:
    """Yield the failed jobs of the bridge's queue that fit the filters, oldest failure first."""
    registry = FailedJobRegistry(settings.queue_name, connection=connection)
    for job_id in registry.get_job_ids():
        job = Job.fetch(job_id, connection=connection) if Job.exists(job_id, connection=connection) else None
        if job is None:
            continue
        payload = job.args[0] if job.args else {}
        ended = job.ended_at.timestamp() if job.ended_at else None
        if rule and job.meta.get("rule") != rule:
            continue
        if lms and lms not in {action["connection"] for action in payload.get("actions", [])}:
            continue
        if since is not None and (ended is None or ended < since):
            continue
        if until is not None and (ended is None or ended > until):
            continue
        yield job


def retry_job(connection: redis.Redis, settings: Settings, job_id: str) -> tuple[bool, str]:
    """Requeue one failed job with its retries restored; return whether it was requeued, and what happened."""
    registry = FailedJobRegistry(settings.queue_name, connection=connection)
    if not Job.exists(job_id, connection=connection):
        raise NotFound(f"no job {job_id!r} (it may have expired)")
    if job_id not in registry:
        return False, f"{job_id}: not failed ({Job.fetch(job_id, connection=connection).get_status()}), left alone"
    job = Job.fetch(job_id, connection=connection)
    job.retries_left = job.meta.get("retry_max") or None
    job.save()
    registry.requeue(job)
    if job.meta.get("delivery_id"):
        note(connection, job.meta["delivery_id"], job.id, "queued", detail="retried by hand")
    return True, f"{job_id}: queued again"


def jobs_of(connection: redis.Redis, delivery_or_job: str) -> list[str]:
    """Return the job ids a delivery id names, or the job id itself."""
    record = load_record(connection, delivery_or_job)
    if record is not None:
        return record["jobs"]
    if Job.exists(delivery_or_job, connection=connection):
        return [delivery_or_job]
    raise NotFound(f"no delivery or job {delivery_or_job!r} (it may have expired)")


def replay(connection: redis.Redis, settings: Settings, ruleset: RuleSet, delivery_id: str) -> Outcome:
    """Run a stored delivery through the current rules as a new delivery, without checking its signature again."""
    record = load_record(connection, delivery_id)
    if record is None:
        raise NotFound(f"no delivery {delivery_id!r} (it may have expired)")
    if record["source"] not in ruleset.sources:
        raise NotFound(f"source {record['source']!r} of delivery {delivery_id} is no longer declared in the rule files")
    event = {
        "source": record["source"],
        "event": record["event"],
        "delivery_id": new_delivery_id(),
        "sender_id": None,
        "received_at": time.time(),
        "headers": record["headers"],
        "query": record["query"],
        "body": record["event_body"],
        "replay_of": delivery_id,
    }
    [outcome] = accept(connection, settings, [(event, decide_all(ruleset, event))], record["body"].encode(), ruleset)
    return outcome
