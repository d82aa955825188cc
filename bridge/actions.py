"""Render and run a rule's actions in order: steps, loops and per-action conditions.

The LMS is reached only through the `perform` callback, so the same code runs in a
worker (real connectors, checkpoints) and in `bridge test` / `bridge simulate` (fakes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .conditions import evaluate_all
from .errors import TemplateError
from .templating import render_value


@dataclass
class StepRecord:
    """One performed (or skipped) action, for explanations and rule tests."""

    key: str
    connection: str
    action: str
    params: dict | None
    result: Any = None
    skipped: str = ""


@dataclass
class Run:
    """What running a rule's actions produced."""

    steps: dict = field(default_factory=dict)
    records: list[StepRecord] = field(default_factory=list)


Perform = Callable[[dict, dict, str], Any]  # (action, rendered params, label) -> result
Check = Callable[[dict, dict], list[str]]  # (action, rendered params) -> problems


def run_actions(payload: dict, perform: Perform, check: Check, done: dict | None = None,
                on_done: Callable[[str, Any], None] | None = None) -> Run:
    """Run each action of a job payload; `done` holds results of steps a previous attempt completed."""
    done = {} if done is None else done
    run = Run()
    base = {**payload["event"], "tables": payload.get("tables", {})}
    for index, action in enumerate(payload["actions"]):
        name = action.get("as") or f"step{index + 1}"
        label = f"rule {payload['rule']!r}, action {index + 1} ({action['action']}), delivery {payload['delivery_id']}"
        context = {**base, "steps": run.steps}
        if "for_each" in action:
            items = _render(action["for_each"], context, label, "for_each")
            if not isinstance(items, list):
                raise TemplateError(f"{label}: for_each gave {type(items).__name__}, not a list")
            results = []
            for number, item in enumerate(items):
                key = f"{index}.{number}"
                result = _one(action, {**context, "item": item, "index": number}, key, label, perform, check, done, on_done, run)
                if result is not _SKIPPED:
                    results.append(result)
            run.steps[name] = results
        else:
            result = _one(action, context, str(index), label, perform, check, done, on_done, run)
            run.steps[name] = None if result is _SKIPPED else result
    return run


_SKIPPED = object()


def _one(action, context, key, label, perform, check, done, on_done, run: Run):
    if key in done:
        run.records.append(StepRecord(key, action["connection"], action["action"], None, done[key], skipped="done before"))
        return done[key]
    if action.get("when"):
        outcome = evaluate_all(action["when"], context, context.get("tables"))
        if not outcome.held:
            run.records.append(StepRecord(key, action["connection"], action["action"], None, skipped=outcome.reason))
            return _SKIPPED
    params = _render(action.get("with", {}), context, label)
    # An empty email or id must never reach an LMS: fail here, naming the field.
    problems = check(action, params)
    if problems:
        raise TemplateError(f"{label}: after rendering, {'; '.join(problems)}")
    result = perform(action, params, label)
    run.records.append(StepRecord(key, action["connection"], action["action"], params, result))
    done[key] = result
    if on_done:
        on_done(key, result)
    return result


def _render(value, context: dict, label: str, field_name: str = ""):
    try:
        return render_value(value, context, field_name)
    except TemplateError as error:
        raise TemplateError(f"{label}: {error.message}") from None
