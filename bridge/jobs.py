"""What a worker runs: one matched rule's actions in order, retried as data says.

Work horses import this module, so it must not import Flask.
"""

from __future__ import annotations

import logging
import random
import threading
import time

from rq import get_current_job

from . import metrics
from .actions import run_actions
from .deliveries import note
from .errors import BridgeError
from .exchanges import recorder
from .ledger import current as current_ledger
from .ledger import open_ledger
from .lms import ACTIONS, build_connector
from .lms.errors import LMSNeedsAttention
from .metrics import NEEDS_ATTENTION_KEY
from .retries import RetryPolicy
from .rules import LiveRules
from .settings import Settings

log = logging.getLogger("bridge.jobs")


class WorkerStopping(BridgeError):
    """The worker is shutting down: the job stops between steps and is queued again, keeping its checkpoints."""

    retryable = True


class WorkerContext:
    """Settings, live rules and LMS connectors shared by the jobs of one worker process."""

    def __init__(self, settings: Settings, env: dict | None = None):
        self.settings = settings
        self.rules = LiveRules(settings.rules_dir, env=env, check_every=settings.rules_check_seconds,
                               env_file=settings.env_file)
        # Set when the worker must stop: a job checks it before each step.
        self.stopping = threading.Event()
        # One connector (an HTTP session, its pooled connections) per thread: jobs in flight never share one.
        self._local = threading.local()

    def connector(self, connection, redis):
        """Return this thread's connector for a connection, reusing its HTTP session while the spec is unchanged."""
        connectors = self._local.__dict__.setdefault("connectors", {})
        key = (connection.name, repr(sorted(connection.spec.items())))
        if key not in connectors:
            timeouts = (self.settings.lms_connect_timeout, self.settings.lms_read_timeout)
            connector = build_connector(connection.name, connection.spec, redis=redis, timeouts=timeouts)
            connector.session.hooks["response"].append(recorder(connector, self.settings.delivery_ttl))
            connector.observer = _observer(redis, connection.name)
            connectors[key] = connector
        return connectors[key]

    def warm(self, redis) -> None:
        """Build this thread's connectors ahead of its first job, so that no job waits for one."""
        try:
            ruleset = self.rules.get()
        except BridgeError:
            return  # the rule files are broken: the jobs will say so
        for connection in ruleset.connections.values():
            self.connector(connection, redis)


def _observer(redis, connection: str):
    """Return a connector's observer: call timings go into the running job's ledger, else straight to Redis."""

    def observe(operation: str, seconds: float) -> None:
        def write(pipe):
            metrics.observe(pipe, "bridge_lms_call_seconds", seconds, connection=connection, operation=operation)

        ledger = current_ledger()
        if ledger is not None:
            ledger.add(write)
            return
        with redis.pipeline(transaction=False) as pipe:
            write(pipe)
            pipe.execute()

    return observe


_context: WorkerContext | None = None


def configure(settings: Settings, env: dict | None = None) -> WorkerContext:
    """Set the context jobs of this process run in (the worker command and tests call this)."""
    global _context
    _context = WorkerContext(settings, env)
    return _context


def context() -> WorkerContext:
    """Return this process's worker context, reading settings from the environment at first use."""
    return _context or configure(Settings.from_env())


def run_rule(payload: dict):
    """Run a matched rule's actions; skip steps a previous attempt completed; decide whether a failure is retried."""
    job = get_current_job()
    ctx = context()
    attempt, started = _attempt(job), time.monotonic()
    ledger = open_ledger(job)
    ledger.flush(lambda pipe: note(pipe, payload["delivery_id"], job.id, "running", attempt=attempt, rule=payload["rule"]),
                 lambda pipe: pipe.srem(NEEDS_ATTENTION_KEY, job.id))  # retried after a person linked the id
    try:
        run = _run(job, ctx, payload)
    except Exception as error:
        try:
            ledger.flush()  # the failed step's exchanges (for `bridge show`) and the last checkpoint ...
        finally:
            _plan_retry(job, ctx, payload, error)  # ... written before this puts the try's own flags in the meta
        raise
    outcome, detail = _outcome(run)
    ledger.flush(lambda pipe: note(pipe, payload["delivery_id"], job.id, outcome, attempt=attempt, rule=payload["rule"], **detail),
                 lambda pipe: metrics.count(pipe, "bridge_jobs_total", rule=payload["rule"], outcome=outcome))
    log.info("job %s", outcome, extra={"delivery_id": payload["delivery_id"], "job_id": job.id, "rule": payload["rule"],
                                        "attempt": attempt, "steps": sum(not record.skipped for record in run.records),
                                        "seconds": round(time.monotonic() - started, 3), **detail})
    return {"rule": payload["rule"], "delivery_id": payload["delivery_id"], "steps": run.steps}


def _outcome(run) -> tuple[str, dict]:
    """Say "skipped" when the LMS had nothing to do for any step (removing someone it does not have), else "succeeded"."""
    results = [record.result for record in run.records if record.skipped in ("", "done before")]
    skipped = [result["skipped"] for result in results if isinstance(result, dict) and result.get("skipped")]
    if not skipped:
        return "succeeded", {}
    return ("skipped" if len(skipped) == len(results) else "succeeded"), {"skipped": skipped}


