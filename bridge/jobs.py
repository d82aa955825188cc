"""What a worker runs: one matched rule's actions in order, retried as data says.

Work horses import this module, so it must not import Flask.
"""

from __future__ import annotations

import logging

from rq import Retry, get_current_job

from .errors import BridgeError, TemplateError
from .lms import ACTIONS, build_connector
from .lms.errors import LMSError
from .rules import LiveRules
from .settings import Settings
from .templating import render_value

log = logging.getLogger("bridge.jobs")


class WorkerContext:
    """Settings, live rules and LMS connectors shared by the jobs of one worker process."""

    def __init__(self, settings: Settings, env: dict | None = None):
        self.settings = settings
        self.rules = LiveRules(settings.rules_dir, env=env, log=logging.getLogger("bridge.rules"))
        self._connectors: dict = {}

    def connector(self, connection, redis):
        """Return a connector for a connection, reusing its HTTP session while the spec is unchanged."""
        key = (connection.name, repr(sorted(connection.spec.items())))
        if key not in self._connectors:
            timeouts = (self.settings.lms_connect_timeout, self.settings.lms_read_timeout)
            self._connectors[key] = build_connector(connection.name, connection.spec, redis=redis, timeouts=timeouts)
        return self._connectors[key]


_context: WorkerContext | None = None


def configure(settings: Settings, env: dict | None = None) -> WorkerContext:
    """Set the context jobs of this process run in (the worker command and tests call this)."""
    global _context
    _context = WorkerContext(settings, env)
    return _context


def context() -> WorkerContext:
    """Return this process's worker context, reading settings from the environment at first use."""
    return _context or configure(Settings.from_env())


def retry_policy(settings: Settings, attempt: int, error: LMSError) -> Retry | None:
    """Return the Retry for a failed attempt, or None when no retry is left or none can help."""
    if not error.retryable or attempt >= settings.retry_max:
        return None
    intervals = list(settings.retry_intervals)
    retry_after = getattr(error, "retry_after", None)
    if retry_after:
        intervals[attempt] = max(intervals[attempt], int(retry_after + 0.999))
    return Retry(max=settings.retry_max, interval=intervals)


def run_rule(payload: dict):
    """Run a matched rule's actions; skip steps a previous attempt completed."""
    job = get_current_job()
    ctx = context()
    ruleset = ctx.rules.get()
    delivery = payload["delivery_id"]
    done: dict = job.meta.setdefault("steps", {})
    steps: dict = {}
    for index, action in enumerate(payload["actions"]):
        name = action.get("as") or f"step{index + 1}"
        if str(index) in done:
            steps[name] = done[str(index)]
            continue
        label = f"rule {payload['rule']!r}, action {index + 1} ({action['action']}), delivery {delivery}"
        connection = ruleset.connections.get(action["connection"])
        if connection is None:
            raise BridgeError(f"{label}: connection {action['connection']!r} is no longer declared in the rule files")
        params = _render(action, {**payload["event"], "steps": steps}, connection.type, label)
        try:
            result = ctx.connector(connection, job.connection).perform(action["action"], params)
        except LMSError as error:
            retry = retry_policy(ctx.settings, job.number_of_retries or 0, error)
            if retry is None:
                raise
            log.warning("%s: %s; retrying (attempt %d of %d)", label, error, (job.number_of_retries or 0) + 2, ctx.settings.retry_max + 1)
            return retry
        log.info("%s: done", label)
        done[str(index)] = result
        job.save_meta()
        steps[name] = result
    return {"rule": payload["rule"], "delivery_id": delivery, "steps": steps}


def _render(action: dict, context: dict, connection_type: str, label: str) -> dict:
    try:
        params = render_value(action.get("with", {}), context)
    except TemplateError as error:
        raise TemplateError(f"{label}: {error.message}") from None
    # An empty email or id must never reach an LMS: fail here, naming the field.
    problems = ACTIONS[connection_type][action["action"]].problems(params)
    if problems:
        raise TemplateError(f"{label}: after rendering, {'; '.join(problems)}")
    return params
