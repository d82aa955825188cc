"""Parse one rule file: YAML that remembers positions, checked against the schema, errors with file:line."""

from __future__ import annotations

import difflib
import json
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from .errors import ConfigError


class _Marked:
    """Mixin for loaded YAML containers that remember where each entry was written."""

    def __init__(self, *args):
        super().__init__(*args)
        self.mark = None
        self.marks: dict = {}


class MarkedDict(_Marked, dict):
    """A mapping from YAML with the position of each key."""


class MarkedList(_Marked, list):
    """A sequence from YAML with the position of each item."""


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """A safe YAML loader (libyaml's when PyYAML has it: ten times faster) that keeps positions and refuses duplicate keys."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> MarkedDict:
    loader.flatten_mapping(node)
    result = MarkedDict()
    result.mark = node.start_mark
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise ConfigError(f"key {key!r} must be text", None, key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        if key in result:
            raise ConfigError(f"duplicate key {key!r}", None, key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        result[key] = loader.construct_object(value_node, deep=True)
        result.marks[key] = key_node.start_mark
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> MarkedList:
    result = MarkedList(loader.construct_object(item, deep=True) for item in node.value)
    result.mark = node.start_mark
    result.marks = {index: item.start_mark for index, item in enumerate(node.value)}
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


@lru_cache(maxsize=1)
def schema() -> dict:
    """Return the rule file's JSON Schema, shipped in the package."""
    return json.loads(resources.files("bridge").joinpath("rule-file.schema.json").read_text("utf-8"))


def parse_document(text: str, filename: str) -> tuple[Any, list[ConfigError]]:
    """Parse one rule file and check it against the schema."""
    try:
        document = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except ConfigError as error:
        return None, [ConfigError(error.reason, filename, error.line, error.column)]
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        return None, [ConfigError(f"not valid YAML: {error.problem or error.context}", filename, line, column)]
    if document is None:
        return MarkedDict(), []
    validator = Draft202012Validator(schema())
    errors = [_schema_error(error, document, filename) for error in validator.iter_errors(document)]
    errors.sort(key=lambda error: (error.line or 0, error.column or 0))
    return (None if errors else document), errors


def _schema_error(error, document, filename: str) -> ConfigError:
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        unknown = sorted(key for key in error.instance if key not in known)
        if unknown:
            line, column = position(document, [*path, unknown[0]])
            where = _describe(path)
            message = f"unknown key {unknown[0]!r}{where}{suggest(unknown[0], known)}"
            if known:
                message += f" (expected one of: {', '.join(sorted(known))})"
            return ConfigError(message, filename, line, column)
    line, column = position(document, path)
    key = path[-1] if path and isinstance(path[-1], str) else None
    subject = f"key {key!r}" if key else _describe(path).removeprefix(" in ") or "the file"
    return ConfigError(f"{subject}: {_message(error)}", filename, line, column)


def _message(error) -> str:
    if error.validator == "required":
        return error.message.replace("is a required property", "is required")
    if error.validator == "enum":
        return f"{error.instance!r} is not one of {', '.join(map(str, error.validator_value))}"
    if error.validator == "pattern":
        return f"{error.instance!r} may only hold letters, digits, '_', '.' and '-' (and start with a letter or digit)"
    return error.message


def _describe(path: list) -> str:
    if not path:
        return ""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return f" in {text}"


def position(document: Any, path: list) -> tuple[int | None, int | None]:
    """Return the 1-based line and column where a path was written, as close as known."""
    node, mark = document, getattr(document, "mark", None)
    for part in path:
        marks = getattr(node, "marks", {})
        if part in marks:
            mark = marks[part]
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
    if mark is None:
        return None, None
    return mark.line + 1, mark.column + 1




def suggest(name: str, known) -> str:
    """Return ", did you mean 'x'?" for a near-miss name, or ""."""
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
