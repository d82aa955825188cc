"""Accept deliveries: records, dedupe keys and jobs written in one atomic Redis step; read them back."""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
import zlib
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from itertools import chain
from importlib import resources

import msgpack
import redis
from rq import Callback, Queue

from . import jsontext, metrics
from .engine import Decision, job_payload, subject_of
from .errors import QueueUnavailable
from .logs import utc_second
from .redaction import REDACTED, redact, scrub, spellings_in_json
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
# A delivery's status is its jobs' worst: one failed job makes the delivery failed. "needs-attention": an LMS
# has the person but cannot tell the bridge their id; "held": waiting for its connection to log in again;
# "skipped": the LMS had nothing to do (removing someone it does not have).
PRECEDENCE = ("failed", "needs-attention", "held", "retrying", "running", "queued", "skipped", "succeeded")
STATUSES = (*PRECEDENCE, "unmatched")
RAW_BODY_CAP = 64 * 1024
JOB_FUNCTION = "bridge.jobs.run_rule"
COMPRESS_ABOVE = 16 * 1024  # bytes of a job's call: smaller ones are stored as they are
# Header values that authenticate a request are never stored; the signature check needs them only once.
SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token")


def new_delivery_id() -> str:
    """Return a new delivery id that sorts by time."""
    return f"{time.time_ns() // 1_000_000:x}-{os.urandom(6).hex()}"


def stored_event(event: dict, secrets: list[str]) -> tuple[dict, dict[str, str]]:
    """Return the event safe to store (credential headers dropped, the source's secrets scrubbed) and its parts as JSON."""
    headers = {name: REDACTED if name in SECRET_HEADERS else value for name, value in event["headers"].items()}
    spellings, checkable = spellings_in_json(tuple(secrets))
    stored, texts = dict(event), {}
    for part, value in (("headers", headers), ("query", event["query"]), ("body", event["body"])):
        text = jsontext.dumps(value)
        # A secret spelled in plain printable ASCII shows in the JSON wherever it is in the data: when none
        # shows, there is nothing to scrub (most deliveries), and the walk through the data is skipped.
        if spellings and (not checkable or any(spelling in text for spelling in spellings)):
            value = redact(value, secrets, by_name=False)
            text = jsontext.dumps(value)
        stored[part], texts[part] = value, text
    return stored, texts


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
    """Store each new event's record and enqueue one job per matched rule, all in one atomic step.

    One Lua script (bridge/accept.lua) checks the dedupe keys, finds each person's last unfinished
    job and writes records, timelines, metrics and RQ jobs: one round trip, and a racing copy of
    the same delivery is a duplicate, exactly. `signed` is what the sender's signature covers when
    it has no signed timestamp: those bytes are remembered for the replay window, so that a copy
    with a forged delivery id is a duplicate too. Jobs about the same subject (a person) run in
    arrival order: each depends, through RQ's dependencies, on the previous unfinished job about
    that subject.
    """
    plan = _Plan(connection, settings, ruleset, list(secrets), raw)
    for index, (event, decisions) in enumerate(batch):
        plan.add(event, decisions, dedupe_keys(event, raw, index, settings, signed))
    try:
        answers = _script(connection)(args=[plan.packed()], client=connection)
    except redis.RedisError as error:
        # Unreachable, read-only after a failover, out of memory: whatever it is, nothing was accepted.
        raise QueueUnavailable(f"the queue (Redis) cannot take the delivery, nothing was accepted: {error}") from None
    return [outcome if not first else replace(outcome, duplicate_of=first.decode())
            for outcome, first in zip(plan.outcomes, answers)]


flatten = chain.from_iterable


def subject_key(subject: str) -> str:
    """Return the key holding the last job about a subject."""
    return SUBJECT_KEY.format(hashlib.sha256(subject.encode()).hexdigest()[:32])


@lru_cache(maxsize=1)
def _script_text() -> str:
    return resources.files("bridge").joinpath("accept.lua").read_text("utf-8")


