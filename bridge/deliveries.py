"""Accept deliveries: records, dedupe keys and jobs written in one Redis transaction; read them back."""

from __future__ import annotations

import hashlib
import json
import random
import time
import uuid
from dataclasses import asdict, dataclass, field

import redis
from rq import Callback, Queue
from rq.job import Dependency, Job, JobStatus

from . import metrics
from .engine import Decision, job_payload, subject_of
from .errors import QueueUnavailable
from .redaction import REDACTED, redact, scrub
from .retries import RetryPolicy
from .rules import RuleSet
from .settings import Settings

RECORD_KEY = "bridge:delivery:{}"
TIMELINE_KEY = "bridge:delivery:{}:timeline"
ATTEMPTS_KEY = "bridge:delivery:{}:attempts"
INDEX_KEY = "bridge:deliveries"
SEEN_KEY = "bridge:seen:{}:{}"
# The name is the bare 32-byte digest: it is kept for months, for every delivery of a sender without timestamps.
REPLAY_KEY_PREFIX = b"bridge:replay:"
SUBJECT_KEY = "bridge:subject:{}"
INDEX_TRIM_CHANCE = 0.01
FAILURE_CALLBACK = "bridge.jobs.on_failure"
DONE_STATUSES = {"finished", "failed", "stopped", "canceled"}
# A delivery's status is its jobs' worst: one failed job makes the delivery failed. "needs-attention": an LMS
# has the person but cannot tell the bridge their id; "held": waiting for its connection to log in again;
# "skipped": the LMS had nothing to do (removing someone it does not have).
PRECEDENCE = ("failed", "needs-attention", "held", "retrying", "running", "queued", "skipped", "succeeded")
STATUSES = (*PRECEDENCE, "unmatched")
RAW_BODY_CAP = 64 * 1024
JOB_FUNCTION = "bridge.jobs.run_rule"
# Header values that authenticate a request are never stored; the signature check needs them only once.
SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token")


def new_delivery_id() -> str:
    """Return a new delivery id that sorts by time."""
    return f"{time.time_ns() // 1_000_000:x}-{uuid.uuid4().hex[:12]}"


def redact_event(event: dict, secrets: list[str]) -> dict:
    """Return an event safe to store: credential headers dropped, the source's secrets scrubbed everywhere."""
    headers = {name: REDACTED if name in SECRET_HEADERS else scrub(value, secrets) for name, value in event["headers"].items()}
    query = {name: scrub(str(value), secrets) for name, value in event["query"].items()}
    body = redact(event["body"], secrets, by_name=False)
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


def replay_key(source: str, signed: bytes, index: int) -> bytes:
    """Return the key that remembers signed bytes, so that a captured request resent with a fresh id is a duplicate."""
    return REPLAY_KEY_PREFIX + hashlib.sha256(f"{source}\0{index}\0".encode() + signed).digest()


def dedupe_keys(event: dict, raw: bytes, index: int, settings: Settings, signed: bytes | None) -> list[tuple[str | bytes, int]]:
    """Return (key, seconds to keep it) for each key that makes a later copy of the event a duplicate."""
    if event.get("replay_of"):
        return []  # a replay is asked for on purpose: it is never a duplicate
    keys: list[tuple[str | bytes, int]] = [(seen_key(event, raw, index), settings.dedupe_window)]
    if signed is not None and settings.replay_window > 0:
        keys.append((replay_key(event["source"], signed, index), settings.replay_window))
    return keys


def accept(connection: redis.Redis, settings: Settings, batch: list[tuple[dict, list[Decision]]], raw: bytes,
           ruleset: RuleSet, secrets: list[str] = (), signed: bytes | None = None) -> list[Outcome]:
    """Store each new event's record and enqueue one job per matched rule, all in one transaction.

    `signed` is what the sender's signature covers when it has no signed timestamp: those bytes are
    remembered for the replay window, so that a copy with a forged delivery id is a duplicate too.
    Jobs about the same subject (a person) run in arrival order: each depends, through RQ's
    dependencies, on the previous unfinished job about that subject.
    """
    keys = [dedupe_keys(event, raw, index, settings, signed) for index, (event, _) in enumerate(batch)]
    subjects = [{d.rule.name: subject_of(d.rule, event) for d in decisions if d.matched} for event, decisions in batch]
    subject_keys = sorted({subject_key(s) for found in subjects for s in found.values() if s})
    stored_raw = scrub(raw[:RAW_BODY_CAP].decode("utf-8", "replace"), list(secrets))
    queue = Queue(settings.queue_name, connection=connection)
    try:
        with connection.pipeline(transaction=True) as pipe:
            while True:
                try:
                    # WATCH makes "not seen yet" and "now queued" one step: a racing copy makes EXEC fail and re-read.
                    watched = [key for found in keys for key, _ in found] + subject_keys
                    if watched:  # a replay about nobody has nothing to watch
                        pipe.watch(*watched)
                    values = dict(zip(watched, pipe.mget(watched))) if watched else {}
                    # Any one of an event's keys seen before makes it a duplicate of the delivery it names.
                    firsts = [next((values[key] for key, _ in found if values.get(key) is not None), None)
                              for found in keys]
                    pending = _unfinished_jobs(pipe, {key: values[key] for key in subject_keys})
                    pipe.multi()
                    writer = _Writer(pipe, queue, settings, ruleset, list(secrets), stored_raw, len(raw), pending)
                    outcomes = [writer.write(event, decisions, found, dedupe, first)
                                for (event, decisions), found, dedupe, first in zip(batch, subjects, keys, firsts)]
                    pipe.execute()
                    return outcomes
                except redis.WatchError:
                    continue
    except redis.RedisError as error:
        # Unreachable, read-only after a failover, out of memory: whatever it is, nothing was accepted.
        raise QueueUnavailable(f"the queue (Redis) cannot take the delivery, nothing was accepted: {error}") from None


