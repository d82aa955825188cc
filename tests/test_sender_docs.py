"""docs/senders: a page per sender, naming files that exist, with simulate lines that work as written."""

import re
import shlex

import pytest
from click.testing import CliRunner

from bridge.cli import cli
from bridge.sources import PRESETS
from tests.rule_files import EXAMPLE_RULES, REPO

PAGES = REPO / "docs" / "senders"


def test_every_sender_type_has_a_page_listed_in_the_index():
    index = (PAGES / "README.md").read_text()
    for kind in PRESETS:
        assert (PAGES / f"{kind}.md").is_file(), kind
        assert f"| `{kind}` | [{kind}.md]({kind}.md) |" in index


@pytest.mark.parametrize("page", sorted(path.name for path in PAGES.glob("*.md")))
def test_files_a_page_names_exist(page):
    text = (PAGES / page).read_text()
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if not target.startswith("http"):
            assert (PAGES / target).resolve().exists(), f"{page}: {target}"
    for name in re.findall(r"examples/(?:rules|payloads)/[\w.-]+\.\w+", text):
        assert (REPO / name).is_file(), f"{page}: {name}"


@pytest.mark.parametrize("line", sorted({line for path in PAGES.glob("*.md") for line in path.read_text().splitlines()
                                         if line.startswith("bridge simulate ")}))
def test_each_simulate_line_of_the_pages_runs_and_matches(line, monkeypatch):
    monkeypatch.chdir(REPO)
    args = shlex.split(line)[1:]
    args[args.index("--rules") + 1] = str(EXAMPLE_RULES)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "MATCH" in result.output