@lru_cache(maxsize=16)
def _script(connection: redis.Redis):
    """Return the acceptance script for a connection: run by its SHA, loaded again when Redis lost it (NOSCRIPT)."""
    return connection.register_script(_script_text())


@lru_cache(maxsize=16)
def _queue(connection: redis.Redis, name: str) -> Queue:
    return Queue(name, connection=connection)


@lru_cache(maxsize=16)
def _keys(queue: Queue) -> dict[str, str]:
    """Return the names of the keys the script writes, but for those of each delivery and job."""
    return {"queue_key": queue.key, "queues_key": queue.redis_queues_keys, "deferred_key": queue.deferred_job_registry.key,
            "counters_key": metrics.COUNTERS_KEY, "index_key": INDEX_KEY, "record_prefix": RECORD_KEY.format(""),
            "timeline_suffix": TIMELINE_KEY.format("").removeprefix(RECORD_KEY.format(""))}


class _Plan:
    """The arguments of one run of the acceptance script, and the outcomes it answers when nothing is a duplicate."""

    def __init__(self, connection: redis.Redis, settings: Settings, ruleset: RuleSet, secrets: list[str], raw: bytes):
        self.settings, self.ruleset, self.secrets = settings, ruleset, secrets
        self.queue = _queue(connection, settings.queue_name)
        self.stored_raw = scrub(raw[:RAW_BODY_CAP].decode("utf-8", "replace"), secrets)
        self.raw_length = len(raw)
        self.events: list = []
        self.outcomes: list[Outcome] = []

    def packed(self) -> bytes:
        """Return the script's one argument: the plan as MessagePack (bridge/accept.lua reads it by these names)."""
        settings = self.settings
        # Trimming now and then keeps the index as short, without a command on every webhook.
        trim_below = str(time.time() - settings.delivery_ttl) if random.random() < INDEX_TRIM_CHANCE else ""
        return msgpack.packb({**_keys(self.queue), "delivery_ttl": str(settings.delivery_ttl), "trim_below": trim_below,
                              "events": self.events}, use_bin_type=False)  # Redis's cmsgpack predates MessagePack's bin type: bytes go as raw strings

    def add(self, event: dict, decisions: list[Decision], keys: list[tuple[str | bytes, int]]) -> None:
        """Plan one event: its dedupe keys, what counts if it is a duplicate, else its record, timeline and jobs."""
        delivery_id, source = event["delivery_id"], event["source"]
        stored, texts = stored_event(event, self.secrets)
        matched = [decision for decision in decisions if decision.matched]
        job_ids = [f"{delivery_id}_{index}" for index in range(len(matched))]
        subjects = {decision.rule.name: subject_of(decision.rule, event) for decision in matched}
        now = time.time()
        received_at = repr(now)
        decided = [decision.to_dict() for decision in decisions]
        record = {
            "id": delivery_id,
            "source": source,
            "event": event["event"],
            "sender_id": event.get("sender_id") or "",
            "received_at": received_at,
            "rules_version": self.ruleset.version,
            "decisions": jsontext.dumps(decided),
            "jobs": jsontext.dumps(job_ids),
            "subjects": jsontext.dumps(sorted({s for s in subjects.values() if s})),
            "connections": jsontext.dumps(sorted({a["connection"] for d in matched for a in d.rule.actions})),
            "headers": texts["headers"],
            "query": texts["query"],
            "event_body": texts["body"],
            "body": self.stored_raw,
            "body_truncated": "1" if self.raw_length > RAW_BODY_CAP else "0",
            "duplicates": "0",
            "replay_of": event.get("replay_of") or "",
            **{f"job:{job_id}": "queued" for job_id in job_ids},
        }
        timeline = [jsontext.dumps({"at": now, "status": "received"}),
                    jsontext.dumps({"at": now, "status": "queued" if job_ids else "unmatched", "jobs": job_ids})]
        counters = [metrics.field("bridge_deliveries_total", source=source, outcome="queued" if job_ids else "unmatched"),
                    *(metrics.field("bridge_rule_matches_total", rule=decision.rule.name) for decision in matched)]
        duplicate_counters = [metrics.field("bridge_deliveries_total", source=source, outcome="duplicate"),
                              metrics.field("bridge_duplicates_total", source=source)]
        jobs = [self._job(decision, job_id, stored, subjects[decision.rule.name], now)
                for decision, job_id in zip(matched, job_ids)]
        self.events.append({"id": delivery_id, "keys": [(key, str(ttl)) for key, ttl in keys],
                            "duplicate_counters": duplicate_counters, "record": [*flatten(record.items())],
                            "timeline": timeline, "received_at": received_at, "counters": counters, "jobs": jobs})
        self.outcomes.append(Outcome(delivery_id, source, event["event"], [d.rule.name for d in matched], job_ids, decided))

    def _job(self, decision: Decision, job_id: str, event: dict, subject: str | None, now: float) -> dict:
        """Return one job's part of the plan: its id, subject key, enqueue times and RQ's fields."""
        rule, settings, serializer = decision.rule, self.settings, self.queue.serializer
        policy, policy_data, fields = _job_template(self.queue, self.ruleset, settings, rule)
        payload = job_payload(rule, event, self.ruleset, retry=policy_data)
        meta = {"delivery_id": event["delivery_id"], "rule": rule.name, "rules_version": self.ruleset.version,
                "subject": subject, "retry_max": policy.attempts}
        # The fields RQ's Job.to_dict() gives a job of its own making, this job's own four among them.
        created_at = _utc_text(now)  # also its enqueued_at: the same moment, as far as anyone can tell
        fields = {**fields, "created_at": created_at, "description": f"rule {rule.name} for delivery {event['delivery_id']}",
                  "data": _job_data(serializer.dumps((JOB_FUNCTION, None, (payload,), {}))),
                  "meta": serializer.dumps(meta)}
        return {"id": job_id, "subject": subject_key(subject) if subject else "", "enqueued_at": created_at,
                "deferred_until": str(int(now) + settings.delivery_ttl), "fields": [*flatten(fields.items())]}


