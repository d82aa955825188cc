"""How jobs end beyond success and failure: needs attention, skipped; and a rehire, end to end with a real worker."""

import json

import requests
from click.testing import CliRunner

from bridge.cli import cli
from bridge.sandbox import COURSEBOX_EMAIL, COURSEBOX_PASSWORD
from tests.rule_files import EXAMPLE_RULES, write_rules
from tests.signing import hr_post, woo_post
from tests.test_metrics import samples
from tests.test_pipeline import ORDER, state

BUYER = "known@example.com"


def bridge(redis_url, lms_env, *args, rules=EXAMPLE_RULES):
    env = {**lms_env, "REDIS_URL": redis_url, "RULES_DIR": str(rules), "BRIDGE_RETRY_INTERVALS": "0,0,0"}
    return CliRunner().invoke(cli, list(args), env=env)


def account_in_no_course(sandbox, email: str) -> int:
    """Create a Coursebox account as the LMS's own admin screens would, enrolled nowhere."""
    base = f"{sandbox}/sandbox/coursebox"
    token = requests.post(f"{base}/auth/login", json={"email": COURSEBOX_EMAIL, "password": COURSEBOX_PASSWORD},
                          timeout=5).json()["token"]["id"]
    user = {"firstName": "Kay", "lastName": "Known", "email": email, "password": "their-own-1"}
    reply = requests.post(f"{base}/api/wineusers/createAccount", json={"data": {"user": user}},
                          headers={"X-Access-Token": token}, timeout=5)
    requests.delete(f"{sandbox}/sandbox/calls", timeout=5)
    return reply.json()["id"]


def order(number: int, email: str = BUYER) -> dict:
    return {**ORDER, "id": number, "billing": {"email": email, "first_name": "Kay", "last_name": "Known"}}


def test_an_account_the_api_cannot_find_needs_attention_until_linked_and_retried(client, work, sandbox, redis_url, lms_env):
    uid = account_in_no_course(sandbox, BUYER)
    reply = client.post("/hooks/shop", **woo_post(order(501))).get_json()
    work()

    listed = bridge(redis_url, lms_env, "deliveries", "--status", "needs-attention", "--json")
    assert [item["id"] for item in json.loads(listed.output)] == [reply["delivery_id"]]
    shown = json.loads(bridge(redis_url, lms_env, "show", reply["delivery_id"], "--json").output)
    assert shown["status"] == "needs-attention"
    step = shown["timeline"][-1]
    assert step["status"] == "needs-attention" and step["email"] == BUYER and step["connection"] == "coursebox"
    assert f"bridge lms link coursebox {BUYER} USER_ID" in step["remedy"]
    found = samples(client)
    rule = ("rule", "enroll-buyer-on-completed-order")
    assert found[("bridge_jobs_total", (("outcome", "needs-attention"), rule))] == 1
    assert found[("bridge_jobs_needing_attention", ())] == 1
    assert ("bridge_jobs_total", (("outcome", "succeeded"), rule)) not in found
    assert state(sandbox)["coursebox"]["enrollments"]["42"] == []

    wrong = bridge(redis_url, lms_env, "lms", "link", "coursebox", BUYER, "1")
    assert wrong.exit_code == 1 and f"user 1 of 'coursebox' is {COURSEBOX_EMAIL}, not {BUYER}" in wrong.output
    linked = bridge(redis_url, lms_env, "lms", "link", "coursebox", BUYER, str(uid))
    assert linked.exit_code == 0 and f"linked {BUYER} to user {uid}" in linked.output, linked.output
    assert bridge(redis_url, lms_env, "retry", reply["delivery_id"]).exit_code == 0
    work()

    assert json.loads(bridge(redis_url, lms_env, "show", reply["delivery_id"], "--json").output)["status"] == "succeeded"
    assert state(sandbox)["coursebox"]["enrollments"]["42"] == [uid]
    assert samples(client)[("bridge_jobs_needing_attention", ())] == 0


def test_a_leave_for_someone_the_bridge_cannot_resolve_is_skipped_and_creates_nobody(client, work, sandbox, sandbox_calls, redis_url, lms_env):
    left = client.post("/hooks/hr", **hr_post({"event": "employee.left", "id": "l1", "employee": {"email": "ghost@example.com"}})).get_json()
    work()

    shown = json.loads(bridge(redis_url, lms_env, "show", left["delivery_id"], "--json").output)
    assert shown["status"] == "skipped"
    assert "ghost@example.com" in shown["timeline"][-1]["skipped"][0]
    assert sandbox_calls() == [] and not any(u["email"] == "ghost@example.com" for u in state(sandbox)["coursetoolkit"]["users"])
    listed = json.loads(bridge(redis_url, lms_env, "deliveries", "--status", "skipped", "--json").output)
    assert [item["id"] for item in listed] == [left["delivery_id"]]


REHIRE_RULES = """
sources:
  hr:
    type: generic
    auth: token
    header: X-Bridge-Token
    secret: ${HR_WEBHOOK_TOKEN}
    event: body.event
    id: body.id
rules:
  - name: hire
    source: hr
    event: employee.hired
    actions:
      - {connection: coursebox, action: create_user, as: learner, with: {email: "{{ body.employee.email }}"}}
      - {connection: coursebox, action: enroll, with: {course_id: 42, user_id: "{{ steps.learner.id }}"}}
  - name: leave
    source: hr
    event: employee.left
    actions:
      - {connection: coursebox, action: remove_user, with: {email: "{{ body.employee.email }}", mode: deactivate}}
"""


def test_hire_leave_hire_ends_active_and_enrolled(tmp_path, settings_overrides, lms_env, redis_conn, sandbox, sandbox_calls):
    from rq import Queue, SimpleWorker

    from bridge import create_app, jobs

    rules = write_rules(tmp_path / "rules", {"hr.yaml": REHIRE_RULES})
    app = create_app({**settings_overrides, "rules_dir": rules}, env=lms_env)
    jobs.configure(app.extensions["bridge"].settings, env=lms_env)
    client = app.test_client()
    person = {"email": "rehired@example.com"}
    try:
        for number, event in enumerate(["employee.hired", "employee.left", "employee.hired"]):
            client.post("/hooks/hr", **hr_post({"event": event, "id": f"r{number}", "employee": person}))
            SimpleWorker([Queue("bridge", connection=redis_conn)], connection=redis_conn).work(burst=True)
    finally:
        jobs._context = None
    [user] = [u for u in state(sandbox)["coursebox"]["users"] if u["email"] == "rehired@example.com"]
    assert user["isInActive"] is False and state(sandbox)["coursebox"]["enrollments"]["42"] == [user["id"]]
    updates = [call["body"]["attributes"] for call in sandbox_calls() if call["path"].endswith("updateMainAttributes")]
    assert updates == [{"isInActive": True}, {"isInActive": False}]
    assert len([call for call in sandbox_calls() if call["path"].endswith("createAccount")]) == 1
