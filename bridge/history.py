"""Find deliveries and explain them: status, timeline, decisions and every LMS exchange."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import redis

from .deliveries import ATTEMPTS_KEY, INDEX_KEY, RECORD_KEY, STATUSES, delivery_status, load_record

PAGE = 200
SUMMARY_FIELDS = ("id", "received_at", "source", "event", "decisions", "jobs", "subjects", "connections", "duplicates",
                  "replay_of")
_AGE = re.compile(r"([0-9]+)([smhd])")
_AGE_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str | None) -> float | None:
    """Read a time: ISO 8601 (UTC unless it says otherwise), or an age such as 30m, 2h, 7d; raise ValueError."""
    if text is None:
        return None
    age = _AGE.fullmatch(text.strip())
    if age:
        seconds = int(age.group(1)) * _AGE_SECONDS[age.group(2)]
        # An age older than time itself means "since the beginning".
        return max(0.0, time.time() - seconds) if seconds < 10**12 else 0.0
    try:
        moment = datetime.fromisoformat(text.strip())
        return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()
    except (ValueError, OverflowError):
        raise ValueError(f"{text!r} is neither an ISO 8601 time (2026-11-25T10:00:00Z) nor an age such as 30m, 2h, 7d") from None


@dataclass(frozen=True)
class Filters:
    """What to look for in the delivery history; None means any."""

    status: str | None = None
    source: str | None = None
    rule: str | None = None
    connection: str | None = None
    subject: str | None = None
    since: float | None = None
    until: float | None = None

    def __post_init__(self):
        if self.status is not None and self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {self.status!r}")

    def rejects(self, raw: dict[bytes, bytes]) -> bool:
        """Tell from a stored hash, without decoding all of it, that a record fails the source, status, subject or connection filter."""
        if self.source is not None and raw.get(b"source") != self.source.encode():
            return True
        if self.status is not None:
            jobs = {key.decode(): value.decode() for key, value in raw.items() if key.startswith(b"job:")}
            if delivery_status(jobs) != self.status:
                return True
        if self.subject is not None and self.subject.strip().lower() not in json.loads(raw.get(b"subjects") or b"[]"):
            return True
        return self.connection is not None and self.connection not in json.loads(raw.get(b"connections") or b"[]")

    def keep(self, record: dict) -> bool:
        """Tell whether a record passes every filter."""
        matched = [d["rule"] for d in record["decisions"] if d["matched"]]
        return ((self.status is None or record["status"] == self.status)
                and (self.source is None or record["source"] == self.source)
                and (self.rule is None or self.rule in matched)
                and (self.connection is None or self.connection in (record.get("connections") or []))
                and (self.subject is None or self.subject.strip().lower() in (record.get("subjects") or [])))


def find(connection: redis.Redis, filters: Filters, limit: int = 50, scan_limit: int = 10_000) -> list[dict]:
    """Return up to `limit` deliveries that pass the filters, newest first, reading at most `scan_limit` records."""
    return page(connection, filters, limit, scan_limit=scan_limit)[0]


def page(connection: redis.Redis, filters: Filters, limit: int = 50, before: float | None = None,
         scan_limit: int = 10_000) -> tuple[list[dict], float | None]:
    """Return up to `limit` deliveries received before `before`, newest first, and where the next page starts.

    At most `scan_limit` records are read, so a filter that matches little costs a bounded time; the
    cursor returned then points past what was read, and None means the history has nothing older.
    """
    found: list[dict] = []
    high: float | str = "+inf" if filters.until is None else filters.until
    if before is not None and (filters.until is None or before <= filters.until):
        high = f"({before!r}"  # exclusive: the page before ended on that score
    low = "-inf" if filters.since is None else filters.since
    offset, cursor = 0, None
    while len(found) < limit and offset < scan_limit:
        # An unfiltered page needs `limit` records: read no more the first time.
        batch = min(PAGE if offset else max(limit, 1), scan_limit - offset)
        entries = connection.zrevrangebyscore(INDEX_KEY, high, low, start=offset, num=batch, withscores=True)
        if not entries:
            return found, None
        offset += len(entries)
        raws = _summaries(connection, [delivery_id.decode() for delivery_id, _ in entries])
        for (delivery_id, score), raw in zip(entries, raws):
            cursor = score
            if not raw or filters.rejects(raw):
                continue  # expired between the index and the record, or not wanted
            record = summary(delivery_id.decode(), raw)
            if filters.keep(record):
                found.append(record)
                if len(found) == limit:
                    break
    return found, cursor


def _summaries(connection: redis.Redis, ids: list[str]) -> list[dict[bytes, bytes]]:
    """Read what listings need of each record (not its bodies): two pipelined round trips, whatever the bodies weigh."""
    with connection.pipeline(transaction=False) as pipe:
        for delivery_id in ids:
            pipe.hmget(RECORD_KEY.format(delivery_id), *SUMMARY_FIELDS)
        rows = [{name.encode(): value for name, value in zip(SUMMARY_FIELDS, values) if value is not None}
                for values in pipe.execute()]
    with connection.pipeline(transaction=False) as pipe:
        fields = []
        for delivery_id, row in zip(ids, rows):
            fields.append([f"job:{job}" for job in json.loads(row.get(b"jobs") or b"[]")] if b"id" in row else [])
            if fields[-1]:
                pipe.hmget(RECORD_KEY.format(delivery_id), *fields[-1])
        statuses = iter(pipe.execute())
    for row, names in zip(rows, fields):
        if names:
            row.update({name.encode(): value for name, value in zip(names, next(statuses)) if value is not None})
    return [row if b"id" in row else {} for row in rows]


def summary(delivery_id: str, raw: dict) -> dict:
    """Return the short form of a stored record, as listings show it."""
    fields = {key.decode(): value.decode("utf-8", "replace") for key, value in raw.items()}
    decisions = json.loads(fields.get("decisions") or "[]")
    return {
        "id": delivery_id,
        "received_at": float(fields.get("received_at", 0)),
        "source": fields.get("source", ""),
        "event": fields.get("event", ""),
        "status": delivery_status(fields),
        "decisions": decisions,
        "matched": [d["rule"] for d in decisions if d["matched"]],
        "jobs": json.loads(fields.get("jobs") or "[]"),
        "subjects": json.loads(fields.get("subjects") or "[]"),
        "connections": json.loads(fields.get("connections") or "[]"),
        "duplicates": int(fields.get("duplicates") or 0),
        "replay_of": fields.get("replay_of") or None,
    }


def show(connection: redis.Redis, delivery_id: str) -> dict | None:
    """Return everything known about one delivery, or None."""
    record = load_record(connection, delivery_id)
    if record is None:
        return None
    record["attempts"] = [json.loads(item) for item in connection.lrange(ATTEMPTS_KEY.format(delivery_id), 0, -1)]
    record["job_status"] = {key[4:]: record.pop(key) for key in [key for key in record if key.startswith("job:")]}
    return record
