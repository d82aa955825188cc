"""Helpers to write rule files for tests, and the tests' own copy of the example rules."""

from __future__ import annotations

import atexit
import shutil
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _copy_of_examples() -> Path:
    """Copy examples/rules once per test session, so that nothing a user puts in a rules folder changes the tests."""
    folder = Path(tempfile.mkdtemp(prefix="bridge-test-rules-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return Path(shutil.copytree(REPO / "examples" / "rules", folder / "rules"))


EXAMPLE_RULES = _copy_of_examples()

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


def wait_reloaded(*lives) -> None:
    """Wait until each LiveRules has loaded the files as they are now (reloads run in the background)."""
    from tests.processes import wait_for

    for live in lives:
        wait_for(live.is_current, what="the rule files to be reloaded")
