"""Load and validate rule files; every error names its file, line and key."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from .errors import ConfigError, ConfigErrors
from .templating import check_syntax, template_strings

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
RULE_SUFFIXES = (".yaml", ".yml")


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


class _Loader(yaml.SafeLoader):
    """A safe YAML loader that keeps positions and refuses duplicate keys."""


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


@dataclass(frozen=True)
class Source:
    """A sender of webhooks, reached at POST /hooks/<name>."""

    name: str
    type: str
    options: dict
    file: str
    line: int


@dataclass(frozen=True)
class Connection:
    """An LMS account, with its secrets already taken from the environment."""

    name: str
    type: str
    spec: dict
    file: str
    line: int


@dataclass(frozen=True)
class Rule:
    """When an event from a source matches, run these actions in order."""

    name: str
    source: str
    events: tuple[str, ...] | None
    conditions: list
    actions: list
    file: str
    line: int
    description: str = ""


@dataclass(frozen=True)
class RuleSet:
    """Everything loaded from one rules folder."""

    sources: dict[str, Source] = field(default_factory=dict)
    connections: dict[str, Connection] = field(default_factory=dict)
    rules: list[Rule] = field(default_factory=list)
    version: str = ""
    files: tuple[str, ...] = ()

    def rules_for(self, source: str) -> list[Rule]:
        """Return the rules of one source, in file order."""
        return [rule for rule in self.rules if rule.source == source]


@lru_cache(maxsize=1)
def schema() -> dict:
    """Return the rule file's JSON Schema, shipped in the package."""
    return json.loads(resources.files("bridge").joinpath("rule-file.schema.json").read_text("utf-8"))


def rule_files(directory: Path) -> list[Path]:
    """List the rule files of a folder, sorted so that loading is repeatable."""
    if not directory.is_dir():
        raise ConfigErrors([ConfigError(f"rules folder {str(directory)!r} does not exist")])
    return sorted(path for path in directory.iterdir() if path.suffix in RULE_SUFFIXES and path.is_file())


def fingerprint(directory: Path) -> tuple:
    """Return what changes when any rule file changes, cheaply (names, sizes, mtimes)."""
    try:
        return tuple((path.name, stat.st_size, stat.st_mtime_ns) for path in rule_files(directory) for stat in [path.stat()])
    except (ConfigErrors, OSError):
        return ()


def load_rules(directory: Path | str, env: dict | None = None) -> RuleSet:
    """Load every rule file of a folder, or raise ConfigErrors listing every problem."""
    env = os.environ if env is None else env
    directory = Path(directory)
    errors: list[ConfigError] = []
    documents = []
    digest = hashlib.sha256()
    for path in rule_files(directory):
        text = path.read_text("utf-8")
        digest.update(path.name.encode() + b"\0" + text.encode() + b"\0")
        document, problems = parse_document(text, str(path))
        errors.extend(problems)
        if document is not None:
            documents.append((str(path), document))
    ruleset, problems = _build(documents, env)
    errors.extend(problems)
    if errors:
        raise ConfigErrors(errors)
    return RuleSet(ruleset.sources, ruleset.connections, ruleset.rules, digest.hexdigest()[:12], tuple(name for name, _ in documents))


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
            message = f"unknown key {unknown[0]!r}{where}"
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
    if error.validator in ("minProperties", "maxProperties") and "path" in error.instance:
        return "a condition takes a path and exactly one test: equals, in or exists"
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


def expand_env(value: Any, env: dict, filename: str, document: Any, path: list) -> tuple[Any, list[ConfigError]]:
    """Replace ${NAME} and ${NAME:-default} in strings with environment values."""
    errors: list[ConfigError] = []

    def substitute(text: str, where: list) -> str:
        def replace(match: re.Match) -> str:
            name, default = match.group(1), match.group(2)
            if env.get(name) not in (None, ""):
                return env[name]
            if default is not None:
                return default
            line, column = position(document, where)
            errors.append(ConfigError(f"environment variable {name} is not set (used by {where[-1]!r})", filename, line, column))
            return ""

        return _ENV_REFERENCE.sub(replace, text)

    def walk(node: Any, where: list) -> Any:
        if isinstance(node, str):
            return substitute(node, where)
        if isinstance(node, dict):
            return {key: walk(item, [*where, key]) for key, item in node.items()}
        if isinstance(node, list):
            return [walk(item, [*where, index]) for index, item in enumerate(node)]
        return node

    return walk(value, path), errors


