"""End to end in one process: webhook in, rule, RQ job run by a real worker, real HTTP to the sandbox."""

import requests
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry

from bridge.deliveries import load_record

from tests.rule_files import wait_reloaded, write_rules
from tests.signing import hr_post, woo_post

ORDER = {"id": 1001, "status": "completed", "line_items": [{"sku": "COURSE-42", "quantity": 1}], "billing": {"email": "Jane@Example.com", "first_name": "Jane", "last_name": "Doe"}}


def lms_calls(calls, lms: str) -> list[tuple[str, str]]:
    return [(call["method"], call["path"]) for call in calls() if f"/sandbox/{lms}" in call["path"]]


def state(sandbox) -> dict:
    return requests.get(f"{sandbox}/sandbox/state", timeout=5).json()


def fault(sandbox, **spec) -> None:
    requests.post(f"{sandbox}/sandbox/faults", json=spec, timeout=5).raise_for_status()


def job_of(redis_conn, reply) -> Job:
    return Job.fetch(reply["jobs"][0], connection=redis_conn)


def test_completed_order_creates_and_enrolls_the_buyer(client, work, sandbox, sandbox_calls, redis_conn):
    reply = client.post("/hooks/shop", **woo_post(ORDER)).get_json()
    work()
    job = job_of(redis_conn, reply)
    assert job.get_status() == JobStatus.FINISHED
    assert lms_calls(sandbox_calls, "coursebox") == [
        ("POST", "/sandbox/coursebox/auth/login"),
        ("POST", "/sandbox/coursebox/api/wineusers/createAccount"),
        ("POST", "/sandbox/coursebox/api/Courses/42/enrolUser"),
    ]
    created = [call for call in sandbox_calls() if call["path"].endswith("createAccount")][0]
    assert created["body"]["data"]["user"]["email"] == "jane@example.com"
    learner = job.return_value()["steps"]["learner"]
    enrolled = [call for call in sandbox_calls() if call["path"].endswith("enrolUser")][0]
    assert str(enrolled["body"]["userId"]) == str(learner["id"])


def test_second_purchase_by_the_same_buyer_makes_no_second_account(client, work, sandbox_calls):
    client.post("/hooks/shop", **woo_post(ORDER))
    client.post("/hooks/shop", **woo_post({**ORDER, "id": 1002}))
    work()
    paths = [path for _, path in lms_calls(sandbox_calls, "coursebox")]
    assert paths.count("/sandbox/coursebox/api/wineusers/createAccount") == 1
    assert paths.count("/sandbox/coursebox/auth/login") == 1  # the token is shared through Redis
    assert paths.count("/sandbox/coursebox/api/Courses/42/enrolUser") == 2


def test_hire_creates_and_leave_removes_the_course_toolkit_user(client, work, sandbox, sandbox_calls, redis_conn):
    employee = {"email": "Sam@Example.com", "first_name": "Sam", "last_name": "Lee"}
    hired = client.post("/hooks/hr", **hr_post({"event": "employee.hired", "id": "h1", "employee": employee})).get_json()
    assert hired["matched"] == ["create-account-on-hire"]
    work()
    users = state(sandbox)["coursetoolkit"]["users"]
    assert any(user["email"] == "sam@example.com" for user in users)
    left = client.post("/hooks/hr", **hr_post({"event": "employee.left", "id": "h2", "employee": {"email": "sam@example.com"}})).get_json()
    assert left["matched"] == ["remove-account-on-leave"]
    work()
    assert job_of(redis_conn, left).get_status() == JobStatus.FINISHED
    assert not any(user["email"] == "sam@example.com" for user in state(sandbox)["coursetoolkit"]["users"])
    actions = [call["body"]["api-action"] for call in sandbox_calls() if "coursetoolkit" in call["path"]]
    assert actions == ["createuser", "getuser", "removeuser"]


def test_transient_failures_are_retried_until_the_action_is_done_once(client, work, sandbox, sandbox_calls, redis_conn):
    fault(sandbox, status=500, count=3, path="enrolUser")
    reply = client.post("/hooks/shop", **woo_post(ORDER)).get_json()
    work()
    job = job_of(redis_conn, reply)
    assert job.get_status() == JobStatus.FINISHED
    assert job.retries_left == 0  # all three retries were used
    timeline = [step["status"] for step in load_record(redis_conn, reply["delivery_id"])["timeline"]]
    assert timeline == ["received", "queued"] + ["running", "retrying"] * 3 + ["running", "succeeded"]
    paths = [path for _, path in lms_calls(sandbox_calls, "coursebox")]
    # The account was created once: a retry resumes after the steps that already succeeded.
    assert paths.count("/sandbox/coursebox/api/wineusers/createAccount") == 1
    assert paths.count("/sandbox/coursebox/api/Courses/42/enrolUser") == 4
    assert len(state(sandbox)["coursebox"]["enrollments"]["42"]) == 1


