"""Pure matching: (rules, event) -> which rules fire, and why each did or did not."""

from __future__ import annotations

from dataclasses import dataclass

from .conditions import evaluate_all
from .errors import TemplateError
from .rules import Rule, RuleSet
from .templating import plain_path, render_value


@dataclass(frozen=True)
class Decision:
    """One rule's verdict on one event."""

    rule: Rule
    matched: bool
    reason: str

    def to_dict(self) -> dict:
        """Describe the decision for replies and delivery records."""
        return {"rule": self.rule.name, "matched": self.matched, "reason": self.reason}


def decide(rule: Rule, event: dict, tables: dict | None = None) -> Decision:
    """Decide whether one rule fires for an event."""
    if rule.events is not None and event["event"] not in rule.events:
        wanted = ", ".join(rule.events)
        return Decision(rule, False, f"event is {event['event'] or 'unnamed'!r}, rule is for {wanted}")
    outcome = evaluate_all(rule.conditions, event, tables)
    return Decision(rule, outcome.held, outcome.reason)


def decide_all(ruleset: RuleSet, event: dict, every_rule: bool = False) -> list[Decision]:
    """Decide the rules of the event's source that name its event (or every rule of the source), in file order."""
    return [decide(rule, event, ruleset.tables) for rule in ruleset.rules_for(event["source"], None if every_rule else event["event"])]


def job_payload(rule: Rule, event: dict, ruleset: RuleSet, retry: dict | None = None) -> dict:
    """Return what a worker needs to run one matched rule: the rule as it was planned, and no secrets."""
    return {
        "delivery_id": event["delivery_id"],
        "rule": rule.name,
        "rules_version": ruleset.version,
        "actions": rule.actions,
        "tables": {name: ruleset.tables[name] for name in rule.tables},
        "retry": retry,
        "event": event,
    }


def subject_of(rule: Rule, event: dict) -> str | None:
    """Return who a matched rule is about (lower-cased), or None when its subject cannot be rendered."""
    if not rule.subject:
        return None
    value = _read_path(rule.subject, event)
    if value is _UNREAD:
        try:
            value = render_value(rule.subject, {**event, "steps": {}})
        except TemplateError:
            return None
    text = str(value).strip().lower() if value not in (None, "") else ""
    return text or None


_UNREAD = object()


def _read_path(text: str, event: dict):
    """Read a subject that is a plain path of dict keys as Jinja would, without Jinja; _UNREAD when it is not that simple."""
    plain = plain_path(text)
    if plain is None or plain[0][0] == "steps":
        return _UNREAD
    value = event
    for name in plain[0]:
        if not isinstance(value, dict) or name not in value:
            return _UNREAD  # Jinja decides: an attribute, or a missing key
        value = value[name]
    return str(value).lower() if plain[1] else value