def _build(documents: list[tuple[str, Any]], env: dict) -> tuple[RuleSet, list[ConfigError]]:
    from .lms import ACTIONS, validate_connection_spec

    errors: list[ConfigError] = []
    sources: dict[str, Source] = {}
    connections: dict[str, Connection] = {}
    rules: list[Rule] = []
    seen_rules: dict[str, str] = {}

    def error(message: str, filename: str, document: Any, path: list) -> None:
        errors.append(ConfigError(message, filename, *position(document, path)))

    for filename, document in documents:
        for name, options in document.get("sources", {}).items():
            line = position(document, ["sources", name])[0] or 0
            if name in sources:
                error(f"source {name!r} is already declared in {sources[name].file}", filename, document, ["sources", name])
                continue
            expanded, problems = expand_env(options, env, filename, document, ["sources", name])
            errors.extend(problems)
            sources[name] = Source(name, expanded["type"], {k: v for k, v in expanded.items() if k != "type"}, filename, line)
        for name, spec in document.get("connections", {}).items():
            line = position(document, ["connections", name])[0] or 0
            if name in connections:
                error(f"connection {name!r} is already declared in {connections[name].file}", filename, document, ["connections", name])
                continue
            expanded, problems = expand_env(spec, env, filename, document, ["connections", name])
            errors.extend(problems)
            # With a variable unset the spec is incomplete; the missing variable is the one error worth saying.
            for key, message in [] if problems else validate_connection_spec(expanded):
                error(f"connection {name!r}: {message}", filename, document, ["connections", name, *([key] if key else [])])
            connections[name] = Connection(name, expanded["type"], expanded, filename, line)

    for filename, document in documents:
        for index, raw in enumerate(document.get("rules", [])):
            where = ["rules", index]
            name = raw["name"]
            if name in seen_rules:
                error(f"rule {name!r} is already declared in {seen_rules[name]}", filename, document, [*where, "name"])
                continue
            seen_rules[name] = filename
            if raw["source"] not in sources:
                error(f"rule {name!r}: unknown source {raw['source']!r}{_choices(sources)}", filename, document, [*where, "source"])
            errors.extend(_check_actions(raw, connections, ACTIONS, filename, document, where))
            events = raw.get("event")
            events = None if events is None else tuple([events] if isinstance(events, str) else events)
            rules.append(Rule(
                name=name,
                source=raw["source"],
                events=events,
                conditions=_plain(raw.get("when", [])),
                actions=_plain(raw["actions"]),
                file=filename,
                line=position(document, where)[0] or 0,
                description=raw.get("description", ""),
            ))
    return RuleSet(sources, connections, rules), errors


def _check_actions(raw: dict, connections: dict, actions: dict, filename: str, document: Any, where: list) -> list[ConfigError]:
    errors = []
    named: set[str] = set()
    for index, action in enumerate(raw["actions"]):
        at = [*where, "actions", index]

        def error(message: str, key: str | None = None) -> None:
            errors.append(ConfigError(f"rule {raw['name']!r}, action {index + 1}: {message}", filename, *position(document, at + ([key] if key else []))))

        for field_name, text in template_strings(action.get("with", {})):
            problem = check_syntax(text)
            if problem:
                error(f"field {field_name}: {problem}", "with")
        connection = connections.get(action["connection"])
        if connection is None:
            error(f"unknown connection {action['connection']!r}{_choices(connections)}", "connection")
        else:
            supported = actions.get(connection.type, {})
            spec = supported.get(action["action"])
            if spec is None:
                error(f"{connection.type} connection {connection.name!r} has no action {action['action']!r}{_choices(supported)}", "action")
            else:
                for problem in spec.problems(action.get("with", {})):
                    error(f"{action['action']!r}: {problem}", "with" if "with" in action else None)
        alias = action.get("as")
        if alias:
            if alias in named:
                error(f"step name {alias!r} is used twice", "as")
            named.add(alias)
    return errors


def _choices(names) -> str:
    names = sorted(names)
    return f" (known: {', '.join(names)})" if names else " (none declared)"


def _plain(value: Any) -> Any:
    """Return a copy made of plain dicts and lists, safe to serialize into a job."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


class LiveRules:
    """The rule set of a folder, reloaded when its files change; a broken change keeps the last good set."""

    def __init__(self, directory: Path | str, env: dict | None = None, check_every: float = 1.0, log=None):
        self.directory = Path(directory)
        self.env = env
        self.check_every = check_every
        self.log = log
        self.error: ConfigErrors | None = None
        self._ruleset: RuleSet | None = None
        self._fingerprint: tuple | None = None
        self._checked_at = float("-inf")

    def get(self) -> RuleSet:
        """Return the current rule set, or raise ConfigErrors when no good set was ever loaded."""
        import time

        now = time.monotonic()
        if now - self._checked_at >= self.check_every:
            self._checked_at = now
            current = fingerprint(self.directory)
            if current != self._fingerprint or self._ruleset is None:
                self._fingerprint = current
                self._reload()
        if self._ruleset is None:
            raise self.error
        return self._ruleset

    def _reload(self) -> None:
        try:
            self._ruleset = load_rules(self.directory, self.env)
            self.error = None
        except ConfigErrors as errors:
            self.error = errors
            if self.log:
                kept = f"keeping rules version {self._ruleset.version}" if self._ruleset else "no rules loaded"
                self.log.error("rule files have errors (%s):\n%s", kept, errors.message)
