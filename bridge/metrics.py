"""Prometheus metrics kept in Redis, so that every gunicorn worker and every RQ worker adds to the same numbers."""

from __future__ import annotations

import json
import time
from functools import lru_cache

import redis
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector, CollectorRegistry

COUNTERS_KEY = "bridge:metrics:counters"
# One field per bucket an observation falls in (not cumulative: one write each), plus the sum; summed up when read.
HISTOGRAMS_KEY = "bridge:metrics:latency"
NEEDS_ATTENTION_KEY = "bridge:needs-attention"  # ids of failed jobs that wait for a person (lms link, then retry)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# name -> (help, label names); every counter the bridge keeps.
COUNTERS = {
    "bridge_deliveries_total": ("Webhook deliveries by source and outcome.", ("source", "outcome")),
    "bridge_signature_failures_total": ("Webhooks refused because they did not prove their sender.", ("source",)),
    "bridge_duplicates_total": ("Deliveries dropped as duplicates of an earlier one.", ("source",)),
    "bridge_rule_matches_total": ("Rules that matched a delivery.", ("rule",)),
    "bridge_jobs_total": ("Job tries by rule and outcome (succeeded, skipped, retried, held, failed, needs-attention).",
                          ("rule", "outcome")),
    "bridge_retries_total": ("Job retries planned, by rule.", ("rule",)),
}
HISTOGRAMS = {
    "bridge_lms_call_seconds": ("LMS call latency by connection and operation.", ("connection", "operation")),
}


def field(name: str, **labels) -> str:
    """Return the hash field of one series of a counter or histogram (a script may add to it)."""
    return _series(name, *labels.items())


@lru_cache(maxsize=4096)
def _series(name: str, *labels: tuple[str, str]) -> str:
    labels = dict(labels)
    return json.dumps([name, *(str(labels[label]) for label in COUNTERS.get(name, HISTOGRAMS.get(name, ("", ())))[1])])


def count(conn, name: str, amount: int = 1, **labels) -> None:
    """Add to a counter; `conn` may be a pipeline, so the count commits with what it counts."""
    conn.hincrby(COUNTERS_KEY, field(name, **labels), amount)


def observe(pipe, name: str, seconds: float, **labels) -> None:
    """Add one observation to a histogram (its bucket and the sum) to a pipeline."""
    series = field(name, **labels)
    bucket = next((bound for bound in LATENCY_BUCKETS if seconds <= bound), float("inf"))
    pipe.hincrby(HISTOGRAMS_KEY, f"{series}|{bucket}", 1)
    pipe.hincrbyfloat(HISTOGRAMS_KEY, f"{series}|sum", seconds)


class RedisCollector(Collector):
    """Read the counters, histograms and queue state from Redis at scrape time."""

    def __init__(self, connection: redis.Redis, queue_name: str):
        self.connection, self.queue_name = connection, queue_name

    def collect(self):
        """Yield every metric family."""
        from rq import Queue, Worker
        from rq.registry import FailedJobRegistry

        from .queue_state import STATES, read_state

        counters = {name: CounterMetricFamily(name.removesuffix("_total"), text, labels=labels)
                    for name, (text, labels) in COUNTERS.items()}
        for series, value in self.connection.hgetall(COUNTERS_KEY).items():
            name, *values = json.loads(series)
            if name in counters:
                counters[name].add_metric(values, float(value))
        yield from counters.values()
        yield from self._histograms()
        state = read_state(self.connection, self.queue_name)
        depth = GaugeMetricFamily("bridge_queue_depth", "Jobs waiting in the queue.")
        depth.add_metric([], state.counts["queued"])
        yield depth
        oldest = GaugeMetricFamily("bridge_queue_oldest_job_age_seconds", "Age of the oldest waiting job (0 when none).")
        oldest.add_metric([], state.overdue["queued"])
        yield oldest
        jobs = GaugeMetricFamily("bridge_queue_jobs", "Jobs in each of RQ's states (queued, started, deferred, "
                                 "scheduled, ready, failed).", labels=("state",))
        for name in STATES:
            jobs.add_metric([name], state.counts[name])
        yield jobs
        overdue = GaugeMetricFamily("bridge_queue_overdue_seconds", "How late the most overdue job of a state is: "
                                    "queued (waiting), started (heartbeat lapsed), scheduled (past due), ready (not queued).",
                                    labels=("state",))
        for name, seconds in state.overdue.items():
            overdue.add_metric([name], seconds)
        yield overdue
        registry = FailedJobRegistry(self.queue_name, connection=self.connection)
        failed = GaugeMetricFamily("bridge_failed_jobs", "Jobs in RQ's failed job registry.")
        failed.add_metric([], state.counts["failed"])
        yield failed
        attention = GaugeMetricFamily("bridge_jobs_needing_attention",
                                      "Failed jobs waiting for a person: an LMS user id to link, then a retry.")
        attention.add_metric([], self._needing_attention(registry.key))
        yield attention
        workers = GaugeMetricFamily("bridge_workers", "RQ workers alive on the queue.")
        workers.add_metric([], Worker.count(queue=Queue(self.queue_name, connection=self.connection)))
        yield workers

    def _needing_attention(self, failed_key: str) -> int:
        """Count the jobs marked as needing attention that are still failed; forget the others."""
        members = list(self.connection.smembers(NEEDS_ATTENTION_KEY))
        with self.connection.pipeline(transaction=False) as pipe:
            for member in members:
                pipe.zscore(failed_key, member)
            scores = pipe.execute()
        gone = [member for member, score in zip(members, scores) if score is None]
        if gone:
            self.connection.srem(NEEDS_ATTENTION_KEY, *gone)
        return len(members) - len(gone)

    def _histograms(self):
        raw = self.connection.hgetall(HISTOGRAMS_KEY)
        series: dict[str, dict[str, float]] = {}
        for key, value in raw.items():
            name, _, part = key.decode().rpartition("|")
            series.setdefault(name, {})[part] = float(value)
        families = {name: HistogramMetricFamily(name, text, labels=labels) for name, (text, labels) in HISTOGRAMS.items()}
        for key, parts in series.items():
            name, *values = json.loads(key)
            if name not in families:
                continue
            buckets, total = [], 0.0
            for bound in (*LATENCY_BUCKETS, float("inf")):
                total += parts.get(str(bound), 0.0)
                buckets.append(("+Inf" if bound == float("inf") else str(bound), total))
            families[name].add_metric(values, buckets, parts.get("sum", 0.0))
        yield from families.values()


def registry_for(connection: redis.Redis, queue_name: str) -> CollectorRegistry:
    """Return a registry that exports the bridge's metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(connection, queue_name))
    return registry
