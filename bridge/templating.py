"""Render a rule's action fields from an event with Jinja2's sandbox."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, meta, nodes, pass_context
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from .errors import TemplateError

# A field that is one expression keeps its type (a course id stays a number, a list stays a list).
_WHOLE_EXPRESSION = re.compile(r"^\s*\{\{(.*)\}\}\s*$", re.DOTALL)


_NO_DEFAULT = object()

# The usual field, `{{ body.a.b | filter('x', 1) }}`, is recognised by a pattern accepting only what
# Jinja's parser accepts; a file of thousands of rules skips the parser for those. Anything else is parsed.
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_LITERAL = r"""(?:-?[0-9]+(?:\.[0-9]+)?|'[^'\\{}%#]*'|"[^"\\{}%#]*")"""
_SIMPLE = re.compile(
    rf"^\{{\{{ *{_IDENT}(?:\.{_IDENT}|\[ *(?:[0-9]+|'[^'\\{{}}%#]*') *\])*"
    rf"(?: *\| *{_IDENT}(?:\( *(?:{_LITERAL}(?: *, *{_LITERAL})*)? *\))?)* *\}}\}}$")
_NAME = re.compile(_IDENT)
_FILTER_NAME = re.compile(rf"\| *({_IDENT})")
_KEYWORDS = frozenset({"and", "or", "not", "in", "is", "if", "else", "true", "false", "none", "True", "False", "None"})


_PATH_FIELD = re.compile(rf"^\{{\{{ *({_IDENT}(?:\.{_IDENT})*) *(\| *lower *)?\}}\}}$")


@lru_cache(maxsize=4096)
def plain_path(text: str) -> tuple[tuple[str, ...], bool] | None:
    """Return (names, lower) for a field that only reads a path, `{{ body.a.b }}` or `{{ body.a.b | lower }}`, else None.

    Such a field can be read without Jinja (the per-person ordering reads one in every request).
    """
    match = _PATH_FIELD.match(text)
    if not match:
        return None
    names = tuple(match.group(1).split("."))
    return None if _KEYWORDS.intersection(names) else (names, bool(match.group(2)))


class TableKeyError(ValueError):
    """A key is not in a rule file's table."""


def first_name(full_name: Any) -> str:
    """Return all but the last word of a full name ("Mary Ann Lee" -> "Mary Ann"; "Cher" -> "Cher")."""
    parts = str(full_name or "").split()
    return " ".join(parts[:-1]) if len(parts) > 1 else "".join(parts)


def last_name(full_name: Any) -> str:
    """Return the last word of a full name ("Mary Ann Lee" -> "Lee"; "Cher" -> "").

    Splitting on the last space keeps multi-word first names (Mary Ann, Jean Pierre); a family name of
    several words ("van der Berg") needs the sender's own fields, when it has them.
    """
    parts = str(full_name or "").split()
    return parts[-1] if len(parts) > 1 else ""


def to_datetime(value: Any) -> datetime:
    """Read a date as senders send it: ISO 8601 text, or unix seconds (or milliseconds)."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.strip().isdigit()):
        seconds = float(value)
        # HubSpot and others send milliseconds; no webhook is dated after the year 5000 in seconds.
        return datetime.fromtimestamp(seconds / 1000 if seconds > 1e11 else seconds, tz=timezone.utc)
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        return datetime.fromisoformat(text)
    raise ValueError(f"{value!r} is not a date")


def date(value: Any, format: str = "%Y-%m-%d") -> str:
    """Format a date (ISO text or unix time) with strftime codes."""
    return to_datetime(value).strftime(format)


@pass_context
def lookup(context, key: Any, table: str, default: Any = _NO_DEFAULT) -> Any:
    """Look a key up in one of the rule file's tables; a missing key is an error unless defaulted."""
    tables = context.get("tables") or {}
    if table not in tables:
        raise TableKeyError(f"no table named {table!r}")
    entries = tables[table]
    for candidate in (key, str(key), str(key).strip()):
        if candidate in entries:
            return entries[candidate]
    if default is not _NO_DEFAULT:
        return default
    raise TableKeyError(f"{key!r} is not in table {table!r}")


class _Environment(SandboxedEnvironment):
    """Jinja2's sandbox, reading a webhook's keys before a dict's methods (body.items is the items)."""

    def getattr(self, obj, attribute):
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


@lru_cache(maxsize=1)
def environment() -> SandboxedEnvironment:
    """Return the one sandboxed Jinja2 environment the bridge renders with."""
    env = _Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.filters.update(first_name=first_name, last_name=last_name, date=date, lookup=lookup)
    return env


@lru_cache(maxsize=4096)
def _compiled(text: str):
    match = _WHOLE_EXPRESSION.match(text)
    if match and "{{" not in match.group(1) and "}}" not in match.group(1):
        return "expression", environment().compile_expression(match.group(1), undefined_to_none=False)
    return "template", environment().from_string(text)


@lru_cache(maxsize=65536)
def check_syntax(text: str) -> str | None:
    """Return a syntax error message for a template, or None when it would compile.

    Parsing (and naming the filters and tests used) finds what compiling finds at a sixth of
    the cost; a template is compiled when first rendered. Cached per distinct text.
    """
    env = environment()
    simple = _SIMPLE.match(text)
    if simple and not _KEYWORDS.intersection(_NAME.findall(text)):
        unknown = [name for name in _FILTER_NAME.findall(text) if name not in env.filters]
        return f"template syntax error: No filter named {unknown[0]!r}. (line 1 of the template)" if unknown else None
    try:
        tree = env.parse(text)
        for node in tree.find_all((nodes.Filter, nodes.Test)):
            known, kind = (env.filters, "filter") if isinstance(node, nodes.Filter) else (env.tests, "test")
            if node.name not in known:
                raise TemplateSyntaxError(f"No {kind} named {node.name!r}.", node.lineno)
    except TemplateSyntaxError as error:
        return f"template syntax error: {error.message} (line {error.lineno} of the template)"
    return None


@lru_cache(maxsize=65536)
def template_roots(text: str) -> frozenset[str]:
    """Return the names a template reads that it does not set itself (body, steps, …); none when it does not parse."""
    if _SIMPLE.match(text):
        first = _NAME.search(text).group(0)  # the usual field reads one name, the first; its filters take literals
        return frozenset() if first in _KEYWORDS else frozenset({first})
    try:
        return frozenset(meta.find_undeclared_variables(environment().parse(text))) - set(environment().globals)
    except TemplateSyntaxError:
        return frozenset()


def render_value(value: Any, context: dict, field: str = "") -> Any:
    """Render strings inside a value (recursively); other values pass through."""
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return value
        try:
            kind, compiled = _compiled(value)
            result = compiled(**context) if kind == "expression" else compiled.render(**context)
            if isinstance(result, Undefined):
                str(result)
        except UndefinedError as error:
            raise TemplateError(f"field {field or '?'}: {missing_path(value, context) or error}") from None
        except (SecurityError, TemplateSyntaxError, TypeError, ValueError, ArithmeticError) as error:
            raise TemplateError(f"field {field or '?'}: {error}") from None
        return result
    if isinstance(value, dict):
        return {key: render_value(item, context, f"{field}.{key}" if field else key) for key, item in value.items()}
    if isinstance(value, list):
        return [render_value(item, context, f"{field}[{index}]") for index, item in enumerate(value)]
    return value


def template_strings(value: Any, field: str = ""):
    """Yield (field, text) for every template string inside a value."""
    if isinstance(value, str):
        if "{{" in value or "{%" in value:
            yield field, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from template_strings(item, f"{field}.{key}" if field else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from template_strings(item, f"{field}[{index}]")


# Filters and tests that make a missing value fine: `x | default('')`, `x is defined`.
_TOLERANT_FILTERS = {"default", "d"}
_TOLERANT_TESTS = {"defined", "undefined", "none"}


def _paths(node, tolerant: bool = False):
    """Yield (names, tolerant) for each dotted path of a template's syntax tree, outermost first."""
    if isinstance(node, (nodes.Getattr, nodes.Getitem, nodes.Name)):
        parts, inner = [], node
        while isinstance(inner, (nodes.Getattr, nodes.Getitem)):
            if isinstance(inner, nodes.Getattr):
                parts.append(inner.attr)
            elif isinstance(inner.arg, nodes.Const):
                parts.append(inner.arg.value)
            else:
                parts = None  # an index computed at run time: not a path that can be named
                break
            inner = inner.node
        if parts is not None and isinstance(inner, nodes.Name):
            yield [inner.name, *reversed(parts)], tolerant
    for child in node.iter_child_nodes():
        allowed = tolerant or (child is getattr(node, "node", None) and (
            (isinstance(node, nodes.Filter) and node.name in _TOLERANT_FILTERS)
            or (isinstance(node, nodes.Test) and node.name in _TOLERANT_TESTS)))
        yield from _paths(child, allowed)


def _show_path(names: list) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else (f".{part}" if index else str(part))
                   for index, part in enumerate(names))


def _keys(value) -> str:
    if isinstance(value, dict):
        keys = sorted(map(str, value))
        return f"has: {', '.join(keys[:25])}{', …' if len(keys) > 25 else ''}" if keys else "is empty"
    if isinstance(value, list):
        return f"is a list of {len(value)}"
    return f"is {type(value).__name__} {str(value)[:40]!r}"


def missing_path(text: str, context: dict) -> str | None:
    """Say which path of a template is missing from the context and what is there instead, or None."""
    try:
        tree = environment().parse(text)
    except TemplateSyntaxError:
        return None
    for names, tolerant in _paths(tree):
        if tolerant:
            continue
        if names[0] not in context:
            roots = ", ".join(sorted(key for key in context if key not in ("tables",)))
            return f"{names[0]} is not defined; a field starts with one of: {roots}"
        node = context[names[0]]
        for depth, part in enumerate(names[1:], start=1):
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and -len(node) <= part < len(node):
                node = node[part]
            elif isinstance(node, list) and isinstance(part, str) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                where = _show_path(names[:depth])
                return f"{_show_path(names[:depth + 1])} is missing; {where} {_keys(node)}"
    return None
