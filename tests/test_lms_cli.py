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


def write_connections(folder, sandbox, box: str = "box"):
    """Write the connections file: a Coursebox connection named `box` and a Course Toolkit one named kit."""
    (folder / "connections.yaml").write_text(CONNECTIONS.format(
        box=box, box_url=sandbox.coursebox_url, box_email=COURSEBOX_EMAIL,
        kit_url=sandbox.coursetoolkit_url, kit_user=COURSETOOLKIT_API_USER))
    return folder


@pytest.fixture
def rules_dir(tmp_path, lms_sandbox):
    return write_connections(tmp_path, lms_sandbox)


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
    write_connections(tmp_path, lms_sandbox, box=redis_name)
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


def test_sync_learns_everyone_the_courses_show_with_progress(bridge_lms, lms_sandbox, redis14, redis_name, redis_url, tmp_path):
    from bridge.lms import build_connector
    from tests.test_lms_coursebox import made_outside_the_bridge

    write_connections(tmp_path, lms_sandbox, box=redis_name)
    first = made_outside_the_bridge(lms_sandbox, "first@example.com", 42)
    second = made_outside_the_bridge(lms_sandbox, "second@example.com", 7)
    connector = build_connector(redis_name, {"type": "coursebox", "url": lms_sandbox.coursebox_url,
                                             "email": COURSEBOX_EMAIL, "password": "x"}, redis=redis14)
    connector.identities.remember("gone@example.com", str(first))  # contradicted: the LMS shows first@ there

    result = bridge_lms("sync", redis_name, redis_url=redis_url, rules=tmp_path)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "[1/3] course 42 Onboarding: 2 people",  # first@ and the administrator
        "[2/3] course 7 Food Safety: 2 people",
        "[3/3] course 13 Customer Service: 1 people",
        f"learned 3 id(s) from 3 of 3 course(s): 3 new, 0 changed, 1 dropped because the LMS shows their id "
        f"under another email; 3 known for '{redis_name}' now"]
    assert connector.identities.all() == {"first@example.com": str(first), "second@example.com": str(second),
                                          COURSEBOX_EMAIL: "1"}
    again = json.loads(bridge_lms("sync", redis_name, "--json", redis_url=redis_url, rules=tmp_path).output)
    assert again["new"] == 0 and again["complete"] is True and again["known"] == 3
    kit = bridge_lms("sync", "kit", redis_url=redis_url, rules=tmp_path)
    assert kit.exit_code == 1 and "its API lists no users" in kit.stderr


def test_link_refuses_an_id_of_someone_else_and_remembers_a_checked_one(bridge_lms, lms_sandbox, redis14, redis_name, redis_url, tmp_path):
    from tests.test_lms_coursebox import made_outside_the_bridge

    write_connections(tmp_path, lms_sandbox, box=redis_name)
    uid = made_outside_the_bridge(lms_sandbox, "pat@example.com", 13)

    wrong = bridge_lms("link", redis_name, "pat@example.com", "1", redis_url=redis_url, rules=tmp_path)
    assert wrong.exit_code == 1 and f"user 1 of '{redis_name}' is {COURSEBOX_EMAIL}, not pat@example.com" in wrong.stderr
    missing = bridge_lms("link", redis_name, "pat@example.com", "9999", redis_url=redis_url, rules=tmp_path)
    assert missing.exit_code == 1 and 'Unknown "WineUser" id "9999"' in missing.stderr
    linked = bridge_lms("link", redis_name, "Pat@Example.com", str(uid), redis_url=redis_url, rules=tmp_path)
    assert linked.exit_code == 0 and "bridge deliveries --status needs-attention --email Pat@Example.com" in linked.output
    kit = bridge_lms("link", "kit", "learner@sandbox.test", "1001", "--json", redis_url=redis_url, rules=tmp_path)
    assert json.loads(kit.output) == {"connection": "kit", "email": "learner@sandbox.test", "user_id": "1001",
                                      "checked": True}
