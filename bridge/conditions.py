"""Pure evaluation of a rule's conditions against an event, with the reason for each outcome."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MISSING = object()
_INDEXED = re.compile(r"\[(\d+)\]")


@dataclass(frozen=True)
class Outcome:
    """Whether a condition held, and a sentence saying why."""

    held: bool
    reason: str


def lookup(data: Any, path: str) -> Any:
    """Return the value at a dotted path (body.items.0.sku or body.items[0].sku), or MISSING."""
    node = data
    for part in _INDEXED.sub(r".\1", path).split("."):
        if isinstance(node, dict):
            # Headers are stored lower-cased, and people write them as the sender documents them.
            if part not in node and part.lower() in node:
                part = part.lower()
            if part not in node:
                return MISSING
            node = node[part]
        elif isinstance(node, list) and part.isascii() and part.isdigit():
            index = int(part)
            if index >= len(node):
                return MISSING
            node = node[index]
        else:
            return MISSING
    return node


def same(left: Any, right: Any) -> bool:
    """Compare like a person would: form data's "42" equals a rule's 42."""
    if left == right and type(left) is not bool and type(right) is not bool:
        return True
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right or str(left).lower() == str(right).lower()
    if isinstance(left, (int, float)) and isinstance(right, str):
        left, right = right, left
    if isinstance(left, str) and isinstance(right, (int, float)):
        try:
            return float(left) == float(right)
        except ValueError:
            return False
    return False


def evaluate(condition: dict, event: dict) -> Outcome:
    """Evaluate one condition; a missing path makes it false, never an error."""
    path = condition["path"]
    value = lookup(event, path)
    shown = "missing" if value is MISSING else repr(value)
    if "exists" in condition:
        present = value is not MISSING and value is not None
        held = present == condition["exists"]
        return Outcome(held, f"{path} {'exists' if present else 'is missing'}")
    if "equals" in condition:
        expected = condition["equals"]
        held = value is not MISSING and same(value, expected)
        return Outcome(held, f"{path} is {shown}, {'equals' if held else 'expected'} {expected!r}")
    if "in" in condition:
        choices = condition["in"]
        held = value is not MISSING and any(same(value, choice) for choice in choices)
        return Outcome(held, f"{path} is {shown}, {'in' if held else 'not in'} {choices!r}")
    raise ValueError(f"condition has no test: {condition!r}")


def evaluate_all(conditions: list[dict], event: dict) -> Outcome:
    """Return the first failing condition's outcome, or a held outcome when all hold."""
    for condition in conditions:
        outcome = evaluate(condition, event)
        if not outcome.held:
            return outcome
    if not conditions:
        return Outcome(True, "no conditions")
    return Outcome(True, f"all {len(conditions)} conditions held")