def subject_key(subject: str) -> str:
    """Return the key holding the last job about a subject."""
    return SUBJECT_KEY.format(hashlib.sha256(subject.encode()).hexdigest()[:32])


def _unfinished_jobs(pipe, last_jobs: dict[str, bytes | None]) -> dict[str, str]:
    """Return subject key -> its last job, for jobs not finished yet; WATCH them so a finish re-runs the check."""
    pending = {}
    for key, job_id in last_jobs.items():
        if job_id is None:
            continue
        job_key = Job.key_for(job_id.decode())
        pipe.watch(job_key)
        status = pipe.hget(job_key, "status")
        if status is not None and status.decode() not in DONE_STATUSES:
            pending[key] = job_id.decode()
    return pending


class _Writer:
    """Write the records and jobs of one acceptance into a MULTI pipeline."""

    def __init__(self, pipe, queue: Queue, settings: Settings, ruleset: RuleSet, secrets: list[str], stored_raw: str,
                 raw_length: int, pending: dict[str, str]):
        self.pipe, self.queue, self.settings, self.ruleset = pipe, queue, settings, ruleset
        self.secrets, self.stored_raw, self.raw_length, self.pending = secrets, stored_raw, raw_length, pending

    def write(self, event: dict, decisions: list[Decision], subjects: dict, keys: list[tuple[str | bytes, int]],
              first: bytes | None) -> Outcome:
        """Write one event: a duplicate only counts; a new one gets its record, timeline and jobs."""
        pipe, settings = self.pipe, self.settings
        delivery_id = event["delivery_id"]
        if first is not None:
            first_id = first.decode()
            pipe.hincrby(RECORD_KEY.format(first_id), "duplicates", 1)
            metrics.count(pipe, "bridge_deliveries_total", source=event["source"], outcome="duplicate")
            metrics.count(pipe, "bridge_duplicates_total", source=event["source"])
            return Outcome(delivery_id, event["source"], event["event"], duplicate_of=first_id)
        stored = redact_event(event, self.secrets)
        matched = [decision for decision in decisions if decision.matched]
        job_ids = [f"{delivery_id}_{index}" for index in range(len(matched))]
        for decision, job_id in zip(matched, job_ids):
            self._enqueue(decision, job_id, stored, subjects.get(decision.rule.name))
        now = time.time()
        decided = [decision.to_dict() for decision in decisions]
        record = {
            "id": delivery_id,
            "source": event["source"],
            "event": event["event"],
            "sender_id": event.get("sender_id") or "",
            "received_at": now,
            "rules_version": self.ruleset.version,
            "decisions": json.dumps(decided),
            "jobs": json.dumps(job_ids),
            "subjects": json.dumps(sorted({s for s in subjects.values() if s})),
            "connections": json.dumps(sorted({a["connection"] for d in matched for a in d.rule.actions})),
            "headers": json.dumps(stored["headers"]),
            "query": json.dumps(stored["query"]),
            "event_body": json.dumps(stored["body"]),
            "body": self.stored_raw,
            "body_truncated": int(self.raw_length > RAW_BODY_CAP),
            "duplicates": 0,
            "replay_of": event.get("replay_of") or "",
            **{f"job:{job_id}": "queued" for job_id in job_ids},
        }
        record_key, timeline_key = RECORD_KEY.format(delivery_id), TIMELINE_KEY.format(delivery_id)
        for key, seconds in keys:
            pipe.set(key, delivery_id, ex=seconds)
        pipe.hset(record_key, mapping=record)
        pipe.expire(record_key, settings.delivery_ttl)
        pipe.rpush(timeline_key, json.dumps({"at": now, "status": "received"}),
                   json.dumps({"at": now, "status": "queued" if job_ids else "unmatched", "jobs": job_ids}))
        pipe.expire(timeline_key, settings.delivery_ttl)
        pipe.zadd(INDEX_KEY, {delivery_id: now})
        if random.random() < INDEX_TRIM_CHANCE:
            # Trimming now and then keeps the index as short, without a command on every webhook.
            pipe.zremrangebyscore(INDEX_KEY, "-inf", now - settings.delivery_ttl)
        metrics.count(pipe, "bridge_deliveries_total", source=event["source"], outcome="queued" if job_ids else "unmatched")
        for decision in matched:
            metrics.count(pipe, "bridge_rule_matches_total", rule=decision.rule.name)
        return Outcome(delivery_id, event["source"], event["event"], [d.rule.name for d in matched], job_ids, decided)

    def _enqueue(self, decision: Decision, job_id: str, event: dict, subject: str | None) -> None:
        """Add one job to the transaction; behind the subject's unfinished job when there is one."""
        rule, settings, pipe = decision.rule, self.settings, self.pipe
        connection = self.ruleset.connections.get(rule.actions[0]["connection"])
        policy = RetryPolicy.of(settings, connection.spec.get("retry") if connection else None, rule.retry)
        key = subject_key(subject) if subject else None
        previous = self.pending.get(key) if key else None
        job = self.queue.create_job(
            JOB_FUNCTION,
            args=(job_payload(rule, event, self.ruleset, retry=asdict(policy)),),
            job_id=job_id,
            timeout=settings.job_timeout,
            result_ttl=settings.delivery_ttl,
            failure_ttl=settings.delivery_ttl,
            ttl=settings.delivery_ttl,
            description=f"rule {rule.name} for delivery {event['delivery_id']}",
            meta={"delivery_id": event["delivery_id"], "rule": rule.name, "rules_version": self.ruleset.version,
                  "subject": subject, "retry_max": policy.attempts},
            retry=policy.rq_retry(),
            on_failure=Callback(FAILURE_CALLBACK),
            depends_on=Dependency(jobs=[previous], allow_failure=True) if previous else None,
        )
        if previous:
            # What RQ's own enqueue does for an unfinished dependency, written into this transaction.
            job.set_status(JobStatus.DEFERRED, pipeline=pipe)
            job.register_dependency(pipeline=pipe)
            job.save(pipeline=pipe)
            job.cleanup(ttl=job.ttl, pipeline=pipe)
            pipe.sadd(self.queue.redis_queues_keys, self.queue.key)
        else:
            self.queue.enqueue_job(job, pipeline=pipe)
        if key:
            pipe.set(key, job_id, ex=settings.delivery_ttl)
            self.pending[key] = job_id


