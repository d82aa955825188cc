"""Pure helpers that explain a stored delivery: each rule's conditions with the values seen, and a rule test built from it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..conditions import Step, trace
from ..redaction import REDACTED
from ..rules import RuleSet

# Headers a rule test does not need: transport details, and what proves the sender (a test checks no signature).
_TRANSPORT = {"host", "content-length", "content-type", "user-agent", "accept", "accept-encoding", "connection",
              "expect", "x-request-id", "via", "forwarded"}
_PROOF_WORDS = ("signature", "hmac", "token", "secret", "authorization", "cookie", "x-forwarded-", "timestamp")


@dataclass
class RuleExplanation:
    """One rule's decision on a delivery, with each of its conditions as evaluated now."""

    rule: str
    matched: bool
    reason: str
    file: str = ""
    line: int | None = None
    event_check: str = ""
    steps: list[Step] = field(default_factory=list)
    missing: bool = False


def event_of(record: dict) -> dict:
    """Return the event a stored delivery was decided on, as the engine sees it."""
    return {"source": record["source"], "event": record["event"], "delivery_id": record["id"],
            "sender_id": record.get("sender_id") or None, "received_at": record["received_at"],
            "headers": record.get("headers") or {}, "query": record.get("query") or {}, "body": record.get("event_body")}


def explain_decisions(record: dict, ruleset: RuleSet | None) -> list[RuleExplanation]:
    """Explain each stored decision, condition by condition, against the rule as it is loaded now."""
    event = event_of(record)
    rules = {rule.name: rule for rule in ruleset.rules} if ruleset else {}
    explained = []
    for decision in record.get("decisions") or []:
        item = RuleExplanation(decision["rule"], decision["matched"], decision["reason"])
        rule = rules.get(decision["rule"])
        if rule is None:
            item.missing = True
        else:
            item.file, item.line = rule.file, rule.line
            if rule.events is not None:
                wanted = ", ".join(rule.events)
                item.event_check = f"event is {event['event'] or 'unnamed'!r}; the rule is for {wanted}"
            item.steps = trace(rule.conditions, event, ruleset.tables)
        explained.append(item)
    return explained


def pretty(value: Any) -> str:
    """Return data as indented JSON, or text as it is."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def test_headers(headers: dict) -> dict:
    """Return the stored headers a rule test should carry: those rules may read, not transport or proof."""
    return {name: value for name, value in sorted((headers or {}).items())
            if name.lower() not in _TRANSPORT and not any(word in name.lower() for word in _PROOF_WORDS)
            and value != REDACTED}


def rule_test(record: dict, performed: list[dict] | None = None) -> dict:
    """Build a `tests:` entry from a stored delivery and its outcome: the rules it matched, and the actions given."""
    matched = [decision["rule"] for decision in record.get("decisions") or [] if decision["matched"]]
    entry: dict[str, Any] = {"name": f"delivery {record['id']} ({record['event'] or record['source']})",
                             "source": record["source"]}
    if record.get("event"):
        entry["event"] = record["event"]
    headers = test_headers(record.get("headers") or {})
    if headers:
        entry["headers"] = headers
    if record.get("query"):
        entry["query"] = {name: value for name, value in record["query"].items() if value != REDACTED}
    entry["body"] = record.get("event_body") if record.get("event_body") is not None else {}
    entry["expect"] = {"rules": matched}
    if performed:
        entry["expect"]["actions"] = performed
    return entry


def rule_test_yaml(entry: dict) -> str:
    """Write a rule test as YAML, ready to paste under `tests:`."""
    return yaml.safe_dump([entry], sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)


def performed_actions(explanation) -> list[dict]:
    """Return the actions an explanation renders, as a rule test expects them (no skipped ones)."""
    actions = []
    for rule_run in explanation.runs:
        if rule_run.error or rule_run.run is None:
            return []
        for record in rule_run.run.records:
            if not record.skipped:
                actions.append({"rule": rule_run.rule, "connection": record.connection, "action": record.action,
                                "with": record.params})
    return actions
