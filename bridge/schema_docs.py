"""The rule-file schema's per-type parts, and the docs tables rendered from the schema: one source, no drift.

`bridge/rule-file.schema.json` is written by hand except `$defs.source` and `$defs.connection`, which are
built here from the presets' and connectors' own schemas (every key any type takes, with its description,
for editors' completion and hover; each type's own checks stay in Python, after ${VARIABLES} are read).
The key tables of docs/rules.md, between `<!-- schema:NAME -->` markers, are rendered from that schema.

    python -m bridge.schema_docs          rewrite both when they are out of date
    python -m bridge.schema_docs --check  exit 1 naming what is out of date (the test suite does this)
"""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parent
SCHEMA_FILE = PACKAGE / "rule-file.schema.json"
DOCS_FILE = PACKAGE.parent / "docs" / "rules.md"

# Keys whose connector or preset schema says what they hold but not what they are for.
NOTES = {
    "connection": {
        "type": "which API: coursebox, coursetoolkit (the LMSs) or http (a lookup on any JSON API)",
        "url": "the API's base address (each type has a default but http); ${VARIABLE} welcome",
        "timeout": "seconds to wait: one number, or [connect, read]; default the BRIDGE_LMS_*_TIMEOUT settings",
        "api_user": "coursetoolkit: the api-user of the account's API access",
        "api_key": "coursetoolkit: the api-key; write it as ${VARIABLE}",
        "actions": "coursetoolkit: the api-action name of each bridge action, when the account's differ from "
                   "createuser, removeuser and getuser",
        "email": "coursebox: the admin login's email",
        "password": "coursebox: the admin login's password; http with auth basic: the password. Write it as ${VARIABLE}",
        "token_ttl": "coursebox: seconds a login token is reused (default 3600; a shorter ttl in the login reply wins)",
    },
    "source": {
        "type": "which sender: it decides how requests are verified and where the event name and delivery id are read",
        "description": "a note for people reading the file",
        "username": "generic with auth basic: the user name",
        "algorithm": "generic with auth hmac: the hash (default sha256)",
        "encoding": "generic with auth hmac: how the signature is written (default hex)",
    },
}
_EXAMPLES = {
    "connection": {"url": ["https://api.coursebox.ai", "${HUBSPOT_API_URL:-https://api.hubapi.com}"],
                   "actions": [{"create_user": "createuser"}]},
    "source": {"secret": ["${SHOPIFY_WEBHOOK_SECRET}"], "event": ["body.event", "header:X-Event"]},
}


def _merged(kind: str, schemas: dict[str, dict]) -> dict:
    """Build one loose definition holding every key of every type, described, for editors."""
    properties: dict[str, dict] = {}
    owners: dict[str, list[str]] = {}
    for type_name, schema in sorted(schemas.items()):
        for key, spec in schema["properties"].items():
            owners.setdefault(key, []).append(type_name)
            if key not in properties:
                properties[key] = {"description": NOTES[kind].get(key) or spec.get("description", "")}
                for word in ("enum", "examples"):
                    if word in spec:
                        properties[key][word] = spec[word]
    for key, entry in properties.items():
        if key == "type":
            entry["enum"] = sorted(schemas)
        elif len(owners[key]) < len(schemas):
            entry["description"] += f" (types: {', '.join(owners[key])})"
        if key in _EXAMPLES[kind]:
            entry["examples"] = _EXAMPLES[kind][key]
        if not entry["description"]:
            raise ValueError(f"{kind} key {key!r} has no description: add one to its schema or to NOTES")
    return {"type": "object", "required": ["type"], "properties": properties}


def build_schema(base: dict) -> dict:
    """Return the rule-file schema with its source and connection definitions built from the code."""
    from .lms import CONNECTION_SCHEMAS
    from .sources import SOURCE_SCHEMAS

    schema = copy.deepcopy(base)
    source = _merged("source", SOURCE_SCHEMAS)
    source["description"] = base["$defs"]["source"]["description"]
    connection = _merged("connection", CONNECTION_SCHEMAS)
    connection["description"] = base["$defs"]["connection"]["description"]
    schema["$defs"]["source"], schema["$defs"]["connection"] = source, connection
    return schema


