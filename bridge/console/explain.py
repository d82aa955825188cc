"""Pure helpers that explain a stored delivery: each rule's conditions with the values it saw, its data pretty-printed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..conditions import Step, trace
from ..rules import RuleSet
from ..ruletests import stored_event


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


def explain_decisions(record: dict, ruleset: RuleSet | None) -> list[RuleExplanation]:
    """Explain each stored decision, condition by condition, against the rule as it is loaded now."""
    event = stored_event(record)
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
