"""Pure evaluation of a rule's conditions against an event, with the reason for each outcome.

A condition is either a test of one path (`path` plus exactly one operator) or a group:
`all: [...]`, `any: [...]`, `not: {...}`. `any_item` tests the elements of a list, with
paths relative to the element; `in_table` tests that a value is a key of a rule file's table. A missing path makes a test false, never an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

import re2

MISSING = object()
_INDEXED = re.compile(r"\[(\d+)\]")


@dataclass(frozen=True)
class Outcome:
    """Whether a condition held, and a sentence saying why."""

    held: bool
    reason: str


def lookup(data: Any, path: str) -> Any:
    """Return the value at a dotted path (body.items.0.sku or body.items[0].sku), or MISSING."""
    if path in (".", ""):
        return data
    node = data
    for part in _parts(path):
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


@lru_cache(maxsize=4096)
def _parts(path: str) -> tuple[str, ...]:
    """Split a path once: rules ask for the same few paths on every delivery."""
    return tuple(_INDEXED.sub(r".\1", path).split("."))


def same(left: Any, right: Any) -> bool:
    """Compare like a person would: form data's "42" equals a rule's 42."""
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right or str(left).lower() == str(right).lower()
    if left == right:
        return True
    if isinstance(left, (int, float)) and isinstance(right, str):
        left, right = right, left
    if isinstance(left, str) and isinstance(right, (int, float)):
        number = _number(left)
        return number is not None and number == right
    return False


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> re2._Regexp:
    """Compile a rule's regular expression once, with RE2: its time is linear in the text, whatever the pattern.

    Python's backtracking `re` can take minutes on one crafted text (ReDoS), and the text comes
    from whoever calls a hook URL. RE2 has no backreferences or lookarounds; it refuses those here.
    """
    options = re2.Options()
    options.log_errors = False  # a refused pattern is reported with its file and line, not on stderr
    return re2.compile(pattern, options)


def pattern_problem(pattern: Any) -> str | None:
    """Say why RE2 cannot run a pattern, or None when it can."""
    if not isinstance(pattern, str):
        return f"a regular expression must be text, got {type(pattern).__name__}"
    try:
        compile_pattern(pattern)
    except re2.error as error:
        reason = error.args[0] if error.args else error
        reason = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
        return (f"bad regular expression {pattern!r}: {reason} (patterns run on RE2, which has no"
                " backreferences or lookarounds and spells end-of-text \\z)")
    return None


def _compare(test: Callable[[float, float], bool]) -> Callable[[Any, Any], bool]:
    def check(value: Any, expected: Any) -> bool:
        left, right = _number(value), _number(expected)
        if left is not None and right is not None:
            return test(left, right)
        # Text that is not a number, such as an ISO date, compares as text.
        return isinstance(value, str) and isinstance(expected, str) and test(value, expected)

    return check


def _contains(value: Any, expected: Any) -> bool:
    if isinstance(value, str):
        return isinstance(expected, str) and expected in value
    if isinstance(value, list):
        return any(same(item, expected) for item in value)
    if isinstance(value, dict):
        return expected in value
    return False


# operator -> (test of a present value, verb for a reason that held, verb for one that did not)
OPERATORS: dict[str, tuple[Callable[[Any, Any], bool], str, str]] = {
    "equals": (same, "equals", "expected"),
    "not_equals": (lambda value, expected: not same(value, expected), "differs from", "must differ from"),
    "in": (lambda value, choices: any(same(value, choice) for choice in choices), "in", "not in"),
    "not_in": (lambda value, choices: not any(same(value, choice) for choice in choices), "not in", "must not be in"),
    "gt": (_compare(lambda a, b: a > b), ">", "not >"),
    "gte": (_compare(lambda a, b: a >= b), ">=", "not >="),
    "lt": (_compare(lambda a, b: a < b), "<", "not <"),
    "lte": (_compare(lambda a, b: a <= b), "<=", "not <="),
    "contains": (_contains, "contains", "does not contain"),
    "starts_with": (lambda value, prefix: isinstance(value, str) and value.startswith(str(prefix)), "starts with", "does not start with"),
    "ends_with": (lambda value, suffix: isinstance(value, str) and value.endswith(str(suffix)), "ends with", "does not end with"),
    "matches": (lambda value, pattern: isinstance(value, str) and compile_pattern(pattern).search(value) is not None, "matches", "does not match"),
}
GROUPS = ("all", "any", "not", "any_item")
TESTS = (*OPERATORS, "exists", "in_table", "any_item")


def _show(value: Any) -> str:
    text = "missing" if value is MISSING else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def evaluate(condition: dict, data: dict, tables: dict | None = None) -> Outcome:
    """Evaluate one condition (a test or a group) against data; `in_table` tests read `tables`."""
    if "all" in condition:
        return evaluate_all(condition["all"], data, tables)
    if "any" in condition:
        reasons = []
        for item in condition["any"]:
            outcome = evaluate(item, data, tables)
            if outcome.held:
                return outcome
            reasons.append(outcome.reason)
        return Outcome(False, f"none of: {'; '.join(reasons)}")
    if "not" in condition:
        outcome = evaluate(condition["not"], data, tables)
        return Outcome(not outcome.held, f"not ({outcome.reason})")
    path = condition["path"]
    value = lookup(data, path)
    if "any_item" in condition:
        return _any_item(path, value, condition["any_item"], tables)
    if "in_table" in condition:
        table = condition["in_table"]
        held = value is not MISSING and isinstance(value, (str, int, float)) and str(value) in (tables or {}).get(table, {})
        return Outcome(held, f"{path} is {_show(value)}, {'in' if held else 'not in'} table {table!r}")
    if "exists" in condition:
        present = value is not MISSING and value is not None
        return Outcome(present == condition["exists"], f"{path} {'exists' if present else 'is missing'}")
    [operator] = [name for name in condition if name in OPERATORS]
    test, said_held, said_failed = OPERATORS[operator]
    expected = condition[operator]
    held = value is not MISSING and test(value, expected)
    return Outcome(held, f"{path} is {_show(value)}, {said_held if held else said_failed} {expected!r}")


def _any_item(path: str, value: Any, conditions: list, tables: dict | None) -> Outcome:
    if not isinstance(value, list):
        return Outcome(False, f"{path} is {_show(value)}, not a list")
    for index, item in enumerate(value):
        outcome = evaluate_all(conditions, item, tables)
        if outcome.held:
            return Outcome(True, f"{path}[{index}] matched: {outcome.reason}")
    return Outcome(False, f"no element of {path} ({len(value)}) matched")


def evaluate_all(conditions: list[dict], data: dict, tables: dict | None = None) -> Outcome:
    """Return the first failing condition's outcome, or a held outcome when all hold."""
    for condition in conditions:
        outcome = evaluate(condition, data, tables)
        if not outcome.held:
            return outcome
    if not conditions:
        return Outcome(True, "no conditions")
    return Outcome(True, f"all {len(conditions)} conditions held")


