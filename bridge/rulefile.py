"""Parse one rule file: YAML that remembers positions, checked against the schema, errors with file:line."""

from __future__ import annotations

import difflib
import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema_rs
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


_Parser = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when PyYAML has it
_IMPLICIT = yaml.SafeLoader.yaml_implicit_resolvers
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_STR, _MERGE_TAG = "tag:yaml.org,2002:str", "tag:yaml.org,2002:merge"
_MERGE = object()
_COLLECTION_TAGS = {yaml.MappingStartEvent: "tag:yaml.org,2002:map", yaml.SequenceStartEvent: "tag:yaml.org,2002:seq"}


def _error(message: str, mark) -> ConfigError:
    return ConfigError(message, None, mark.line + 1, mark.column + 1)


def _scalar(event: yaml.ScalarEvent) -> Any:
    """Return a scalar's value, resolved as PyYAML's safe loader does; most are plain text and cost one lookup."""
    tag, value = event.tag, event.value
    if tag is None or tag == "!":
        tag = _STR
        if event.implicit[0]:
            for candidate, pattern in [*_IMPLICIT.get(value[:1] or "", ()), *_IMPLICIT.get(None, ())]:
                if pattern.match(value):
                    tag = candidate
                    break
    if tag == _STR:
        return value
    if tag == _MERGE_TAG:
        return _MERGE
    construct = _CONSTRUCTOR.yaml_constructors.get(tag)
    if construct is None:
        raise _error(f"unsupported tag {tag!r}", event.start_mark)
    return construct(_CONSTRUCTOR, yaml.ScalarNode(tag, value, event.start_mark, event.end_mark, event.style))


def load_marked(text: str) -> Any:
    """Load one YAML document into MarkedDicts and MarkedLists that know where each entry was written.

    Built straight from the parser's events: PyYAML's node tree and generic constructors cost
    several times more, which a file of thousands of rules feels.
    """
    anchors: dict[str, Any] = {}
    # Open containers: [container, pending key (None: expecting a key), the key's mark, merged mappings].
    stack: list[list] = []
    root: Any = None
    documents = 0

    def place(value: Any, mark) -> None:
        nonlocal root
        if not stack:
            root = value
            return
        frame = stack[-1]
        container = frame[0]
        if isinstance(container, list):
            container.marks[len(container)] = mark
            container.append(value)
        elif frame[1] is None:
            if value is not _MERGE and not isinstance(value, str):
                raise _error(f"key {value!r} must be text", mark)
            if value in container:
                raise _error(f"duplicate key {value!r}", mark)
            frame[1], frame[2] = value, mark
        elif frame[1] is _MERGE:
            merged = value if isinstance(value, list) else [value]
            if not all(isinstance(item, dict) for item in merged):
                raise _error("a merge key (<<) takes a mapping or a list of mappings", frame[2])
            frame[3].extend(merged)
            frame[1] = None
        else:
            container[frame[1]] = value
            container.marks[frame[1]] = frame[2]
            frame[1] = None

    for event in yaml.parse(text, Loader=_Parser):
        kind = type(event)
        if kind is yaml.ScalarEvent:
            value = _scalar(event)
            if event.anchor:
                anchors[event.anchor] = value
            place(value, event.start_mark)
        elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
            if event.tag not in (None, "!", _COLLECTION_TAGS[kind]):
                raise _error(f"unsupported tag {event.tag!r}", event.start_mark)
            value = MarkedDict() if kind is yaml.MappingStartEvent else MarkedList()
            value.mark = event.start_mark
            if event.anchor:
                anchors[event.anchor] = value
            stack.append([value, None, None, []])
        elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            value, _, _, merged = stack.pop()
            for mapping in merged:  # explicit keys win, then the merged mappings in the order listed
                for key, item in mapping.items():
                    if key not in value:
                        value[key] = item
                        value.marks[key] = getattr(mapping, "marks", {}).get(key, value.mark)
            place(value, value.mark)
        elif kind is yaml.AliasEvent:
            if event.anchor not in anchors:
                raise _error(f"found undefined alias {event.anchor!r}", event.start_mark)
            place(anchors[event.anchor], event.start_mark)
        elif kind is yaml.DocumentStartEvent:
            documents += 1
            if documents > 1:
                raise _error("a rule file holds one YAML document (found a second '---')", event.start_mark)
    return root


@lru_cache(maxsize=1)
def schema() -> dict:
    """Return the rule file's JSON Schema, shipped in the package."""
    return json.loads(resources.files("bridge").joinpath("rule-file.schema.json").read_text("utf-8"))


@lru_cache(maxsize=1)
def _fast_validator():
    """Return the schema compiled by jsonschema-rs: it says valid or not, about a hundred times faster."""
    return jsonschema_rs.validator_for(schema())


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    """Return the schema's jsonschema validator, for the detailed errors of a file that is not valid."""
    return Draft202012Validator(schema())


def parse_document(text: str, filename: str) -> tuple[Any, list[ConfigError]]:
    """Parse one rule file and check it against the schema."""
    try:
        document = load_marked(text)
    except ConfigError as error:
        return None, [ConfigError(_unquoted_template(text, error.line) or error.reason, filename, error.line, error.column)]
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        said = _unquoted_template(text, line) or f"not valid YAML: {error.problem or error.context}"
        return None, [ConfigError(said, filename, line, column)]
    if document is None:
        return MarkedDict(), []
    if _fast_validator().is_valid(document):
        return document, []
    # Only a file with errors pays for jsonschema, whose errors carry the paths and details the messages need.
    errors = [_schema_error(error, document, filename) for error in _validator().iter_errors(document)]
    errors.sort(key=lambda error: (error.line or 0, error.column or 0))
    return (None if errors else document), errors


_UNQUOTED = re.compile(r"^(\s*(?:-\s+)?(?:[\w.-]+:\s+)?)(\{\{.*\}\}[^#]*?)\s*(#.*)?$")


def _unquoted_template(text: str, line: int | None) -> str | None:
    """Explain a YAML error caused by a value that starts with {{ and is not quoted, with the line fixed."""
    lines = text.splitlines()
    for number in (line, (line or 0) - 1):  # PyYAML may point at the line after the value
        if number and 0 < number <= len(lines):
            match = _UNQUOTED.match(lines[number - 1])
            if match:
                fixed = match.group(2).strip().replace('"', "'")
                return (f"values that start with {{{{ must be quoted (YAML reads {{ as a mapping); "
                        f"fix: write {match.group(1).strip()} \"{fixed}\"")
    return None


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
