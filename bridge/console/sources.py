"""Console pages about sources: the URL to paste into each sender, what is verified, counts, the last payload, simulation."""

from __future__ import annotations

import json

from flask import abort, render_template, request, url_for

from ..errors import BridgeError
from ..history import Filters, page
from ..metrics import COUNTERS_KEY
from ..ruletests import explain, sample_events
from ..sources import PRESETS
from . import refused
from .auth import blueprint, runtime
from .deliveries import current_rules

# How far back the last payload of a source is looked for, so that the page stays fast beside a busy source.
LAST_PAYLOAD_SCAN = 2_000


def verifies(source) -> str:
    """Say in words what a source checks before it accepts a webhook."""
    if source.type != "generic":
        text = PRESETS[source.type].schema["properties"]["type"].get("description", "")
        return text.removeprefix("verified by ") or source.type
    options = source.options
    auth = options.get("auth")
    if auth == "token":
        where = f"header {options['header']}" if options.get("header") else f"query parameter ?{options.get('query')}="
        return f"a shared token in the {where}"
    if auth == "basic":
        return "HTTP Basic credentials"
    if auth == "hmac":
        return (f"{options.get('header')}: {options.get('prefix', '')}{options.get('encoding', 'hex')} "
                f"HMAC-{options.get('algorithm', 'sha256').upper()} of the body")
    return "nothing (auth: none): anyone who knows the URL can post"


def hook_url(source) -> str:
    """Return the URL to paste into the sender; a token the sender must put in the query is shown as a placeholder."""
    url = url_for("webhooks.receive", name=source.name, _external=True)
    query = source.options.get("query") if source.type in ("gumroad", "generic") else None
    if source.type == "gumroad":
        query = query or "token"
    if query and (source.type == "gumroad" or source.options.get("auth") == "token"):
        url += f"?{query}=<the secret>"
    return url


def counts() -> dict[str, dict[str, int]]:
    """Return source -> outcome -> count, from the delivery counters every process adds to."""
    found: dict[str, dict[str, int]] = {}
    for field, value in runtime().redis.hgetall(COUNTERS_KEY).items():
        name, *labels = json.loads(field)
        if name == "bridge_deliveries_total":
            source, outcome = labels
            found.setdefault(source, {})[outcome] = int(value)
    return found


def last_delivery(source: str) -> dict | None:
    """Return the newest stored delivery of a source among the latest ones, or None."""
    found, _ = page(runtime().redis, Filters(source=source), limit=1, scan_limit=LAST_PAYLOAD_SCAN)
    return found[0] if found else None


def _tally(outcomes: dict[str, int]) -> dict[str, int]:
    return {"accepted": outcomes.get("queued", 0) + outcomes.get("unmatched", 0),
            "duplicate": outcomes.get("duplicate", 0),
            "refused": sum(value for key, value in outcomes.items() if key not in ("queued", "unmatched", "duplicate"))}


@blueprint.get("/ui/sources")
def sources():
    """List the sources with their URL, preset, what they verify and their counts."""
    ruleset = current_rules()
    tallies = counts()
    rows = [{"source": source, "url": hook_url(source), "verifies": verifies(source), **_tally(tallies.get(name, {})),
             "kept": refused.count(runtime().redis, name)}
            for name, source in sorted((ruleset.sources if ruleset else {}).items())]
    return render_template("sources.html", rows=rows, loaded=ruleset is not None)


def simulate(ruleset, source: str, raw: bytes, headers: dict, event: str | None = None) -> list[dict]:
    """Run a payload through the rules as `bridge simulate` does; return its JSON-able explanations."""
    return [explain(ruleset, sample).to_dict()
            for sample in sample_events(ruleset, source, raw=raw, headers=headers, event=event)]


@blueprint.route("/ui/sources/<name>", methods=["GET", "POST"])
def source(name: str):
    """Show one source and its last payload, and simulate the rules on it (or on a pasted payload)."""
    ruleset = current_rules()
    if ruleset is None or name not in ruleset.sources:
        abort(404, f"no source named {name!r} in the loaded rules")
    declared = ruleset.sources[name]
    last = last_delivery(name)
    record = None
    if last is not None:
        from ..history import show

        record = show(runtime().redis, last["id"])
    raw, headers, error = None, {}, None
    if request.method == "POST":
        raw = request.form.get("payload", "").encode()
        headers = _headers(request.form.get("headers", ""))
    elif record is not None:
        raw, headers = record["body"].encode(), record["headers"] or {}
    results = None
    if raw is not None:
        try:
            results = simulate(ruleset, name, raw, headers)
        except BridgeError as problem:
            error = problem.message
    outcomes = _tally(counts().get(name, {}))
    return render_template("source.html", source=declared, url=hook_url(declared), verifies=verifies(declared),
                           outcomes=outcomes, record=record, results=results, error=error,
                           pasted=request.form.get("payload", "") if request.method == "POST" else None,
                           pasted_headers=request.form.get("headers", "") if request.method == "POST" else "",
                           refusals=refused.recent(runtime().redis, name, limit=5), scanned=LAST_PAYLOAD_SCAN)


def _headers(text: str) -> dict[str, str]:
    """Read 'Name: value' lines, as `bridge simulate -H` takes them."""
    headers = {}
    for line in text.splitlines():
        name, colon, value = line.partition(":")
        if colon and name.strip():
            headers[name.strip()] = value.strip()
    return headers
