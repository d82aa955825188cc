"""Operational endpoints: /healthz (the process is up), /readyz (it can do its work), /metrics (Prometheus)."""

from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import urlsplit

import redis
from flask import Blueprint, Response, current_app, jsonify
from rq import Queue, Worker

from .errors import ConfigErrors, QueueUnavailable
from .metrics import registry_for
from .queue_state import read_state
from .redaction import scrub

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz():
    """Say that the process is up."""
    return jsonify(status="ok")


@blueprint.get("/metrics")
def metrics():
    """Export the bridge's metrics in Prometheus' text format."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    runtime = current_app.extensions["bridge"]
    try:
        body = generate_latest(registry_for(runtime.redis, runtime.settings.queue_name))
    except redis.exceptions.RedisError as error:
        raise QueueUnavailable(f"metrics are kept in Redis, which does not answer: {type(error).__name__}") from None
    return Response(body, mimetype=CONTENT_TYPE_LATEST.split(";")[0], headers={"Content-Type": CONTENT_TYPE_LATEST})


@blueprint.get("/readyz")
def readyz():
    """Say whether Redis answers, the rules loaded without errors and a worker was seen recently; 503 if not."""
    runtime = current_app.extensions["bridge"]
    connection, redis_check = _redis(runtime)
    checks = {"redis": redis_check, "rules": _rules(runtime.rules), "worker": _worker(runtime.settings, connection),
              "jobs": _jobs(runtime.settings, connection)}
    ready = all(check["ok"] for check in checks.values())
    return jsonify(status="ready" if ready else "not ready", checks=checks), 200 if ready else 503


def _redis(runtime) -> tuple[redis.Redis | None, dict]:
    """Return the client and its check: it answers PING, or why not."""
    try:
        connection = runtime.redis
        connection.ping()
    except (redis.exceptions.RedisError, RuntimeError, OSError) as error:
        # This reply is public: no URL, and never the password even if a driver message quoted it.
        password = urlsplit(runtime.settings.redis_url or "").password
        return None, {"ok": False, "reason": scrub(f"Redis does not answer: {type(error).__name__}: {error}", [password or ""])}
    return connection, {"ok": True}


def _rules(live) -> dict:
    """Check that the rule files are loaded and their latest version has no errors."""
    try:
        ruleset = live.get()
    except ConfigErrors as errors:
        # Public: how many, not which files or variables (`bridge check`, the logs and the admin API say that).
        return {"ok": False, "errors": len(errors.errors),
                "reason": "the rule files have errors and no good set was ever loaded; run `bridge check`"}
    if live.error is not None:
        # The bridge keeps serving the last good set, but a change is waiting that will not load.
        return {"ok": False, "version": ruleset.version, "errors": len(live.error.errors),
                "reason": f"the latest change to the rule files has errors; still running version {ruleset.version}"}
    return {"ok": True, "version": ruleset.version, "rules": len(ruleset.rules)}


def _worker(settings, connection: redis.Redis | None) -> dict:
    """Check that a worker of the bridge's queue sent a heartbeat within the configured seconds."""
    limit = settings.ready_worker_seconds
    if not limit:
        return {"ok": True, "reason": "not checked (BRIDGE_READY_WORKER_SECONDS is 0)"}
    if connection is None:
        return {"ok": False, "reason": "unknown: Redis does not answer"}
    try:
        workers = Worker.all(queue=Queue(settings.queue_name, connection=connection))
    except redis.exceptions.RedisError as error:
        return {"ok": False, "reason": f"workers cannot be read: {type(error).__name__}"}
    beats = [_aware(worker.last_heartbeat) for worker in workers if worker.last_heartbeat]
    if not beats:
        return {"ok": False, "workers": 0, "reason": f"no worker is registered on queue {settings.queue_name!r}"}
    age = round((datetime.now(timezone.utc) - max(beats)).total_seconds(), 1)
    if age > limit:
        return {"ok": False, "workers": len(workers), "last_heartbeat_seconds": age,
                "reason": f"the latest worker heartbeat is {age:.0f} s old, over the {limit} s allowed"}
    return {"ok": True, "workers": len(workers), "last_heartbeat_seconds": age}


def _jobs(settings, connection: redis.Redis | None) -> dict:
    """Count the jobs in each state; fail when one is later than the configured seconds past its time."""
    if connection is None:
        return {"ok": False, "reason": "unknown: Redis does not answer"}
    try:
        state = read_state(connection, settings.queue_name)
    except redis.exceptions.RedisError as error:
        return {"ok": False, "reason": f"jobs cannot be read: {type(error).__name__}"}
    report = {"ok": True, "counts": state.counts, "overdue_seconds": {k: round(v, 1) for k, v in state.overdue.items()}}
    limit = settings.ready_stuck_seconds
    stuck = state.stuck(limit) if limit else {}
    if stuck:
        report["ok"] = False
        report["reason"] = "; ".join(f"a {name} job is {seconds:.0f} s {STUCK_MEANING[name]}, over the {limit} s allowed"
                                     for name, seconds in stuck.items())
    return report


# What being late means in each state, for /readyz's reason.
STUCK_MEANING = {"queued": "in the queue (no worker takes jobs?)",
                 "started": "past its lapsed heartbeat (abandoned, and no worker's upkeep retried it)",
                 "scheduled": "past its due time (no scheduler running?)",
                 "ready": "past its parent's end and still not queued"}


def _aware(moment: datetime) -> datetime:
    # RQ writes UTC; older versions parse it back without a zone.
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
