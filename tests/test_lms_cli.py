"""`bridge lms` through click's CliRunner, against the sandbox over real HTTP."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bridge.lms.cli import lms
from bridge.sandbox import COURSEBOX_EMAIL, COURSEBOX_PASSWORD, COURSETOOLKIT_API_KEY, COURSETOOLKIT_API_USER
from tests.lms_helpers import live_sandbox, lms_sandbox, redis14, redis_name  # noqa: F401

CONNECTIONS = """\
connections:
  {box}:
    type: coursebox
    url: {box_url}
    email: {box_email}
    password: ${{BOX_PASSWORD}}
  kit:
    type: coursetoolkit
    url: {kit_url}
    api_user: {kit_user}
    api_key: ${{KIT_KEY}}
"""


@pytest.fixture
def rules_dir(tmp_path, lms_sandbox):
    (tmp_path / "connections.yaml").write_text(CONNECTIONS.format(
        box="box", box_url=lms_sandbox.coursebox_url, box_email=COURSEBOX_EMAIL,
        kit_url=lms_sandbox.coursetoolkit_url, kit_user=COURSETOOLKIT_API_USER))
    return tmp_path


@pytest.fixture
def bridge_lms(rules_dir):
    """Return a function running `bridge lms ARGS --rules DIR` with the secrets in the environment."""
    def run(*args, redis_url=None, password=COURSEBOX_PASSWORD, rules=rules_dir):
        env = {"BOX_PASSWORD": password, "KIT_KEY": COURSETOOLKIT_API_KEY, "REDIS_URL": redis_url, "RULES_DIR": None}
        return CliRunner().invoke(lms, [*args, "--rules", str(rules)], env=env)
    return run


def test_ping_checks_both_kinds_of_credentials(bridge_lms, lms_sandbox):
    box, kit = bridge_lms("ping", "box"), bridge_lms("ping", "kit")

    assert box.exit_code == 0 and box.output.startswith("ok: coursebox connection 'box' at http://127.0.0.1:")
    assert kit.exit_code == 0 and "ok: coursetoolkit connection 'kit'" in kit.output and "User not found" in kit.output
    assert len(lms_sandbox.calls("/auth/login")) == 1


def test_ping_with_a_wrong_password_fails_clearly(bridge_lms, rules_dir):
    result = bridge_lms("ping", "box", password="wrong-Secret-42")

    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: LMS connection 'box', ping: login: HTTP 401: login failed",
        f"check the credentials of connection 'box' ({rules_dir / 'connections.yaml'}:2)"]
    assert "wrong-Secret-42" not in result.output


def test_ping_json_for_scripts(bridge_lms):
    good = bridge_lms("ping", "box", "--json")
    bad = bridge_lms("ping", "box", "--json", password="wrong-Secret-42")

    assert good.exit_code == 0 and json.loads(good.output)["ok"] is True
    assert bad.exit_code == 1
    error = json.loads(bad.stdout)
    assert error["ok"] is False and error["error"] == "LMSAuthError" and error["http_status"] == 401
    assert error["connection"] == "box" and error["retryable"] is False


def test_courses_as_a_table_and_as_json(bridge_lms):
    table = bridge_lms("courses", "box")
    data = bridge_lms("courses", "box", "--json")

    assert table.exit_code == 0 and table.output.splitlines() == [
        "ID  TITLE", "42  Onboarding", "7   Food Safety", "13  Customer Service", "3 course(s)"]
    assert [course["id"] for course in json.loads(data.output)] == [42, 7, 13]


def test_user_by_id_and_by_email_with_toolkit_permissions(bridge_lms):
    box = bridge_lms("user", "box", "1")
    kit = bridge_lms("user", "kit", "1001")

    assert box.exit_code == 0 and f"email      {COURSEBOX_EMAIL}" in box.output.splitlines()
    assert kit.exit_code == 0 and kit.output.splitlines()[-3:] == ["COURSE  ACCESS", "42      all", "7       m1, m2"]
    assert json.loads(bridge_lms("user", "kit", "1001", "--json").output)["courses"] == {"42": "all", "7": ["m1", "m2"]}
    unknown = bridge_lms("user", "box", "nobody@example.com")
    assert unknown.exit_code == 1 and "no Coursebox user id is known for 'nobody@example.com'" in unknown.stderr


def test_learners_teach_the_bridge_emails_through_redis(bridge_lms, lms_sandbox, redis14, redis_name, redis_url, tmp_path):
    (tmp_path / "connections.yaml").write_text(CONNECTIONS.format(
        box=redis_name, box_url=lms_sandbox.coursebox_url, box_email=COURSEBOX_EMAIL,
        kit_url=lms_sandbox.coursetoolkit_url, kit_user=COURSETOOLKIT_API_USER))
    bridge_lms("ping", redis_name, redis_url=redis_url, rules=tmp_path)
    user = bridge_lms("user", redis_name, "1", "--json", redis_url=redis_url, rules=tmp_path)
    assert json.loads(user.output)["email"] == COURSEBOX_EMAIL
    lms_sandbox.state.enrollments["13"].append(1)

    learners = bridge_lms("learners", redis_name, "13", redis_url=redis_url, rules=tmp_path)
    assert learners.exit_code == 0 and learners.output.splitlines() == [
        "ID  EMAIL               NAME", f"1   {COURSEBOX_EMAIL}  Sandbox Admin", "1 learner(s) in course 13"]
    by_email = bridge_lms("user", redis_name, COURSEBOX_EMAIL.upper(), "--json", redis_url=redis_url, rules=tmp_path)
    assert json.loads(by_email.output)["id"] == "1"
    assert len(lms_sandbox.calls("/auth/login")) == 1  # ping's token served every later command


def test_commands_the_lms_cannot_do_say_so(bridge_lms):
    for args in (("courses", "kit"), ("learners", "kit", "42")):
        result = bridge_lms(*args)
        assert result.exit_code == 1 and "coursetoolkit connection 'kit' cannot" in result.stderr


def test_unknown_connection_and_broken_rules_are_usage_errors(bridge_lms, tmp_path_factory):
    unknown = bridge_lms("ping", "nope")
    assert unknown.exit_code == 2 and "no connection 'nope'" in unknown.stderr and "(known: box, kit)" in unknown.stderr

    broken = tmp_path_factory.mktemp("broken")
    (broken / "connections.yaml").write_text("connections:\n  box:\n    type: coursebox\n    url: http://x\n")
    result = bridge_lms("ping", "box", rules=broken)
    assert result.exit_code == 1 and "have errors" in result.stderr and "missing key 'email'" in result.stderr


def test_a_course_the_lms_does_not_know_exits_1(bridge_lms):
    result = bridge_lms("learners", "box", "999")

    assert result.exit_code == 1 and 'Unknown "Course" id "999"' in result.stderr