# Only a delivery that still exists gets a job's step: a late retry must not bring back an expired record.
_NOTE = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
end
"""


def note(connection: redis.Redis, delivery_id: str, job_id: str, status: str, /, **detail) -> None:
    """Add a job's step to its delivery's timeline (running, retrying, succeeded, failed)."""
    entry = {"at": time.time(), "status": status, "job": job_id, **detail}
    connection.eval(_NOTE, 2, RECORD_KEY.format(delivery_id), TIMELINE_KEY.format(delivery_id),
                    json.dumps(entry, default=str), f"job:{job_id}", status)


def delivery_status(record: dict) -> str:
    """Return a delivery's status from its jobs' statuses."""
    statuses = {value for key, value in record.items() if key.startswith("job:")}
    if not statuses:
        return "unmatched"
    for status in PRECEDENCE:
        if status in statuses:
            return status
    return "queued"


def load_record(connection: redis.Redis, delivery_id: str) -> dict | None:
    """Return a stored delivery record, decoded, with its status and timeline, or None."""""
    raw = connection.hgetall(RECORD_KEY.format(delivery_id))
    if b"id" not in raw:
        return None  # missing, or only a stray counter left after it expired
    record = {key.decode(): value.decode("utf-8", "replace") for key, value in raw.items()}
    for name in ("decisions", "jobs", "headers", "query", "subjects", "connections", "event_body"):
        record[name] = json.loads(record.get(name) or "null")
    record["received_at"] = float(record["received_at"])
    record["body_truncated"] = record["body_truncated"] == "1"
    record["duplicates"] = int(record.get("duplicates", 0))
    record["status"] = delivery_status(record)
    record["timeline"] = [json.loads(item) for item in connection.lrange(TIMELINE_KEY.format(delivery_id), 0, -1)]
    return record
