"""Load a folder of rule files into one checked rule set; every error names its file, line and key."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from .conditions import GROUPS, TESTS, condition_problems
from .errors import ConfigError, ConfigErrors
from .rulefile import parse_document, position, suggest
from .templating import check_syntax, template_strings

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_STEP_REFERENCE = re.compile(r"\bsteps\s*(?:\.\s*([A-Za-z_]\w*)|\[\s*['\"]([A-Za-z_]\w*)['\"]\s*\])")
_TABLE_REFERENCE = re.compile(r"\blookup\(\s*['\"]([A-Za-z_]\w*)['\"]|\btables\s*(?:\.\s*([A-Za-z_]\w*)|\[\s*['\"]([A-Za-z_]\w*)['\"]\s*\])")
RULE_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Source:
    """A sender of webhooks, reached at POST /hooks/<name>."""

    name: str
    type: str
    options: dict = field(repr=False)  # it holds the source's secrets
    file: str
    line: int


@dataclass(frozen=True)
class Connection:
    """An LMS account, with its secrets already taken from the environment."""

    name: str
    type: str
    spec: dict = field(repr=False)  # it holds the connection's credentials
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
    tables: tuple[str, ...] = ()
    subject: str | None = None
    retry: dict | None = None


@dataclass(frozen=True)
class RuleTest:
    """A sample event written next to the rules, and what it must produce."""

    name: str
    spec: dict
    file: str
    line: int


@dataclass(frozen=True)
class RuleSet:
    """Everything loaded from one rules folder."""

    sources: dict[str, Source] = field(default_factory=dict)
    connections: dict[str, Connection] = field(default_factory=dict)
    rules: list[Rule] = field(default_factory=list)
    tables: dict[str, dict] = field(default_factory=dict)
    tests: list[RuleTest] = field(default_factory=list)
    version: str = ""
    files: tuple[str, ...] = ()
    warnings: tuple = ()  # lints.Finding of mistakes that do not stop loading, for `bridge check`
    # What requests work out from the rules (a rule's retry policy, ...): once per loaded set, not per request.
    memo: dict = field(default_factory=dict, compare=False, repr=False)

    @cached_property
    def _index(self) -> dict:
        index: dict = {}
        for position_, rule in enumerate(self.rules):
            for event in rule.events or (None,):
                index.setdefault((rule.source, event), []).append((position_, rule))
        return index

    def prepare(self) -> None:
        """Build the (source, event) index now, while loading, rather than in the first request."""
        self._index  # noqa: B018 - a cached property

    def rules_for(self, source: str, event: str | None = None) -> list[Rule]:
        """Return the rules of a source that can fire for an event (all of them when event is None), in file order."""
        if event is None:
            return [rule for rule in self.rules if rule.source == source]
        named = self._index.get((source, event), [])
        anything = self._index.get((source, None), [])
        if not anything:
            return [rule for _, rule in named]
        return [rule for _, rule in sorted(named + anything, key=lambda pair: pair[0])]


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


def load_rules(directory: Path | str, env: dict | None = None, require_env: bool = True) -> RuleSet:
    """Load every rule file of a folder, or raise ConfigErrors listing every problem.

    With require_env false, an unset ${VARIABLE} is not an error (for rule tests, which reach no LMS).
    """
    env = os.environ if env is None else env
    directory = Path(directory)
    errors: list[ConfigError] = []
    documents = []
    digest = hashlib.sha256()
    for path in rule_files(directory):
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as error:
            errors.append(ConfigError(f"cannot be read: {error}", str(path)))
            continue
        digest.update(path.name.encode() + b"\0" + text.encode() + b"\0")
        document, problems = parse_document(text, str(path))
        errors.extend(problems)
        if document is not None:
            documents.append((str(path), document))
    builder = _Builder(env, require_env)
    builder.build(documents)
    errors.extend(builder.errors)
    if errors:
        raise ConfigErrors(errors, builder.warnings)
    ruleset = RuleSet(builder.sources, builder.connections, builder.rules, builder.tables, builder.tests,
                      digest.hexdigest()[:12], tuple(name for name, _ in documents), tuple(builder.warnings))
    ruleset.prepare()
    return ruleset


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


class _Builder:
    """Collect declarations across files, then check what refers to what."""

    def __init__(self, env: dict, require_env: bool = True):
        self.env = env
        self.require_env = require_env
        self.errors: list[ConfigError] = []
        self.sources: dict[str, Source] = {}
        self.connections: dict[str, Connection] = {}
        self.tables: dict[str, dict] = {}
        self.rules: list[Rule] = []
        self.tests: list[RuleTest] = []
        self._table_files: dict[str, str] = {}
        self.referenced_tables: set[str] = set()
        self.warnings: list = []

    def error(self, message: str, filename: str, document: Any, path: list) -> None:
        self.errors.append(ConfigError(message, filename, *position(document, path)))

    def build(self, documents: list[tuple[str, Any]]) -> None:
        from .lints import lint

        for filename, document in documents:
            self._declarations(filename, document)
        source_types = {name: source.type for name, source in self.sources.items()}
        for filename, document in documents:
            for finding in lint(filename, document, source_types):
                if finding.severity == "error":
                    self.errors.append(finding.error)
                else:
                    self.warnings.append(finding)
        seen: dict[str, str] = {}
        for filename, document in documents:
            for index, raw in enumerate(document.get("rules", [])):
                where = ["rules", index]
                if raw["name"] in seen:
                    self.error(f"rule {raw['name']!r} is already declared in {seen[raw['name']]}", filename, document, [*where, "name"])
                    continue
                seen[raw["name"]] = filename
                self.rules.append(self._rule(raw, filename, document, where))
            for index, raw in enumerate(document.get("tests", [])):
                if raw["source"] not in self.sources:
                    self.error(f"test {raw['name']!r}: unknown source {raw['source']!r}{_choices(raw['source'], self.sources)}",
                               filename, document, ["tests", index, "source"])
                self.tests.append(RuleTest(raw["name"], _plain(raw), filename, position(document, ["tests", index])[0] or 0))

    def _declarations(self, filename: str, document: Any) -> None:
        from .lms import validate_connection_spec
        from .source_options import validate_source_spec

        for name, options in document.get("sources", {}).items():
            if name in self.sources:
                self.error(f"source {name!r} is already declared in {self.sources[name].file}", filename, document, ["sources", name])
                continue
            expanded, problems = expand_env(options, self.env, filename, document, ["sources", name])
            self.errors.extend(problems if self.require_env else [])
            for key, message in [] if problems else validate_source_spec(expanded):
                self.error(f"source {name!r}: {message}", filename, document, ["sources", name, *([key] if key else [])])
            line = position(document, ["sources", name])[0] or 0
            self.sources[name] = Source(name, expanded["type"], {k: v for k, v in expanded.items() if k != "type"}, filename, line)
        for name, spec in document.get("connections", {}).items():
            if name in self.connections:
                self.error(f"connection {name!r} is already declared in {self.connections[name].file}", filename, document, ["connections", name])
                continue
            expanded, problems = expand_env(spec, self.env, filename, document, ["connections", name])
            self.errors.extend(problems if self.require_env else [])
            # With a variable unset the spec is incomplete; the missing variable is the one error worth saying.
            for key, message in [] if problems else validate_connection_spec(expanded):
                self.error(f"connection {name!r}: {message}", filename, document, ["connections", name, *([key] if key else [])])
            line = position(document, ["connections", name])[0] or 0
            self.connections[name] = Connection(name, expanded["type"], expanded, filename, line)
        for name, table in document.get("tables", {}).items():
            if name in self.tables:
                self.error(f"table {name!r} is already declared in {self._table_files[name]}", filename, document, ["tables", name])
                continue
            self.tables[name] = {str(key): value for key, value in _plain(table).items()}
            self._table_files[name] = filename

    def _rule(self, raw: dict, filename: str, document: Any, where: list) -> Rule:
        name = raw["name"]
        self.referenced_tables = set()
        if raw["source"] not in self.sources:
            self.error(f"rule {name!r}: unknown source {raw['source']!r}{_choices(raw['source'], self.sources)}", filename, document, [*where, "source"])
        for index, condition in enumerate(raw.get("when", [])):
            self._condition(condition, f"rule {name!r}", filename, document, [*where, "when", index])
        tables = self._actions(raw, filename, document, where)
        if "subject" in raw and check_syntax(raw["subject"]):
            self.error(f"rule {name!r}: subject: {check_syntax(raw['subject'])}", filename, document, [*where, "subject"])
        events = raw.get("event")
        return Rule(
            name=name,
            source=raw["source"],
            events=None if events is None else tuple([events] if isinstance(events, str) else events),
            conditions=_plain(raw.get("when", [])),
            actions=_plain(raw["actions"]),
            file=filename,
            line=position(document, where)[0] or 0,
            description=raw.get("description", ""),
            tables=tuple(sorted(tables | self.referenced_tables)),
            subject=raw.get("subject") or _first_email(raw["actions"]),
            retry=_plain(raw.get("retry")),
        )

    def _condition(self, condition: dict, owner: str, filename: str, document: Any, where: list) -> None:
        groups = [key for key in ("all", "any", "not") if key in condition]
        tests = [key for key in condition if key in TESTS]
        if groups and len(condition) != 1:
            self.error(f"{owner}: a condition group ({groups[0]}) stands alone; put other tests inside it", filename, document, where)
        elif not groups and ("path" not in condition or len(tests) != 1):
            known = ", ".join(TESTS)
            self.error(f"{owner}: a condition takes a path and exactly one test ({known}), or is a group: {', '.join(g for g in GROUPS if g != 'any_item')}",
                       filename, document, where)
        for sub, message in condition_problems(condition):
            self.error(f"{owner}: {message}", filename, document, [*where, *sub])
        table = condition.get("in_table")
        if table is not None:
            self.referenced_tables.add(table)
            if table not in self.tables:
                self.error(f"{owner}: unknown table {table!r}{_choices(table, self.tables)}", filename, document, [*where, "in_table"])
        for group in ("all", "any", "any_item"):
            for index, item in enumerate(condition.get(group, [])):
                self._condition(item, owner, filename, document, [*where, group, index])
        if isinstance(condition.get("not"), dict):
            self._condition(condition["not"], owner, filename, document, [*where, "not"])

    def _actions(self, raw: dict, filename: str, document: Any, where: list) -> set[str]:
        from .lms import ACTIONS

        named: list[str] = []
        tables: set[str] = set()
        for index, action in enumerate(raw["actions"]):
            at = [*where, "actions", index]
            owner = f"rule {raw['name']!r}, action {index + 1}"

            def error(message: str, *path) -> None:
                self.error(f"{owner}: {message}", filename, document, [*at, *path])

            texts = list(template_strings(action.get("with", {})))
            if "for_each" in action:
                texts.append(("for_each", action["for_each"]))
            for field_name, text in texts:
                at_field = ("for_each",) if field_name == "for_each" else ("with", re.split(r"[.\[]", field_name)[0])
                problem = check_syntax(text)
                if problem:
                    error(f"field {field_name}: {problem}", *at_field)
                for match in _STEP_REFERENCE.finditer(text):
                    step = match.group(1) or match.group(2)
                    if step not in named:
                        known = f" (steps so far: {', '.join(named)})" if named else " (no step before this one is named with as:)"
                        error(f"field {field_name}: step {step!r} is used before it exists{known}{suggest(step, named)}", *at_field)
                for match in _TABLE_REFERENCE.finditer(text):
                    table = match.group(1) or match.group(2) or match.group(3)
                    if table not in self.tables:
                        error(f"field {field_name}: unknown table {table!r}{_choices(table, self.tables)}", *at_field)
                    tables.add(table)
            for condition_index, condition in enumerate(action.get("when", [])):
                self._condition(condition, owner, filename, document, [*at, "when", condition_index])
            connection = self.connections.get(action["connection"])
            if connection is None:
                error(f"unknown connection {action['connection']!r}{_choices(action['connection'], self.connections)}", "connection")
            else:
                supported = ACTIONS.get(connection.type, {})
                spec = supported.get(action["action"])
                if spec is None:
                    error(f"{connection.type} connection {connection.name!r} has no action {action['action']!r}"
                          f"{_choices(action['action'], supported)}", "action")
                else:
                    for problem in spec.problems(action.get("with", {})):
                        error(f"{action['action']!r}: {problem}", *(["with"] if "with" in action else []))
            alias = action.get("as")
            if alias:
                if alias in named:
                    error(f"step name {alias!r} is used twice", "as")
                named.append(alias)
        return tables


def _first_email(actions: list) -> str | None:
    """Return the first action's email template: who a rule is about, unless it says `subject:`."""
    for action in actions:
        email = action.get("with", {}).get("email")
        if isinstance(email, str) and "for_each" not in action:
            return email
    return None