def test_a_try_stopped_between_steps_saves_its_checkpoint_without_its_retry_flags(client, work, redis_conn, monkeypatch):
    from bridge import jobs
    from bridge.ledger import Ledger

    saved, flush, checkpoint = [], Ledger.flush, Ledger.checkpoint

    def stop_after_the_first_step(ledger):
        checkpoint(ledger)
        if not saved:
            jobs.context().stopping.set()  # a SIGTERM between the two steps

    def watched(ledger, *writes):
        if ledger.unsaved:
            saved.append(dict(ledger.job.meta))
            jobs.context().stopping.clear()
        flush(ledger, *writes)

    monkeypatch.setattr(Ledger, "checkpoint", stop_after_the_first_step)
    monkeypatch.setattr(Ledger, "flush", watched)
    reply = client.post("/hooks/shop", **woo_post(ORDER)).get_json()
    work()
    # The account step's checkpoint went out before the try's own flags entered the meta: a crash right
    # then must not leave "stopped" stored for a later try to misreport.
    assert "0" in saved[0]["steps"] and all("stopped" not in meta and "failed_attempt" not in meta for meta in saved)
    assert job_of(redis_conn, reply).get_status() == JobStatus.FINISHED


def test_retries_run_out_into_the_failed_registry(client, work, sandbox, redis_conn):
    fault(sandbox, status=503, count=10, path="enrolUser")
    reply = client.post("/hooks/shop", **woo_post(ORDER)).get_json()
    work()
    job = job_of(redis_conn, reply)
    assert job.get_status() == JobStatus.FAILED
    assert job.id in FailedJobRegistry("bridge", connection=redis_conn)
    assert "503" in job.latest_result().exc_string


def test_lms_rejection_fails_at_once_with_the_lms_reason(client, work, sandbox, redis_conn, lms_env, app):
    lms_env["COURSETOOLKIT_API_KEY"] = "wrong-key"
    reply = client.post("/hooks/hr", **hr_post({"event": "employee.hired", "id": "h1", "employee": {"email": "a@b.test"}})).get_json()
    work()
    job = job_of(redis_conn, reply)
    assert job.get_status() == JobStatus.FAILED
    assert job.retries_left == 0
    assert [step["status"] for step in load_record(redis_conn, reply["delivery_id"])["timeline"]][-2:] == ["running", "failed"]
    reason = job.latest_result().exc_string
    assert "coursetoolkit" in reason and "create_user" in reason
    assert "wrong-key" not in reason


def test_missing_field_fails_the_job_naming_rule_field_and_delivery(tmp_path, settings_overrides, lms_env, redis_conn, sandbox, sandbox_calls):
    from bridge import create_app, jobs
    from rq import SimpleWorker

    write_rules(tmp_path / "rules", {"shop.yaml": """
        sources:
          shop:
            type: woocommerce
            secret: ${WOOCOMMERCE_SECRET}
        rules:
          - name: enroll-by-email
            source: shop
            actions:
              - connection: coursebox
                action: invite
                with:
                  course_id: 42
                  email: "{{ body.customer.email }}"
    """})
    overrides = {**settings_overrides, "rules_dir": tmp_path / "rules"}
    app = create_app(overrides, env=lms_env)
    jobs.configure(app.extensions["bridge"].settings, env=lms_env)
    try:
        reply = app.test_client().post("/hooks/shop", **woo_post({"billing": {"email": "x@y.test"}})).get_json()
        SimpleWorker([Queue("bridge", connection=redis_conn)], connection=redis_conn).work(burst=True)
    finally:
        jobs._context = None
    job = job_of(redis_conn, reply)
    assert job.get_status() == JobStatus.FAILED and job.retries_left == 0
    reason = job.latest_result().exc_string
    assert "rule 'enroll-by-email'" in reason and "field email" in reason and reply["delivery_id"] in reason
    assert lms_calls(sandbox_calls, "coursebox") == []


def test_empty_email_never_reaches_the_lms(client, work, redis_conn, sandbox_calls):
    order = {**ORDER, "billing": {"email": ""}}
    reply = client.post("/hooks/shop", **woo_post(order)).get_json()
    work()
    job = job_of(redis_conn, reply)
    assert job.get_status() == JobStatus.FAILED
    assert "'email'" in job.latest_result().exc_string
    assert not any(path.endswith("createAccount") for _, path in lms_calls(sandbox_calls, "coursebox"))