def condition_problems(condition: dict) -> list[tuple[list, str]]:
    """List (path within the condition, message) for what a schema cannot check: bad regexes."""
    problems: list[tuple[list, str]] = []
    for group in ("all", "any", "any_item"):
        for index, item in enumerate(condition.get(group, [])):
            problems += [([group, index, *where], message) for where, message in condition_problems(item)]
    if isinstance(condition.get("not"), dict):
        problems += [(["not", *where], message) for where, message in condition_problems(condition["not"])]
    if "matches" in condition:
        problem = pattern_problem(condition["matches"])
        if problem:
            problems.append((["matches"], problem))
    return problems


@dataclass(frozen=True)
class Step:
    """One condition of a rule as evaluated: how deep it sits, what it asks, the value seen, and whether it held."""

    depth: int
    asks: str
    seen: str
    held: bool
    reason: str


def trace(conditions: list[dict], data: dict, tables: dict | None = None, depth: int = 0) -> list[Step]:
    """Evaluate every condition (no short cut) and return one step per condition and group, for explaining a decision."""
    steps: list[Step] = []
    for condition in conditions:
        outcome = evaluate(condition, data, tables)
        group = next((name for name in ("all", "any", "not") if name in condition), None)
        if group:
            children = condition[group] if group != "not" else [condition[group]]
            steps.append(Step(depth, f"{group}:", "", outcome.held, outcome.reason))
            steps += trace(children, data, tables, depth + 1)
            continue
        path = condition["path"]
        operator = next((name for name in condition if name != "path"), "")
        steps.append(Step(depth, f"{path} {operator} {condition.get(operator)!r}" if operator != "any_item" else f"{path} any_item",
                          _show(lookup(data, path)), outcome.held, outcome.reason))
    return steps