def _run(job, ctx: WorkerContext, payload: dict):
    ruleset = ctx.rules.get()
    done: dict = job.meta.setdefault("steps", {})

    def perform(action: dict, params: dict, label: str):
        if ctx.stopping.is_set():
            raise WorkerStopping(f"{label}: the worker is shutting down; the job is queued again and resumes here")
        connection = ruleset.connections.get(action["connection"])
        if connection is None:
            raise BridgeError(f"{label}: connection {action['connection']!r} is no longer declared in the rule files")
        job.ledger.settle()
        started = time.monotonic()
        result = ctx.connector(connection, job.connection).perform(action["action"], params)
        log.debug("step done", extra={"delivery_id": payload["delivery_id"], "job_id": job.id, "rule": payload["rule"],
                                     "connection": connection.name, "action": action["action"],
                                     "seconds": round(time.monotonic() - started, 3)})
        return result

    def check(action: dict, params: dict) -> list[str]:
        connection = ruleset.connections.get(action["connection"])
        return ACTIONS[connection.type][action["action"]].problems(params) if connection else []

    return run_actions(payload, perform, check, done, on_done=lambda key, result: job.ledger.checkpoint())


def _attempt(job) -> int:
    """Return which try this is, 1 for the first."""
    policy = job.meta.get("retry_max") or 0
    return policy - (job.retries_left or 0) + 1 if policy else 1


def _plan_retry(job, ctx: WorkerContext, payload: dict, error: Exception) -> None:
    """Tell RQ whether and when to retry: permanent errors and too-old deliveries get no retry."""
    if isinstance(error, WorkerStopping):
        # Not the job's failure: queued again at once, without using up one of its retries.
        job.retries_left = (job.retries_left or 0) + 1
        job.retry_intervals = [0]
        job.meta["stopped"] = True
        return
    policy = RetryPolicy(**payload["retry"]) if payload.get("retry") else RetryPolicy.of(ctx.settings)
    # Anything the bridge did not classify (a bug, a dropped Redis connection) is retried: at least once beats lost.
    retryable = getattr(error, "retryable", True)
    age = time.time() - payload["event"].get("received_at", time.time())
    job.meta["failed_attempt"] = _attempt(job)  # before retries_left changes what _attempt says
    held_for = getattr(error, "held_for", None)
    if held_for is not None and age < (policy.max_age or ctx.settings.delivery_ttl):
        # A connection that cannot log in is not this job's failure: it waits for the next login attempt
        # (RQ takes one retry back off, so it keeps them all), spread a little so the held jobs do not return at once.
        job.retries_left = (job.retries_left or 0) + 1
        job.retry_intervals = [max(1, round(held_for * random.uniform(1.0, 1.2)))]
        return
    if not retryable or (policy.max_age and age > policy.max_age) or not job.retries_left:
        job.retries_left = 0
        return
    job.retry_intervals = [policy.delay(policy.attempts - job.retries_left, getattr(error, "retry_after", None))]


def _delivery_of(job) -> str | None:
    """Return the delivery a job works for, from its meta or its payload."""
    return job.meta.get("delivery_id") or (job.args[0] if job.args else {}).get("delivery_id")


def on_failure(job, connection, kind, error, traceback) -> None:
    """Note a failed try in the delivery's timeline: retrying, or failed for good (RQ's failure callback)."""
    delivery = _delivery_of(job)
    if not delivery:
        return
    if job.meta.pop("stopped", False):
        note(connection, delivery, job.id, "queued", rule=job.meta.get("rule"),
             reason="the worker shut down between steps; queued again, resuming after the last completed step")
        log.info("job queued again: the worker is shutting down", extra={"delivery_id": delivery, "job_id": job.id})
        return
    retrying = bool(job.retries_left and job.retries_left > 0)
    attempt = job.meta.pop("failed_attempt", None) or _attempt(job)
    detail = {"attempt": attempt, "rule": job.meta.get("rule"), "error": f"{kind.__name__}: {error}"}
    if retrying:
        detail["retry_in"] = (job.retry_intervals or [0])[0]
    status, outcome = ("retrying", "retried") if retrying else ("failed", "failed")
    if isinstance(error, LMSNeedsAttention):
        status = outcome = "needs-attention"
        detail.update(connection=error.connection, email=error.email, remedy=error.remedy)
        connection.sadd(NEEDS_ATTENTION_KEY, job.id)
    elif retrying and getattr(error, "held_for", None) is not None:
        status = outcome = "held"
    note(connection, delivery, job.id, status, **detail)
    metrics.count(connection, "bridge_jobs_total", rule=job.meta.get("rule", ""), outcome=outcome)
    if outcome == "retried":
        metrics.count(connection, "bridge_retries_total", rule=job.meta.get("rule", ""))
    log.log(logging.ERROR if status in ("failed", "needs-attention") else logging.WARNING, "job %s",
            "will be retried" if status == "retrying" else status,
            extra={"delivery_id": delivery, "job_id": job.id, **detail})


def on_worker_deaths(job, connection, deaths: int) -> None:
    """Note that a job failed for good because its worker died every time it ran it."""
    delivery = _delivery_of(job)
    reason = f"its worker died {deaths} times while running it (a crash or out of memory in this job?); not resumed again"
    log.error("job failed: %s", reason, extra={"delivery_id": delivery, "job_id": job.id})
    metrics.count(connection, "bridge_jobs_total", rule=job.meta.get("rule", ""), outcome="failed")
    if delivery:
        note(connection, delivery, job.id, "failed", rule=job.meta.get("rule"), error=reason)


def on_abandoned(job, connection) -> None:
    """Note in the delivery's timeline that a job whose worker died was queued again (the upkeep found it)."""
    delivery = _delivery_of(job)
    log.warning("job queued again: its worker stopped beating (killed?)", extra={"delivery_id": delivery, "job_id": job.id})
    if delivery:
        note(connection, delivery, job.id, "queued", rule=job.meta.get("rule"),
             reason="its worker stopped beating (killed?); queued again, resuming after the last completed step")
