"""Console pages about deliveries: the filtered history, one delivery explained, retry, replay and a rule test from it."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from flask import abort, redirect, render_template, request, url_for

from ..errors import BridgeError, ConfigErrors, NotFound
from ..history import STATUSES, Filters, page, parse_time, show
from ..recovery import replay, retry_job
from ..ruletests import explain, stored_event, test_entry, test_yaml
from .auth import blueprint, notify, runtime
from .explain import explain_decisions, pretty

log = logging.getLogger("bridge.console")

PAGE_SIZE = 50
# A filtered page reads at most this many records, so that a rare match cannot make a page slow.
SCAN_LIMIT = 2_000
FILTERS = ("status", "source", "rule", "connection", "email", "since", "until")
LABELS = {"unmatched": "no rule matched", "needs-attention": "needs attention", "held": "held (LMS login)"}


@blueprint.app_template_filter("when")
def when(seconds: float | None) -> str:
    """Show a Unix time as UTC."""
    if not seconds:
        return "-"
    return datetime.fromtimestamp(float(seconds), tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


@blueprint.app_template_filter("label")
def label(status: str) -> str:
    """Name a status as people say it."""
    return LABELS.get(status, status)


@blueprint.app_template_filter("in_rules")
def in_rules(path: str) -> str:
    """Show a rule file's path relative to the rules folder."""
    folder = str(runtime().settings.rules_dir.resolve())
    return path[len(folder) + 1:] if path and path.startswith(folder + "/") else path


@blueprint.app_template_filter("pretty")
def pretty_filter(value) -> str:
    """Indent data as JSON for a <pre>."""
    return pretty(value)


def current_rules():
    """Return the loaded rule set, or None while the rule files have never loaded."""
    try:
        return runtime().rules.get()
    except ConfigErrors:
        return None


def read_filters(args) -> tuple[dict, Filters | None, list[str]]:
    """Read the list's filters from a query; return what was asked, the Filters, and what could not be read."""
    asked = {name: (args.get(name) or "").strip() for name in FILTERS}
    problems = []
    times = {}
    for name in ("since", "until"):
        try:
            times[name] = parse_time(asked[name] or None)
        except ValueError as error:
            problems.append(f"{name}: {error}")
    if asked["status"] and asked["status"] not in STATUSES:
        problems.append(f"status must be one of {', '.join(STATUSES)}")
    if problems:
        return asked, None, problems
    filters = Filters(asked["status"] or None, asked["source"] or None, asked["rule"] or None,
                      asked["connection"] or None, asked["email"] or None, times["since"], times["until"])
    return asked, filters, []


@blueprint.get("/ui/")
@blueprint.get("/ui/deliveries")
def deliveries():
    """List deliveries, newest first, with filters, paging and (on the first page) live refresh."""
    asked, filters, problems = read_filters(request.args)
    before = request.args.get("before", type=float)
    found, cursor = ([], None) if filters is None else page(runtime().redis, filters, PAGE_SIZE, before, SCAN_LIMIT)
    ruleset = current_rules()
    template = "_delivery_rows.html" if request.args.get("rows") else "deliveries.html"
    return render_template(
        template, found=found, asked=asked, problems=problems, before=before, cursor=cursor,
        partial=len(found) < PAGE_SIZE and cursor is not None, statuses=STATUSES,
        sources=sorted(ruleset.sources) if ruleset else [], rules=[rule.name for rule in ruleset.rules] if ruleset else [],
        connections=sorted(ruleset.connections) if ruleset else [],
        older=_url_with(before=repr(cursor)) if cursor is not None else None, newest=_url_with(), page_size=PAGE_SIZE,
        live_url=_url_with(rows="1") if before is None else None,
    ), 400 if problems else 200


def _url_with(**changes) -> str:
    args = {name: value for name, value in request.args.items() if value and name not in ("rows", "before")}
    args.update(changes)
    return url_for("console.deliveries", **args)


@blueprint.get("/ui/deliveries/<delivery_id>")
def delivery(delivery_id: str):
    """Explain one delivery: timeline, each rule's conditions, actions, every LMS exchange, the body, a rule test."""
    record = show(runtime().redis, delivery_id)
    if record is None:
        abort(404, f"no delivery {delivery_id!r} (it may have expired)")
    ruleset = current_rules()
    rendered, rendered_error, rule_test = None, None, None
    if ruleset is not None and record["source"] in ruleset.sources:
        try:
            rendered = explain(ruleset, stored_event(record))
        except BridgeError as error:
            rendered_error = error.message
        else:
            # The same entry as `bridge test --from-delivery`: what the current rules do with this event.
            name = f"delivery {record['id']} ({record['source']}, {record['event'] or 'no event name'})"
            rule_test = test_yaml(test_entry(rendered, name))
    return render_template(
        "delivery.html", record=record, explained=explain_decisions(record, ruleset), rendered=rendered,
        rendered_error=rendered_error, rule_test=rule_test, ruleset=ruleset,
        failed_jobs=[job for job, status in record["job_status"].items() if status in ("failed", "needs-attention")],
    )


@blueprint.post("/ui/deliveries/<delivery_id>/retry")
def retry(delivery_id: str):
    """Queue the failed jobs of one delivery again."""
    record = show(runtime().redis, delivery_id)
    if record is None:
        abort(404, f"no delivery {delivery_id!r} (it may have expired)")
    messages = []
    for job_id in record["jobs"]:
        try:
            messages.append(retry_job(runtime().redis, runtime().settings, job_id)[1])
        except NotFound as error:
            messages.append(error.message)
    log.info("delivery retried from the console", extra={"delivery_id": delivery_id})
    notify(*(messages or ["this delivery has no jobs"]))
    return redirect(url_for("console.delivery", delivery_id=delivery_id))


@blueprint.post("/ui/deliveries/<delivery_id>/replay")
def replay_delivery(delivery_id: str):
    """Run a stored delivery through the current rules, as a new delivery, and show that one."""
    ruleset = current_rules()
    if ruleset is None:
        abort(503, "the rule files have errors and never loaded; see Rules & health")
    try:
        outcome = replay(runtime().redis, runtime().settings, ruleset, delivery_id)
    except NotFound as error:
        abort(404, error.message)
    log.info("delivery replayed from the console", extra={"delivery_id": outcome.delivery_id, "replay_of": delivery_id})
    notify(f"replayed {delivery_id} as this new delivery: matched {', '.join(outcome.matched) or 'no rule'}")
    return redirect(url_for("console.delivery", delivery_id=outcome.delivery_id))
