"""The rule-file schema documents every key, and the docs tables say what the schema says."""

import json

import jsonschema

from bridge import schema_docs
from bridge.rulefile import schema


def test_the_shipped_schema_and_the_docs_tables_are_up_to_date():
    assert [str(path) for path, _ in schema_docs.stale()] == [], "run: python -m bridge.schema_docs"


def test_every_key_has_a_description_and_the_schema_is_valid():
    shipped = schema()
    jsonschema.Draft202012Validator.check_schema(shipped)
    assert schema_docs.undescribed(shipped) == []


def test_every_source_and_connection_key_of_the_code_is_in_the_schema():
    from bridge.lms import CONNECTION_SCHEMAS
    from bridge.sources import SOURCE_SCHEMAS

    shipped = schema()["$defs"]
    for kind, schemas in (("source", SOURCE_SCHEMAS), ("connection", CONNECTION_SCHEMAS)):
        keys = {key for fragment in schemas.values() for key in fragment["properties"]}
        assert set(shipped[kind]["properties"]) == keys
        assert shipped[kind]["properties"]["type"]["enum"] == sorted(schemas)


def test_a_docs_table_that_disagrees_is_found(tmp_path, monkeypatch):
    docs = tmp_path / "rules.md"
    text = schema_docs.DOCS_FILE.read_text()
    docs.write_text(text.replace("| `as` |", "| `as_name` |"))
    monkeypatch.setattr(schema_docs, "DOCS_FILE", docs)
    [(path, wanted)] = schema_docs.stale()
    assert path == docs and wanted == text
    assert schema_docs.main(["--check"]) == 1
    assert schema_docs.main([]) == 0 and docs.read_text() == text


def test_the_tables_render_descriptions_and_values():
    table = schema_docs.render_table(schema(), "action")
    assert "| `connection` (required) | the connection (connections:) the action runs on |" in table
    assert json.dumps({"email": "{{ body.billing.email | lower }}", "course_id": 42}).replace("|", "\\|") in table
