"""Helpers to write rule files for tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

EXAMPLE_RULES = Path(__file__).resolve().parent.parent / "rules"

CONNECTIONS = """
connections:
  coursebox:
    type: coursebox
    url: ${COURSEBOX_URL}
    email: ${COURSEBOX_EMAIL}
    password: ${COURSEBOX_PASSWORD}
  coursetoolkit:
    type: coursetoolkit
    url: ${COURSETOOLKIT_URL}
    api_user: ${COURSETOOLKIT_API_USER}
    api_key: ${COURSETOOLKIT_API_KEY}
"""


def write_rules(directory: Path, files: dict[str, str], connections: bool = True) -> Path:
    """Write rule files (dedented) into a folder, with the sandbox connections unless told not to."""
    directory.mkdir(parents=True, exist_ok=True)
    if connections:
        (directory / "connections.yaml").write_text(CONNECTIONS)
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text).lstrip())
    return directory
