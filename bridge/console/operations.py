"""Console pages for operating the bridge: refused requests, rules and their errors, queue and workers, bulk retry."""

from __future__ import annotations

import logging

from flask import redirect, render_template, request, url_for
from rq import Queue, Worker
from rq.registry import FailedJobRegistry

from ..history import parse_time
from ..metrics import NEEDS_ATTENTION_KEY
from ..queue_state import read_state
from ..recovery import failed_jobs, retry_job
from . import refused
from .auth import blueprint, notify, runtime
from .deliveries import current_rules

log = logging.getLogger("bridge.console")
BULK_LIMIT = 1_000


@blueprint.get("/ui/refused")
def refusals():
    """List the refused requests kept, newest first, with their reason and a hint."""
    ruleset = current_rules()
    source = request.args.get("source") or None
    return render_template("refused.html", items=refused.recent(runtime().redis, source, limit=200), source=source,
                           sources=sorted(ruleset.sources) if ruleset else [], per_source=refused.PER_SOURCE,
                           days=refused.TTL // 86400)


def queue_state() -> dict:
    """Return the jobs in each of RQ's states, how late the most overdue is, and the workers on the queue."""
    connection, name = runtime().redis, runtime().settings.queue_name
    state = read_state(connection, name)
    failed_key = FailedJobRegistry(name, connection=connection).key
    workers = Worker.all(queue=Queue(name, connection=connection))
    return {
        **state.counts,
        "late": max(state.overdue.values(), default=0.0),
        "needs_attention": len(needing_attention(connection, failed_key)),
        "workers": [{"name": worker.name, "state": worker.get_state(), "heartbeat": worker.last_heartbeat,
                     "job": worker.get_current_job_id()} for worker in workers],
    }


def needing_attention(connection, failed_key: str) -> set[str]:
    """Return the ids of failed jobs that wait for a person (an LMS that cannot tell the bridge someone's id)."""
    members = [member.decode() for member in connection.smembers(NEEDS_ATTENTION_KEY)]
    with connection.pipeline(transaction=False) as pipe:
        for member in members:
            pipe.zscore(failed_key, member)
        scores = pipe.execute() if members else []
    return {member for member, score in zip(members, scores) if score is not None}


@blueprint.get("/ui/health")
def health():
    """Show the loaded rule files, the errors of the latest reload, the queue, the workers and failed work."""
    live = runtime().rules
    ruleset = current_rules()
    errors = live.error.errors if live.error else []
    return render_template("health.html", ruleset=ruleset, errors=errors, state=queue_state(),
                           directory=runtime().settings.rules_dir)


@blueprint.post("/ui/retry")
def bulk_retry():
    """Queue failed jobs again in bulk, chosen by rule, connection and time of failure."""
    rule, lms = request.form.get("rule") or None, request.form.get("connection") or None
    try:
        since, until = parse_time(request.form.get("since") or None), parse_time(request.form.get("until") or None)
    except ValueError as error:
        notify(f"nothing retried: {error}")
        return redirect(url_for("console.health"))
    connection, settings = runtime().redis, runtime().settings
    only = None
    if request.form.get("needs_attention"):
        only = needing_attention(connection, FailedJobRegistry(settings.queue_name, connection=connection).key)
    chosen = []
    for job in failed_jobs(connection, settings, rule, lms, since, until):
        if only is not None and job.id not in only:
            continue
        chosen.append(job.id)
        if len(chosen) == BULK_LIMIT:
            break
    requeued = sum(retry_job(connection, settings, job_id)[0] for job_id in chosen)
    log.info("failed jobs retried from the console", extra={"jobs": chosen})
    notify(f"queued {requeued} failed job(s) again" + (f" (the first {BULK_LIMIT}; retry again for more)"
                                                      if len(chosen) == BULK_LIMIT else ""))
    return redirect(url_for("console.health"))
