"""Accept deliveries: records, dedupe keys and jobs written in one Redis transaction; read them back."""

from __future__ import annotations

import hashlib
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
TIMELINE_KEY = "bridge:delivery:{}:timeline"
ATTEMPTS_KEY = "bridge:delivery:{}:attempts"
INDEX_KEY = "bridge:deliveries"
SEEN_KEY = "bridge:seen:{}:{}"
RAW_BODY_CAP = 64 * 1024
JOB_FUNCTION = "bridge.jobs.run_rule"
REDACTED = "[redacted]"
# Header values that authenticate a request are never stored; the signature check needs them only once.
SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token")


def new_delivery_id() -> str:
    """Return a new delivery id that sorts by time."""
    return f"{time.time_ns() // 1_000_000:x}-{uuid.uuid4().hex[:12]}"


def scrub(text: str, secrets: list[str]) -> str:
    """Replace every secret (and its URL-encoded spelling) in a text."""
    from urllib.parse import quote, quote_plus

    for secret in secrets:
        if secret and len(secret) >= 4:
            for spelling in {secret, quote_plus(secret), quote(secret, safe="")}:
                text = text.replace(spelling, REDACTED)
    return text


def redact_event(event: dict, secrets: list[str]) -> dict:
    """Return an event safe to store: credential headers dropped, the source's secrets scrubbed everywhere."""
    headers = {name: REDACTED if name in SECRET_HEADERS else scrub(value, secrets) for name, value in event["headers"].items()}
    query = {name: scrub(str(value), secrets) for name, value in event["query"].items()}
    body = json.loads(scrub(json.dumps(event["body"]), secrets)) if secrets else event["body"]
    return {**event, "headers": headers, "query": query, "body": body}


@dataclass
class Outcome:
    """What happened to one event of a request: queued, unmatched, or a duplicate of an earlier delivery."""

    delivery_id: str
    source: str
    event: str
    matched: list[str] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)
    decisions: list[dict] = field(default_factory=list)
    duplicate_of: str | None = None

    def to_dict(self) -> dict:
        """Describe the outcome for the sender's reply."""
        if self.duplicate_of:
            return {"delivery_id": self.duplicate_of, "source": self.source, "event": self.event, "duplicate": True,
                    "message": f"already received as delivery {self.duplicate_of}; nothing queued again"}
        reply = {"delivery_id": self.delivery_id, "source": self.source, "event": self.event,
                 "matched": self.matched, "jobs": self.jobs, "decisions": self.decisions}
        if not self.matched:
            reply["message"] = "matched no rule" if self.decisions else f"no rule of source {self.source!r} is for event {self.event!r}"
        return reply


def seen_key(event: dict, raw: bytes, index: int) -> str:
    """Return the dedupe key of an event: the sender's id, else a hash of the body (and its place in a batch)."""
    if event.get("sender_id"):
        return SEEN_KEY.format(event["source"], event["sender_id"])
    digest = hashlib.sha256(raw + f"\0{index}".encode()).hexdigest()[:32]
    return SEEN_KEY.format(event["source"], f"sha256:{digest}")


def accept(connection: redis.Redis, settings: Settings, batch: list[tuple[dict, list[Decision]]], raw: bytes,
           ruleset: RuleSet, secrets: list[str] = ()) -> list[Outcome]:
    """Store each new event's record and enqueue one job per matched rule, all in one transaction."""
    keys = [seen_key(event, raw, index) for index, (event, _) in enumerate(batch)]
    stored_raw = scrub(raw[:RAW_BODY_CAP].decode("utf-8", "replace"), list(secrets))
    queue = Queue(settings.queue_name, connection=connection)
    try:
        with connection.pipeline(transaction=True) as pipe:
            while True:
                try:
                    # WATCH makes "not seen yet" and "now queued" one step: a racing copy makes EXEC fail and re-read.
                    pipe.watch(*keys)
                    firsts = [pipe.get(key) for key in keys]
                    pipe.multi()
                    outcomes = [_write(pipe, queue, settings, event, decisions, key, first, stored_raw, len(raw), ruleset, list(secrets))
                                for (event, decisions), key, first in zip(batch, keys, firsts)]
                    pipe.execute()
                    return outcomes
                except redis.WatchError:
                    continue
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
        raise QueueUnavailable(f"the queue (Redis) cannot be reached, nothing was accepted: {error}") from None


def _write(pipe, queue: Queue, settings: Settings, event: dict, decisions: list[Decision], key: str, first: bytes | None,
           stored_raw: str, raw_length: int, ruleset: RuleSet, secrets: list[str]) -> Outcome:
    delivery_id = event["delivery_id"]
    if first is not None:
        first_id = first.decode()
        pipe.hincrby(RECORD_KEY.format(first_id), "duplicates", 1)
        return Outcome(delivery_id, event["source"], event["event"], duplicate_of=first_id)
    stored = redact_event(event, secrets)
    matched = [decision for decision in decisions if decision.matched]
    job_ids = [f"{delivery_id}_{index}" for index in range(len(matched))]
    jobs = [
        Queue.prepare_data(
            JOB_FUNCTION,
            args=(job_payload(decision.rule, stored, ruleset),),
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
    decided = [decision.to_dict() for decision in decisions]
    record = {
        "id": delivery_id,
        "source": event["source"],
        "event": event["event"],
        "sender_id": event.get("sender_id") or "",
        "received_at": now,
        "status": "queued" if jobs else "unmatched",
        "rules_version": ruleset.version,
        "decisions": json.dumps(decided),
        "jobs": json.dumps(job_ids),
        "headers": json.dumps(stored["headers"]),
        "query": json.dumps(stored["query"]),
        "body": stored_raw,
        "body_truncated": int(raw_length > RAW_BODY_CAP),
        "duplicates": 0,
    }
    record_key, timeline_key = RECORD_KEY.format(delivery_id), TIMELINE_KEY.format(delivery_id)
    pipe.set(key, delivery_id, ex=settings.dedupe_window)
    pipe.hset(record_key, mapping=record)
    pipe.expire(record_key, settings.delivery_ttl)
    pipe.rpush(timeline_key, json.dumps({"at": now, "status": "received"}),
               json.dumps({"at": now, "status": "queued" if jobs else "unmatched", "jobs": job_ids}))
    pipe.expire(timeline_key, settings.delivery_ttl)
    pipe.zadd(INDEX_KEY, {delivery_id: now})
    pipe.zremrangebyscore(INDEX_KEY, "-inf", now - settings.delivery_ttl)
    if jobs:
        queue.enqueue_many(jobs, pipeline=pipe)
    return Outcome(delivery_id, event["source"], event["event"], [d.rule.name for d in matched], job_ids, decided)


def load_record(connection: redis.Redis, delivery_id: str) -> dict | None:
    """Return a stored delivery record, decoded, with its timeline, or None."""
    raw = connection.hgetall(RECORD_KEY.format(delivery_id))
    if not raw:
        return None
    record = {key.decode(): value.decode("utf-8", "replace") for key, value in raw.items()}
    for name in ("decisions", "jobs", "headers", "query"):
        record[name] = json.loads(record[name])
    record["received_at"] = float(record["received_at"])
    record["body_truncated"] = record["body_truncated"] == "1"
    record["duplicates"] = int(record.get("duplicates", 0))
    record["timeline"] = [json.loads(item) for item in connection.lrange(TIMELINE_KEY.format(delivery_id), 0, -1)]
    return record
