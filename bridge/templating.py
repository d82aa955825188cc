"""Render a rule's action fields from an event with Jinja2's sandbox."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from .errors import TemplateError

# A field that is one expression keeps its type (a course id stays a number, a list stays a list).
_WHOLE_EXPRESSION = re.compile(r"^\s*\{\{(.*)\}\}\s*$", re.DOTALL)


@lru_cache(maxsize=1)
def environment() -> SandboxedEnvironment:
    """Return the one sandboxed Jinja2 environment the bridge renders with."""
    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


@lru_cache(maxsize=4096)
def _compiled(text: str):
    match = _WHOLE_EXPRESSION.match(text)
    if match and "{{" not in match.group(1) and "}}" not in match.group(1):
        return "expression", environment().compile_expression(match.group(1), undefined_to_none=False)
    return "template", environment().from_string(text)


def check_syntax(text: str) -> str | None:
    """Return a syntax error message for a template, or None when it compiles."""
    try:
        _compiled(text)
    except TemplateSyntaxError as error:
        return f"template syntax error: {error.message} (line {error.lineno} of the template)"
    return None


def render_value(value: Any, context: dict, field: str = "") -> Any:
    """Render strings inside a value (recursively); other values pass through."""
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return value
        try:
            kind, compiled = _compiled(value)
            result = compiled(**context) if kind == "expression" else compiled.render(**context)
        except (UndefinedError, SecurityError, TemplateSyntaxError, TypeError, ValueError, ArithmeticError) as error:
            raise TemplateError(f"field {field or '?'}: {error}") from None
        if isinstance(result, Undefined):
            try:
                str(result)
            except UndefinedError as error:
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