def _utc_text(moment: float) -> str:
    """Return a time as RQ's utcformat writes it (2026-11-30T09:04:08.690864Z)."""
    whole = int(moment)
    return f"{utc_second(whole)}.{int((moment - whole) * 1e6):06d}Z"


def _job_data(data: bytes) -> bytes:
    """Return a job's call as stored: zlib-compressed, as RQ stores it, only when it is large."""
    # RQ's Job.restore reads uncompressed data too, and the worker saves the job compressed when it ends;
    # for a small job zlib would cost more than all the rest of its planning.
    return zlib.compress(data) if len(data) > COMPRESS_ABOVE else data


def _job_template(queue: Queue, ruleset: RuleSet, settings: Settings, rule) -> tuple[RetryPolicy, dict, dict]:
    """Return a rule's retry policy (also as data) and the fields RQ gives each of its jobs, worked out once per rule set.

    RQ builds them itself, for a job of the rule made with Queue.create_job; each job then only
    adds what is its own (created_at, description, data, meta), serialized as RQ serializes them.
    """
    key = ("job", id(settings), rule.name)
    if key not in ruleset.memo:
        connection = ruleset.connections.get(rule.actions[0]["connection"])
        policy = RetryPolicy.of(settings, connection.spec.get("retry") if connection else None, rule.retry)
        prototype = queue.create_job(JOB_FUNCTION, job_id="prototype", timeout=settings.job_timeout,
                                     result_ttl=settings.delivery_ttl, failure_ttl=settings.delivery_ttl,
                                     ttl=settings.delivery_ttl, retry=policy.rq_retry(), on_failure=Callback(FAILURE_CALLBACK))
        # As text, as redis-py would send them: the plan carries strings only (a Lua number is a double).
        fields = {name: str(value) if isinstance(value, int) else value for name, value in prototype.to_dict().items()
                  if name not in ("status", "created_at", "description", "data", "meta")}
        ruleset.memo[key] = policy, asdict(policy), fields
    return ruleset.memo[key]


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
                    jsontext.dumps(entry, default=str), f"job:{job_id}", status)


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