def _choices(name: str, names) -> str:
    names = sorted(names)
    return f"{suggest(name, names)} (known: {', '.join(names)})" if names else " (none declared)"


def _plain(value: Any) -> Any:
    """Return a copy made of plain dicts and lists, safe to serialize into a job."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


class LiveRules:
    """The rule set of a folder, reloaded when its files change; a broken change keeps the last good set.

    After the first load, a changed folder is loaded by a background thread: requests go on with
    the current set meanwhile (10,000 rules take a second or two), then see the new one.
    """

    def __init__(self, directory: Path | str, env: dict | None = None, check_every: float = 1.0, log=None,
                 env_file: Path | None = None):
        self.directory = Path(directory)
        self.env = env
        self.env_file = env_file
        self.check_every = check_every
        self.log = log or logging.getLogger("bridge.rules")
        self.error: ConfigErrors | None = None
        self._ruleset: RuleSet | None = None
        self._fingerprint: tuple | None = None
        self._checked_at = float("-inf")
        self._lock = threading.Lock()

    def get(self) -> RuleSet:
        """Return the current rule set, or raise ConfigErrors when no good set was ever loaded."""
        if self._ruleset is None:
            # Until a first set loads, every caller waits for the one loading it, then sees its outcome.
            with self._lock:
                if self._ruleset is None and (self.error is None or self._due()):
                    self._checked_at = time.monotonic()
                    self._fingerprint = self._look()
                    self._reload()
            if self._ruleset is None:
                raise self.error
            return self._ruleset
        # One thread at a time looks at the files (a few stat calls); a change is loaded in the background.
        if self._due() and self._lock.acquire(blocking=False):
            self._checked_at = time.monotonic()
            current = self._look()
            if current == self._fingerprint:
                self._lock.release()
            else:
                self._fingerprint = current
                threading.Thread(target=self._reload_and_release, name="bridge-rules-reload", daemon=True).start()
        return self._ruleset

    def is_current(self) -> bool:
        """Say whether the set (or the error) in hand reflects the files as they are now; look at them if due."""
        try:
            self.get()
        except ConfigErrors:
            pass
        return not self._lock.locked() and self._fingerprint == self._look()

    def _look(self) -> tuple:
        """Return what changes when a rule file or the env file changes."""
        try:
            stat = self.env_file.stat() if self.env_file else None
        except OSError:
            stat = None
        return fingerprint(self.directory), stat and (stat.st_size, stat.st_mtime_ns)

    def _due(self) -> bool:
        return time.monotonic() - self._checked_at >= self.check_every

    def _reload_and_release(self) -> None:
        try:
            self._reload()
        finally:
            self._lock.release()

    def _reload(self) -> None:
        from .settings import env_file_values

        env = os.environ if self.env is None else self.env
        if self.env_file is not None:
            env = {**env, **env_file_values(self.env_file)}
        try:
            ruleset = load_rules(self.directory, env)
        except ConfigErrors as errors:
            self.error = errors
            kept = f"keeping rules version {self._ruleset.version}" if self._ruleset else "no rules loaded"
            self.log.error("rule files have errors (%s):\n%s", kept, errors.message)
            return
        if self._ruleset is not None and ruleset.version != self._ruleset.version:
            self.log.info("rules reloaded: version %s, %d rule(s)", ruleset.version, len(ruleset.rules))
        self._ruleset, self.error = ruleset, None
