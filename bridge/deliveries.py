"""Accept a delivery: its record and its jobs are written in one Redis transaction."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field

import redis
from rq import Queue

from .engine import Decision, job_payload
from .errors import QueueUnavailable
from .rules import RuleSet
from .settings import Settings

RECORD_KEY = "bridge:delivery:{}"
INDEX_KEY = "bridge:deliveries"
RAW_BODY_CAP = 64 * 1024
JOB_FUNCTION = "bridge.jobs.run_rule"
# Header values that authenticate a request are never stored; the signature check needs them only once.
SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token")


def new_delivery_id() -> str:
    """Return a new delivery id that sorts by time."""
    return f"{time.time_ns() // 1_000_000:x}-{uuid.uuid4().hex[:12]}"


def redact_headers(headers: dict) -> dict:
    """Return headers with credentials replaced, safe to store and show."""
    return {name: ("[redacted]" if name in SECRET_HEADERS else value) for name, value in headers.items()}


@dataclass
class Accepted:
    """What was durably queued for one delivery."""

    delivery_id: str
    matched: list[str]
    job_ids: list[str]
    decisions: list[dict] = field(default_factory=list)


def accept(connection: redis.Redis, settings: Settings, event: dict, raw: bytes, decisions: list[Decision], ruleset: RuleSet) -> Accepted:
    """Store the delivery record and enqueue one job per matched rule, all or nothing."""
    delivery_id = event["delivery_id"]
    matched = [decision for decision in decisions if decision.matched]
    queue = Queue(settings.queue_name, connection=connection)
    job_ids = [f"{delivery_id}_{index}" for index in range(len(matched))]
    jobs = [
        Queue.prepare_data(
            JOB_FUNCTION,
            args=(job_payload(decision.rule, event, ruleset),),
            job_id=job_id,
            timeout=settings.job_timeout,
            result_ttl=settings.delivery_ttl,
            failure_ttl=settings.delivery_ttl,
            ttl=settings.delivery_ttl,
            description=f"rule {decision.rule.name} for delivery {delivery_id}",
            meta={"delivery_id": delivery_id, "rule": decision.rule.name, "rules_version": ruleset.version},
        )
        for decision, job_id in zip(matched, job_ids)
    ]
    now = time.time()
    record = {
        "id": delivery_id,
        "source": event["source"],
        "event": event["event"],
        "sender_id": event.get("sender_id") or "",
        "received_at": now,
        "status": "queued" if jobs else "unmatched",
        "rules_version": ruleset.version,
        "decisions": json.dumps([decision.to_dict() for decision in decisions]),
        "jobs": json.dumps(job_ids),
        "headers": json.dumps(event["headers"]),
        "body": raw[:RAW_BODY_CAP],
        "body_truncated": int(len(raw) > RAW_BODY_CAP),
    }
    key = RECORD_KEY.format(delivery_id)
    try:
        with connection.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=record)
            pipe.expire(key, settings.delivery_ttl)
            pipe.zadd(INDEX_KEY, {delivery_id: now})
            pipe.zremrangebyscore(INDEX_KEY, "-inf", now - settings.delivery_ttl)
            if jobs:
                queue.enqueue_many(jobs, pipeline=pipe)
            pipe.execute()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
        raise QueueUnavailable(f"the queue (Redis) cannot be reached, nothing was accepted: {error}") from None
    return Accepted(delivery_id, [decision.rule.name for decision in matched], job_ids, [d.to_dict() for d in decisions])


def load_record(connection: redis.Redis, delivery_id: str) -> dict | None:
    """Return a stored delivery record, decoded, or None."""
    raw = connection.hgetall(RECORD_KEY.format(delivery_id))
    if not raw:
        return None
    record = {key.decode(): value for key, value in raw.items()}
    body = record.pop("body", b"")
    record = {key: value.decode() for key, value in record.items()}
    for name in ("decisions", "jobs", "headers"):
        record[name] = json.loads(record[name])
    record["received_at"] = float(record["received_at"])
    record["body_truncated"] = record["body_truncated"] == "1"
    record["body"] = body.decode("utf-8", "replace")
    return record
