"""Delivery history from the command line: list, show, retry, replay."""

import json
import shutil

from click.testing import CliRunner
from rq.job import JobStatus

from bridge.cli import cli
from tests.rule_files import EXAMPLE_RULES
from tests.signing import hr_post, woo_post
from tests.test_pipeline import ORDER, fault, job_of


def bridge(redis_url, lms_env, *args, rules=EXAMPLE_RULES):
    env = {**lms_env, "REDIS_URL": redis_url, "RULES_DIR": str(rules), "BRIDGE_RETRY_INTERVALS": "0,0,0"}
    return CliRunner().invoke(cli, list(args), env=env)


def test_a_failed_delivery_is_listed_and_explained_with_the_lms_reply(client, work, sandbox, redis_conn, redis_url, lms_env):
    lms_env["COURSETOOLKIT_API_KEY"] = "wrong-key"  # the app and the worker load their rules from this dict
    failed = client.post("/hooks/hr", **hr_post({"event": "employee.hired", "id": "x1", "employee": {"email": "zoe@example.com"}})).get_json()
    client.post("/hooks/shop", **woo_post(ORDER))
    work()
    listed = bridge(redis_url, lms_env, "deliveries", "--status", "failed")
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert len(lines) == 2 and failed["delivery_id"] in lines[1] and "create-account-on-hire" in lines[1]
    as_json = json.loads(bridge(redis_url, lms_env, "deliveries", "--json").output)
    assert [item["status"] for item in as_json] == ["succeeded", "failed"]
    assert [item["id"] for item in json.loads(bridge(redis_url, lms_env, "deliveries", "--email", "ZOE@example.com", "--json").output)] == [failed["delivery_id"]]
    shown = bridge(redis_url, lms_env, "show", failed["delivery_id"])
    assert shown.exit_code == 0, shown.output
    assert f"delivery {failed['delivery_id']}: failed" in shown.output
    assert "MATCH create-account-on-hire: no conditions" in shown.output
    assert "LMSRejected" in shown.output or "LMSAuthError" in shown.output
    assert '"response_description"' in shown.output  # the LMS's own reply
    assert "wrong-key" not in shown.output and "sandbox-password" not in shown.output


def test_show_lists_every_lms_exchange_without_secrets(client, work, redis_conn, redis_url, lms_env):
    reply = client.post("/hooks/shop", **woo_post(ORDER)).get_json()
    work()
    record = json.loads(bridge(redis_url, lms_env, "show", reply["delivery_id"], "--json").output)
    assert record["status"] == "succeeded"
    assert [call["url"].rsplit("/", 1)[-1] for call in record["attempts"]] == ["login", "createAccount", "enrolUser"]
    assert record["attempts"][0]["request"] == {"email": "admin@sandbox.test", "password": "[redacted]"}
    assert [step["status"] for step in record["timeline"]] == ["received", "queued", "running", "succeeded"]
    text = json.dumps(record)
    assert "sandbox-password" not in text and lms_env["WOOCOMMERCE_SECRET"] not in text
    assert bridge(redis_url, lms_env, "show", "nope").exit_code == 1


def test_retry_a_failed_delivery_after_the_lms_recovers(client, work, sandbox, redis_conn, redis_url, lms_env):
    fault(sandbox, status=503, count=4, path="enrolUser")
    reply = client.post("/hooks/shop", **woo_post(ORDER)).get_json()
    work()
    assert job_of(redis_conn, reply).get_status() == JobStatus.FAILED
    result = bridge(redis_url, lms_env, "retry", reply["delivery_id"])
    assert result.exit_code == 0 and f"[1/1] {reply['jobs'][0]}: queued again" in result.output
    work()
    assert job_of(redis_conn, reply).get_status() == JobStatus.FINISHED