def undescribed(schema: dict) -> list[str]:
    """List the keys of the schema that have no description (there should be none)."""
    missing = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, item in node.get("properties", {}).items():
                if "description" not in item and "$ref" not in item:
                    missing.append(f"{where}.{key}")
            for key, item in node.items():
                if key not in ("examples", "enum", "const"):  # data, not schema
                    walk(item, f"{where}.{key}")
        elif isinstance(node, list):
            for item in node:
                walk(item, where)

    walk(schema, "#")
    return missing


# Docs tables: marker name -> (definition in $defs, heading of the first column)
TABLES = {"source": "source", "connection": "connection", "rule": "rule", "action": "action",
          "condition": "condition", "test": "test", "retry": "retry"}


def _values(spec: dict, schema: dict) -> str:
    spec = _resolve(spec, schema)
    if "enum" in spec:
        return ", ".join(f"`{value}`" for value in spec["enum"])
    if "const" in spec:
        return f"`{spec['const']}`"
    if "examples" in spec:
        return ", ".join(f"`{json.dumps(value) if not isinstance(value, str) else value}`" for value in spec["examples"])
    kind = spec.get("type")
    if isinstance(kind, list):
        return " or ".join(kind)
    return kind or ("text or a list" if "oneOf" in spec else "")


def _resolve(spec: dict, schema: dict) -> dict:
    while "$ref" in spec:
        target = schema
        for part in spec["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        spec = {**target, **{k: v for k, v in spec.items() if k != "$ref"}}
    return spec


def render_table(schema: dict, name: str) -> str:
    """Render one definition's keys as a Markdown table: key, what it is, values or examples."""
    definition = schema["$defs"][name]
    required = set(definition.get("required", ()))
    rows = ["| key | what it is | values, examples |", "|---|---|---|"]
    for key, spec in definition["properties"].items():
        description = (spec.get("description") or _resolve(spec, schema).get("description", "")).replace("|", "\\|")
        description = description.replace("<", "&lt;").replace(">", "&gt;")  # <token> is text, not HTML
        mark = " (required)" if key in required else ""
        rows.append(f"| `{key}`{mark} | {description} | {_values(spec, schema).replace('|', chr(92) + '|')} |")
    return "\n".join(rows)


_BLOCK = re.compile(r"(<!-- schema:(\w+) -->\n)(.*?)(<!-- /schema:\2 -->)", re.DOTALL)


def render_docs(text: str, schema: dict) -> str:
    """Return the docs text with every schema table block re-rendered."""
    return _BLOCK.sub(lambda m: f"{m.group(1)}{render_table(schema, TABLES[m.group(2)])}\n{m.group(4)}", text)


def stale() -> list[tuple[Path, str]]:
    """Return (file, wanted text) for the schema file and docs page when they are out of date."""
    shipped = json.loads(SCHEMA_FILE.read_text("utf-8"))
    schema = build_schema(shipped)
    out = []
    wanted = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    if SCHEMA_FILE.read_text("utf-8") != wanted:
        out.append((SCHEMA_FILE, wanted))
    docs = DOCS_FILE.read_text("utf-8")
    rendered = render_docs(docs, schema)
    if rendered != docs:
        out.append((DOCS_FILE, rendered))
    return out


def main(argv: list[str]) -> int:
    """Rewrite the out-of-date files, or with --check only name them."""
    found = stale()
    for path, text in found:
        if "--check" in argv:
            print(f"{path} is out of date: run python -m bridge.schema_docs", file=sys.stderr)
        else:
            path.write_text(text, "utf-8")
            print(f"wrote {path}")
    return 1 if found and "--check" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