def test_rules_reload_without_restart_and_a_broken_edit_keeps_the_last_good_set(tmp_path, settings_overrides, lms_env, redis_conn, caplog):
    import shutil

    from bridge import create_app, jobs
    from tests.rule_files import EXAMPLE_RULES

    rules = tmp_path / "rules"
    shutil.copytree(EXAMPLE_RULES, rules)
    app = create_app({**settings_overrides, "rules_dir": rules}, env=lms_env)
    context = jobs.configure(app.extensions["bridge"].settings, env=lms_env)
    client = app.test_client()
    try:
        first = client.post("/hooks/shop", **woo_post({**ORDER, "id": 1, "status": "processing"})).get_json()
        assert first["matched"] == []
        version = context.rules.get().version
        shop = rules / "shop.yaml"
        shop.write_text(shop.read_text().replace("equals: completed", "in: [completed, processing]"))
        wait_reloaded(app.extensions["bridge"].rules, context.rules)
        second = client.post("/hooks/shop", **woo_post({**ORDER, "id": 2, "status": "processing"})).get_json()
        assert second["matched"] == ["enroll-buyer-on-completed-order"]
        assert context.rules.get().version != version  # the worker side sees the edit too
        shop.write_text("rules: [\n")
        wait_reloaded(app.extensions["bridge"].rules)
        third = client.post("/hooks/shop", **woo_post({**ORDER, "id": 3, "status": "processing"}))
        assert third.status_code == 202 and third.get_json()["matched"] == ["enroll-buyer-on-completed-order"]
        assert "rule files have errors (keeping rules version" in caplog.text
        assert Job.fetch(third.get_json()["jobs"][0], connection=redis_conn).meta["rules_version"] == context.rules.get().version
    finally:
        jobs._context = None


def test_deliveries_about_one_person_run_in_arrival_order(client, work, sandbox, sandbox_calls, redis_conn):
    hired = client.post("/hooks/hr", **hr_post({"event": "employee.hired", "id": "o1", "employee": {"email": "Pat@Example.com"}})).get_json()
    left = client.post("/hooks/hr", **hr_post({"event": "employee.left", "id": "o2", "employee": {"email": "pat@example.com"}})).get_json()
    other = client.post("/hooks/hr", **hr_post({"event": "employee.hired", "id": "o3", "employee": {"email": "kim@example.com"}})).get_json()
    leave_job = job_of(redis_conn, left)
    assert leave_job.get_status() == JobStatus.DEFERRED
    assert leave_job.dependency_ids == hired["jobs"]
    assert job_of(redis_conn, other).get_status() == JobStatus.QUEUED
    work()
    assert leave_job.get_status(refresh=True) == JobStatus.FINISHED
    actions = [(call["body"]["api-action"], call["body"].get("email") or call["body"].get("userid"))
               for call in sandbox_calls() if "coursetoolkit" in call["path"]]
    assert actions.index(("createuser", "pat@example.com")) < [a for a, _ in actions].index("removeuser")
    assert not any(user["email"] == "pat@example.com" for user in state(sandbox)["coursetoolkit"]["users"])


def test_a_failed_delivery_does_not_block_the_next_one_about_that_person(client, work, sandbox, redis_conn):
    fault(sandbox, status=400, count=1, path="coursetoolkit")
    hired = client.post("/hooks/hr", **hr_post({"event": "employee.hired", "id": "f1", "employee": {"email": "lee@example.com"}})).get_json()
    left = client.post("/hooks/hr", **hr_post({"event": "employee.left", "id": "f2", "employee": {"email": "lee@example.com"}})).get_json()
    work()
    assert job_of(redis_conn, hired).get_status() == JobStatus.FAILED
    assert job_of(redis_conn, left).get_status() == JobStatus.FINISHED


def test_no_retry_once_the_delivery_is_older_than_max_age(client, work, sandbox, redis_conn, app):
    fault(sandbox, status=503, count=5, path="coursetoolkit")
    reply = client.post("/hooks/hr", **hr_post({"event": "employee.hired", "id": "m1", "employee": {"email": "old@example.com"}})).get_json()
    job = job_of(redis_conn, reply)
    payload = job.args[0]
    payload["retry"]["max_age"] = 60
    payload["event"]["received_at"] -= 3600
    job.args = (payload,)
    job.save()
    work()
    job.refresh()
    assert job.get_status() == JobStatus.FAILED and job.retries_left == 0


def test_an_lms_that_fails_and_throttles_for_a_while_gets_everything_done(client, work, sandbox, sandbox_calls, redis_conn):
    # Calls fail, not logins: a login that fails holds the connection instead (test_lms_outage.py).
    fault(sandbox, status=500, count=6, path="/coursebox/api/")
    replies = [client.post("/hooks/shop", **woo_post({**ORDER, "id": 2000 + n, "billing": {"email": f"b{n}@example.com"}})).get_json()
               for n in range(5)]
    fault(sandbox, status=429, count=4, path="/coursebox/api/")
    work()
    assert [job_of(redis_conn, reply).get_status() for reply in replies] == [JobStatus.FINISHED] * 5
    assert sorted(state(sandbox)["coursebox"]["enrollments"]["42"]) == sorted(
        int(Job.fetch(reply["jobs"][0], connection=redis_conn).meta["steps"]["0"]["id"]) for reply in replies)
