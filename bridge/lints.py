"""Catch rule-file mistakes that load fine and then silently never work, each with the fix.

Errors stop a rule set from loading (a rule that cannot work must not look deployed); warnings are
printed by `bridge check` and fail it only with `--strict`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .rulefile import position, suggest
from .sender_events import event_problem
from .templating import template_roots

# What an event holds: rule conditions and templates read these (rules.md, "What a rule sees").
EVENT_ROOTS = ("body", "headers", "query", "event", "source", "delivery_id", "sender_id", "received_at")
_UNBRACED = re.compile(r"(?<![$\\])\$([A-Za-z_][A-Za-z0-9_]*)")
_WHOLE_UNBRACED = re.compile(r"^\$([A-Z_][A-Z0-9_]*)$")


@dataclass(frozen=True)
class Finding:
    """One mistake: an error or a warning, where it is, and how to fix it."""

    severity: str
    error: ConfigError

    @property
    def line(self) -> str:
        """Return the finding as `file:line:column: warning: message` (errors without the word)."""
        if self.severity == "error":
            return self.error.message
        where = ":".join(str(part) for part in (self.error.file, self.error.line, self.error.column) if part is not None)
        return f"{where}: warning: {self.error.reason}"


def _root(path: str) -> str:
    return re.split(r"[.\[]", path, maxsplit=1)[0]


class _Linter:
    def __init__(self, filename: str, document: Any, source_types: dict[str, str]):
        self.filename, self.document, self.source_types = filename, document, source_types
        self.findings: list[Finding] = []

    def add(self, severity: str, where: list, message: str, fix: str) -> None:
        line, column = position(self.document, where)
        self.findings.append(Finding(severity, ConfigError(f"{message}; fix: {fix}", self.filename, line, column)))

    def run(self) -> list[Finding]:
        for section in ("sources", "connections"):
            for name, block in (self.document.get(section) or {}).items():
                self.unbraced(block, [section, name])
        for index, rule in enumerate(self.document.get("rules") or []):
            self.rule(rule, ["rules", index])
        for index, test in enumerate(self.document.get("tests") or []):
            if "payload" in test and not (Path(self.filename).parent / test["payload"]).is_file():
                self.add("error", ["tests", index, "payload"], f"test {test['name']!r}: payload file {test['payload']!r} "
                         f"does not exist (next to {Path(self.filename).name})",
                         "give a path relative to the rule file, such as ../payloads/order.json")
        return self.findings

    def unbraced(self, value: Any, where: list) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                self.unbraced(item, [*where, key])
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self.unbraced(item, [*where, index])
        elif isinstance(value, str):
            for match in _UNBRACED.finditer(value):
                if value[match.end():match.end() + 1] == "{" or value[match.start() + 1:match.start() + 2] == "{":
                    continue
                whole = _WHOLE_UNBRACED.match(value)
                self.add("error" if whole else "warning", where,
                         f"${match.group(1)} is not substituted: only ${{{match.group(1)}}} reads the environment, so "
                         f"{where[-1]!r} is the text {value!r}" if whole else
                         f"${match.group(1)} in {where[-1]!r} is not substituted (only ${{NAME}} is)",
                         f"write ${{{match.group(1)}}}")

    def rule(self, rule: dict, where: list) -> None:
        name = rule.get("name")
        source_type = self.source_types.get(rule.get("source"))
        events = rule.get("event")
        for offset, event in enumerate([events] if isinstance(events, str) else events or []):
            problem = event_problem(source_type, event) if source_type else None
            if problem:
                at = [*where, "event"] + ([] if isinstance(events, str) else [offset])
                self.add(problem[0], at, f"rule {name!r}: {problem[1]}", problem[2])
        for index, condition in enumerate(rule.get("when") or []):
            self.condition(condition, [*where, "when", index], f"rule {name!r}", EVENT_ROOTS)
        if isinstance(rule.get("subject"), str):
            self.template(rule["subject"], [*where, "subject"], f"rule {name!r}: subject", (*EVENT_ROOTS, "tables"))
        for index, action in enumerate(rule.get("actions") or []):
            self.action(action, [*where, "actions", index], f"rule {name!r}, action {index + 1}")

    def action(self, action: dict, where: list, owner: str) -> None:
        roots = (*EVENT_ROOTS, "steps", "tables")
        if "for_each" in action:
            roots = (*roots, "item", "index")
            text = action["for_each"]
            if "{{" not in text:
                self.add("error", [*where, "for_each"], f"{owner}: for_each {text!r} is text, not a list",
                         f'write for_each: "{{{{ {text.strip()} }}}}"')
            else:
                self.template(text, [*where, "for_each"], f"{owner}: for_each", roots)
        for index, condition in enumerate(action.get("when") or []):
            self.condition(condition, [*where, "when", index], owner, roots)
        self.fields(action.get("with") or {}, [*where, "with"], owner, roots)

    def fields(self, value: Any, where: list, owner: str, roots: tuple) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                self.fields(item, [*where, key], owner, roots)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self.fields(item, [*where, index], owner, roots)
        elif isinstance(value, str) and ("{{" in value or "{%" in value):
            label = ".".join(str(part) for part in where[where.index("with") + 1:])
            self.template(value, where, f"{owner}: field {label}", roots)

    def template(self, text: str, where: list, owner: str, roots: tuple) -> None:
        for name in sorted(template_roots(text) - set(roots)):
            if name in ("steps", "item", "index"):
                why = {"steps": "a rule's subject is rendered before any step",
                       "item": "only an action with for_each has an item",
                       "index": "only an action with for_each has an index"}[name]
                self.add("error", where, f"{owner}: reads {name!r}, but {why}", f"use body., headers. or query. here")
            else:
                self.add("error", where, f"{owner}: reads {name!r}, which a template cannot see "
                         f"(it sees {', '.join(roots)}){suggest(name, roots)}", f"write body.{name}… if it is in the webhook body")

    def condition(self, condition: dict, where: list, owner: str, roots: tuple) -> None:
        for group in ("all", "any"):
            for index, item in enumerate(condition.get(group) or []):
                self.condition(item, [*where, group, index], owner, roots)
        if isinstance(condition.get("not"), dict):
            self.condition(condition["not"], [*where, "not"], owner, roots)
        for key, value in condition.items():
            if key not in ("path", "all", "any", "not", "any_item") and isinstance(value, str) and "{{" in value:
                self.add("warning", [*where, key], f"{owner}: {key} compares with the text {value!r}: conditions "
                         "do not render templates", "compare with a plain value, or test the path that holds it")
        path = condition.get("path")
        if not isinstance(path, str) or path == ".":
            return
        root = _root(path)
        if root in roots:
            return
        if root in ("steps", "item", "index"):
            self.add("error", [*where, "path"], f"{owner}: path {path!r} reads {root}, which a rule's own conditions "
                     "cannot see (they are decided before any action runs)", "move the condition to the action's when:")
        else:
            self.add("error", [*where, "path"], f"{owner}: path {path!r} never holds a value: a path starts with "
                     f"{', '.join(roots)}", f"write path: body.{path}")


def lint(filename: str, document: Any, source_types: dict[str, str]) -> list[Finding]:
    """Return the errors and warnings of one parsed rule file; `source_types` maps every declared source to its type."""
    return _Linter(filename, document, source_types).run()