def test_bulk_retry_by_rule_shows_progress(client, work, sandbox, redis_conn, redis_url, lms_env):
    fault(sandbox, status=400, count=2, path="coursetoolkit")
    for number in range(2):
        client.post("/hooks/hr", **hr_post({"event": "employee.hired", "id": f"b{number}", "employee": {"email": f"b{number}@example.com"}}))
    work()
    assert "no failed jobs match" in bridge(redis_url, lms_env, "retry", "--rule", "enroll-buyer-on-completed-order").output
    result = bridge(redis_url, lms_env, "retry", "--rule", "create-account-on-hire", "--since", "1h")
    assert result.exit_code == 0 and "[2/2]" in result.output
    work()
    statuses = [item["status"] for item in json.loads(bridge(redis_url, lms_env, "deliveries", "--json").output)]
    assert statuses == ["succeeded", "succeeded"]
    assert bridge(redis_url, lms_env, "retry").exit_code == 2


def test_replay_runs_a_stored_delivery_through_the_fixed_rules(client, work, sandbox, sandbox_calls, redis_conn, redis_url, lms_env, tmp_path):
    reply = client.post("/hooks/shop", **woo_post({**ORDER, "line_items": [{"sku": "COURSE-99"}]})).get_json()
    assert reply["matched"] == []
    fixed = tmp_path / "rules"
    shutil.copytree(EXAMPLE_RULES, fixed)
    shop = fixed / "shop.yaml"
    shop.write_text(shop.read_text().replace("    COURSE-13: 13", "    COURSE-13: 13\n    COURSE-99: 13"))
    result = bridge(redis_url, lms_env, "replay", reply["delivery_id"], rules=fixed)
    assert result.exit_code == 0, result.output
    replayed = json.loads(result.output)
    assert replayed["matched"] == ["enroll-buyer-on-completed-order"] and replayed["delivery_id"] != reply["delivery_id"]
    work()
    assert any(call["path"].endswith("/Courses/13/enrolUser") for call in sandbox_calls())
    shown = json.loads(bridge(redis_url, lms_env, "show", replayed["delivery_id"], "--json").output)
    assert shown["replay_of"] == reply["delivery_id"] and shown["status"] == "succeeded"


def test_replay_of_a_delivery_about_nobody_that_matched_nothing(client, redis_conn, redis_url, lms_env):
    reply = client.post("/hooks/hr", **hr_post({"event": "employee.promoted", "id": "p1", "employee": {}})).get_json()
    result = bridge(redis_url, lms_env, "replay", reply["delivery_id"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["matched"] == []


def test_a_permanent_failure_is_recorded_as_the_first_attempt(client, work, redis_conn, redis_url, lms_env):
    reply = client.post("/hooks/hr", **hr_post({"event": "employee.hired", "id": "a1", "employee": {"first_name": "No Email"}})).get_json()
    work()
    record = json.loads(bridge(redis_url, lms_env, "show", reply["delivery_id"], "--json").output)
    assert [(step["status"], step.get("attempt")) for step in record["timeline"][2:]] == [("running", 1), ("failed", 1)]


def test_a_late_step_does_not_bring_back_an_expired_delivery(client, redis_conn):
    from bridge.deliveries import RECORD_KEY, TIMELINE_KEY, load_record, note

    reply = client.post("/hooks/shop", **woo_post(ORDER)).get_json()
    redis_conn.delete(RECORD_KEY.format(reply["delivery_id"]), TIMELINE_KEY.format(reply["delivery_id"]))
    note(redis_conn, reply["delivery_id"], reply["jobs"][0], "queued")
    assert not redis_conn.exists(RECORD_KEY.format(reply["delivery_id"]), TIMELINE_KEY.format(reply["delivery_id"]))
    assert load_record(redis_conn, reply["delivery_id"]) is None


def test_a_login_reply_is_never_kept(client, work, redis_url, lms_env):
    reply = client.post("/hooks/shop", **woo_post(ORDER)).get_json()
    work()
    record = json.loads(bridge(redis_url, lms_env, "show", reply["delivery_id"], "--json").output)
    login = record["attempts"][0]
    assert login["url"].endswith("/auth/login") and login["reply"] == "[redacted]"
    assert record["attempts"][1]["reply"] not in ("[redacted]", None)
