"""Commands in another terminal find the embedded bridge through its data folder, or say clearly that there is none."""

import json
import os
import re

import pytest
from click.testing import CliRunner

from bridge.cli import cli
from bridge.discovery import RECORD, find_embedded
from bridge.embedded import DEMO_SECRETS, demo_env
from bridge.settings import Settings
from tests.rule_files import EXAMPLE_RULES

DEMO_NAMES = tuple(demo_env("http://127.0.0.1:8000"))


def terminal(data_dir, **more) -> dict:
    """Return a terminal's environment: no REDIS_URL, no RULES_DIR, no demo values; only where the data folder is."""
    return {"BRIDGE_DATA_DIR": str(data_dir), "REDIS_URL": None, "RULES_DIR": None,
            **{name: None for name in DEMO_NAMES}, **more}


def record(data_dir, redis_url, **more):
    data_dir.mkdir(exist_ok=True)
    names = list(DEMO_NAMES)
    (data_dir / RECORD).write_text(json.dumps({"pid": os.getpid(), "url": "http://127.0.0.1:8000", "rules_dir": str(EXAMPLE_RULES),
                                               "redis_url": redis_url, "demo": names, "started_at": 0, **more}))


@pytest.mark.parametrize("args", [["deliveries"], ["show", "d-1"], ["retry", "--all-failed"], ["replay", "d-1"]])
def test_without_a_data_folder_a_command_says_there_is_no_bridge_and_creates_nothing(tmp_path, args):
    result = CliRunner().invoke(cli, args, env=terminal(tmp_path / "data"))
    assert result.exit_code == 1, result.output
    assert f"no embedded bridge here: its data folder {tmp_path / 'data'} does not exist" in result.output
    assert "set REDIS_URL" in result.output
    assert not (tmp_path / "data").exists()


def test_a_running_embedded_bridge_lends_its_rules_demo_settings_and_redis(tmp_path, redis_url, redis_conn):
    record(tmp_path / "data", redis_url)
    found = find_embedded(Settings.from_env({"BRIDGE_DATA_DIR": str(tmp_path / "data")}))
    assert found.running and found.rules_dir == EXAMPLE_RULES
    checked = CliRunner().invoke(cli, ["check"], env=terminal(tmp_path / "data"))
    assert checked.exit_code == 0, checked.output
    assert re.search(r"^ok: \d+ file\(s\)", checked.output, re.M) and f"embedded bridge running here: pid {os.getpid()}" in checked.output
    listed = CliRunner().invoke(cli, ["deliveries"], env=terminal(tmp_path / "data"))
    assert listed.exit_code == 0 and "no deliveries match" in listed.output  # read from the recorded Redis
    assert listed.output.count("embedded bridge running here") == 1


def test_explicit_folders_and_settings_win_over_the_embedded_bridge(tmp_path, redis_url):
    record(tmp_path / "data", redis_url)
    (tmp_path / "mine").mkdir()
    for args, env in ((["check", str(tmp_path / "mine")], {}), (["check"], {"RULES_DIR": str(tmp_path / "mine")})):
        result = CliRunner().invoke(cli, args, env=terminal(tmp_path / "data", **env))
        assert result.exit_code == 0 and "no rule files in" in result.output and "embedded bridge" not in result.output


def test_a_stopped_embedded_bridge_is_not_taken_for_a_running_one(tmp_path, redis_url):
    record(tmp_path / "data", redis_url, stopped_at=1)
    found = find_embedded(Settings.from_env({"BRIDGE_DATA_DIR": str(tmp_path / "data")}))
    assert not found.running and found.describe().startswith("embedded bridge not running; reading its data in")
    # A rules command then checks ./rules (here: none), not the stopped bridge's folder.
    result = CliRunner().invoke(cli, ["check"], env=terminal(tmp_path / "data"))
    assert result.exit_code == 1 and "rules folder 'rules' does not exist" in result.output


def test_serve_refuses_a_second_bridge_on_the_same_data_folder(tmp_path, redis_url):
    record(tmp_path / "data", redis_url)
    result = CliRunner().invoke(cli, ["serve"], env=terminal(tmp_path / "data"))
    assert result.exit_code == 1 and "an embedded bridge running here" in result.output and "stop it first" in result.output


def test_the_embedded_bridge_reads_variables_from_dot_env_where_it_runs_and_so_do_other_terminals(tmp_path, redis_url, monkeypatch):
    from bridge.embedded import embedded_env

    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({"BRIDGE_DATA_DIR": str(tmp_path / "data")})
    assert embedded_env(settings, 8000)["BRIDGE_ENV_FILE"] == str(tmp_path.resolve() / ".env")
    (tmp_path / ".env").write_text("NEW_SECRET=from-dot-env\n")
    record(tmp_path / "data", redis_url, env_file=str(tmp_path / ".env"))
    env = find_embedded(settings).env({"OTHER": "1"})
    assert env.items() >= {"OTHER": "1", "NEW_SECRET": "from-dot-env", "WOOCOMMERCE_SECRET": DEMO_SECRETS["WOOCOMMERCE_SECRET"]}.items()


def test_a_crashed_bridge_whose_socket_is_gone_is_not_running(tmp_path):
    record(tmp_path / "data", f"unix://{tmp_path / 'gone.socket'}")  # pid alive (ours), no stopped_at, no socket
    assert not find_embedded(Settings.from_env({"BRIDGE_DATA_DIR": str(tmp_path / "data")})).running
