"""What a worker runs: one matched rule's actions in order, retried as data says.

Work horses import this module, so it must not import Flask.
"""

from __future__ import annotations

import logging

from rq import Retry, get_current_job

from .actions import run_actions
from .errors import BridgeError
from .lms import ACTIONS, build_connector
from .lms.errors import LMSError
from .rules import LiveRules
from .settings import Settings

log = logging.getLogger("bridge.jobs")


class WorkerContext:
    """Settings, live rules and LMS connectors shared by the jobs of one worker process."""

    def __init__(self, settings: Settings, env: dict | None = None):
        self.settings = settings
        self.rules = LiveRules(settings.rules_dir, env=env, check_every=settings.rules_check_seconds)
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
    done: dict = job.meta.setdefault("steps", {})

    def perform(action: dict, params: dict, label: str):
        connection = ruleset.connections.get(action["connection"])
        if connection is None:
            raise BridgeError(f"{label}: connection {action['connection']!r} is no longer declared in the rule files")
        result = ctx.connector(connection, job.connection).perform(action["action"], params)
        log.info("%s: done", label)
        return result

    def check(action: dict, params: dict) -> list[str]:
        connection = ruleset.connections.get(action["connection"])
        return ACTIONS[connection.type][action["action"]].problems(params) if connection else []

    try:
        run = run_actions(payload, perform, check, done, on_done=lambda key, result: job.save_meta())
    except LMSError as error:
        retry = retry_policy(ctx.settings, job.number_of_retries or 0, error)
        if retry is None:
            raise
        log.warning("rule %r, delivery %s: %s; retrying (attempt %d of %d)", payload["rule"], payload["delivery_id"],
                    error, (job.number_of_retries or 0) + 2, ctx.settings.retry_max + 1)
        return retry
    return {"rule": payload["rule"], "delivery_id": payload["delivery_id"], "steps": run.steps}
