"""Explain what rules do with a sample event, and run the tests written next to the rules.

Nothing here touches Redis or an LMS: actions are rendered and handed to a fake that
answers with the step results a test gives (or a made-up id).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import yaml

from .actions import Run, run_actions
from .bodies import decode_body
from .conditions import same
from .engine import Decision, decide_all, job_payload
from .errors import BridgeError
from .redaction import REDACTED
from .rules import RuleSet, RuleTest
from .sources import PRESETS, Inbound


@dataclass
class RuleRun:
    """One matched rule's rendered actions, or the error that stopped them."""

    rule: str
    run: Run | None = None
    error: str = ""


@dataclass
class Explanation:
    """Every decision for a sample event, and what each matched rule would do."""

    event: dict
    decisions: list[Decision]
    runs: list[RuleRun] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Describe the explanation as JSON-able data."""
        return {
            "source": self.event["source"],
            "event": self.event["event"],
            "decisions": [decision.to_dict() for decision in self.decisions],
            "actions": [
                {"rule": rule_run.rule, "error": rule_run.error} if rule_run.error else
                {"rule": rule_run.rule, "steps": [
                    {"connection": r.connection, "action": r.action, "with": r.params, "skipped": r.skipped} if r.skipped else
                    {"connection": r.connection, "action": r.action, "with": r.params}
                    for r in rule_run.run.records]}
                for rule_run in self.runs
            ],
        }


def sample_events(ruleset: RuleSet, source: str, body: Any = None, raw: bytes | None = None, content_type: str | None = None,
                  headers: dict | None = None, query: dict | None = None, event: str | None = None) -> list[dict]:
    """Build the events the receiver would build for a sample webhook (signatures are not checked)."""
    if source not in ruleset.sources:
        raise BridgeError(f"unknown source {source!r} (known: {', '.join(sorted(ruleset.sources)) or 'none'})")
    headers = {key.lower(): str(value) for key, value in (headers or {}).items()}
    if raw is None:
        raw = json.dumps(body if body is not None else {}).encode()
    if body is None:
        body = decode_body(raw, content_type or headers.get("content-type"))
    declared = ruleset.sources[source]
    url = f"https://bridge.invalid/hooks/{source}" + (f"?{urlencode(query)}" if query else "")
    found = PRESETS[declared.type].events(Inbound.of("POST", url, headers, raw, body), declared.options)
    return [{
        "source": source,
        "event": event if event is not None else item.name,
        "delivery_id": "sample",
        "sender_id": item.delivery_id,
        "received_at": 0,
        "headers": headers,
        "query": dict(query or {}),
        "body": item.body,
    } for item in found]


class Unknown:
    """What a lookup step answered, when nobody said: any path into it reads as its own name, <steps.x.y>."""

    def __init__(self, path: str):
        self._path = path

    def __getattr__(self, name: str) -> Unknown:
        if name.startswith("_"):
            raise AttributeError(name)
        return Unknown(f"{self._path}.{name}")

    def __getitem__(self, key) -> Unknown:
        return Unknown(f"{self._path}[{key!r}]" if not isinstance(key, str) else f"{self._path}.{key}")

    def __iter__(self):
        return iter([Unknown(f"{self._path}[0]")])

    def __str__(self) -> str:
        return f"<{self._path}>"

    __repr__ = __str__


def explain(ruleset: RuleSet, event: dict, step_results: dict | None = None) -> Explanation:
    """Decide every rule of the event's source and render the matched rules' actions."""
    from .lms import ACTIONS

    step_results = step_results or {}
    decisions = decide_all(ruleset, event, every_rule=True)
    explanation = Explanation(event, decisions)

    def perform(action: dict, params: dict, label: str) -> Any:
        name = action.get("as")
        if name in step_results:
            return step_results[name]
        if ruleset.connections[action["connection"]].type == "http":
            return Unknown(f"steps.{name}")  # a lookup's reply cannot be made up: show where it would be read
        return {"id": f"<{name or action['action']} id>", **{k: v for k, v in params.items() if k in ("email", "course_id")}}

    def check(action: dict, params: dict) -> list[str]:
        connection = ruleset.connections[action["connection"]]
        return ACTIONS[connection.type][action["action"]].problems(params)

    for decision in decisions:
        if not decision.matched:
            continue
        payload = job_payload(decision.rule, event, ruleset)
        try:
            explanation.runs.append(RuleRun(decision.rule.name, run_actions(payload, perform, check)))
        except BridgeError as error:
            explanation.runs.append(RuleRun(decision.rule.name, error=error.message))
    return explanation


def payload_file(test: RuleTest) -> Path:
    """Return the sample payload file a test names, relative to its rule file."""
    return Path(test.file).parent / test.spec["payload"]


def _sample_body(test: RuleTest) -> tuple[Any, bytes | None, str | None]:
    """Return (body, raw, content type) of a test: its body, its form text or its payload file."""
    spec = test.spec
    if "payload" in spec:
        path = payload_file(test)
        form = path.suffix != ".json"
        return None, path.read_bytes(), "application/x-www-form-urlencoded" if form else "application/json"
    if "form" in spec:
        return None, spec["form"].encode(), "application/x-www-form-urlencoded"
    return spec.get("body", {}), None, None


def run_test(ruleset: RuleSet, test: RuleTest) -> list[str]:
    """Run one rule test; return what did not come out as expected (nothing when it passed)."""
    spec = test.spec
    body, raw, content_type = _sample_body(test)
    events = sample_events(ruleset, spec["source"], body=body, raw=raw, content_type=content_type,
                           headers=spec.get("headers"), query=spec.get("query"), event=spec.get("event"))
    explanations = [explain(ruleset, event, spec.get("steps")) for event in events]
    decisions = [decision for explanation in explanations for decision in explanation.decisions]
    runs = [rule_run for explanation in explanations for rule_run in explanation.runs]
    expect = spec["expect"]
    failures = []
    matched = [d.rule.name for d in decisions if d.matched]
    if "rules" in expect and matched != expect["rules"]:
        reasons = "; ".join(f"{d.rule.name}: {d.reason}" for d in decisions) or f"no rule of source {spec['source']!r}"
        failures.append(f"matched {matched or 'no rule'}, expected {expect['rules'] or 'no rule'} ({reasons})")
    errors = [f"{rule_run.rule}: {rule_run.error}" for rule_run in runs if rule_run.error]
    if "error" in expect:
        if not any(expect["error"] in error for error in errors):
            failures.append(f"expected an error containing {expect['error']!r}, got {errors or 'none'}")
    elif errors:
        failures.extend(errors)
    if "actions" in expect:
        performed = [(rule_run.rule, record) for rule_run in runs if rule_run.run
                     for record in rule_run.run.records if not record.skipped]
        failures.extend(_compare_actions(expect["actions"], performed))
    return failures


def _compare_actions(expected: list[dict], performed: list) -> list[str]:
    failures = []
    if len(expected) != len(performed):
        said = ", ".join(f"{record.action}" for _, record in performed) or "none"
        failures.append(f"expected {len(expected)} action(s), got {len(performed)}: {said}")
    for index, (want, (rule, record)) in enumerate(zip(expected, performed), start=1):
        for key, value in (("rule", rule), ("connection", record.connection), ("action", record.action)):
            if key in want and want[key] != value:
                failures.append(f"action {index}: {key} is {value!r}, expected {want[key]!r}")
        for name, value in want.get("with", {}).items():
            got = record.params.get(name, "<missing>")
            if not _equal(got, value):
                failures.append(f"action {index} ({record.action}): {name} is {got!r}, expected {value!r}")
    return failures


def _equal(got: Any, want: Any) -> bool:
    if isinstance(want, (dict, list)) or isinstance(got, (dict, list)):
        return json.dumps(got, sort_keys=True, default=str) == json.dumps(want, sort_keys=True, default=str)
    return same(got, want)


def stored_event(record: dict) -> dict:
    """Return the event of a stored delivery, as rules saw it (secrets were scrubbed when it was stored)."""
    return {"source": record["source"], "event": record["event"], "delivery_id": record["id"],
            "sender_id": record.get("sender_id") or None, "received_at": record["received_at"],
            "headers": record["headers"] or {}, "query": record["query"] or {}, "body": record["event_body"]}


# Headers a rule test does not need: transport details, and what proves the sender (a test checks no signature).
_TRANSPORT = {"host", "content-length", "content-type", "user-agent", "accept", "accept-encoding", "connection",
              "expect", "x-request-id", "via", "forwarded"}
_PROOF_WORDS = ("signature", "hmac", "token", "secret", "authorization", "cookie", "x-forwarded-", "timestamp")


def test_headers(headers: dict) -> dict:
    """Return the stored headers a rule test should carry: those rules may read, not transport or proof."""
    return {name: str(value) for name, value in sorted((headers or {}).items())
            if name.lower() not in _TRANSPORT and not any(word in name.lower() for word in _PROOF_WORDS)
            and value != REDACTED}


def test_entry(explanation: Explanation, name: str) -> dict:
    """Write a rule test that pins down what the current rules do with an event (for `bridge test --from-delivery`)."""
    event = explanation.event
    entry: dict[str, Any] = {"name": name, "source": event["source"]}
    if event["event"]:
        entry["event"] = event["event"]
    headers = test_headers(event["headers"])
    if headers:
        entry["headers"] = headers
    if event["query"]:
        entry["query"] = {key: str(value) for key, value in event["query"].items()}
    entry["body"] = event["body"]
    expect: dict[str, Any] = {"rules": [decision.rule.name for decision in explanation.decisions if decision.matched]}
    errors = [rule_run.error for rule_run in explanation.runs if rule_run.error]
    if errors:
        expect["error"] = errors[0].split(": ", 1)[-1]
    else:
        expect["actions"] = [{"action": record.action, "with": record.params} for rule_run in explanation.runs
                             for record in rule_run.run.records if not record.skipped]
    entry["expect"] = expect
    return entry


def delivery_test(ruleset: RuleSet, record: dict) -> dict:
    """Write the rule test of a stored delivery: what the current rules do with its event."""
    explanation = explain(ruleset, stored_event(record))
    return test_entry(explanation, f"delivery {record['id']} ({record['source']}, {record['event'] or 'no event name'})")


def test_yaml(entry: dict) -> str:
    """Write a rule test as YAML, indented to paste under `tests:`."""
    text = yaml.safe_dump([entry], sort_keys=False, allow_unicode=True, width=120)
    return "\n".join(f"  {line}" if line else line for line in text.splitlines()) + "\n"
