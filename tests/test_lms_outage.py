"""LMS outages and lost replies with real `bridge worker` processes: logins that fail for a while, replies that never come."""

import subprocess
from datetime import datetime

import pytest
from rq.job import Job, JobStatus

from bridge.deliveries import load_record

from tests.processes import PYTHON, child_env, kill_tree, stop, wait_for
from tests.rule_files import write_rules
from tests.signing import woo_post
from tests.test_metrics import samples
from tests.test_pipeline import ORDER, fault, state

SHOP = """
sources:
  shop:
    type: woocommerce
    secret: ${WOOCOMMERCE_SECRET}
rules:
  - name: enroll-buyer
    source: shop
    event: order.updated
    actions:
      - {connection: box, action: create_user, as: learner, with: {email: "{{ body.billing.email }}"}}
      - {connection: box, action: enroll, with: {course_id: 42, user_id: "{{ steps.learner.id }}"}}
connections:
  box:
    type: coursebox
    url: ${COURSEBOX_URL}
    email: ${COURSEBOX_EMAIL}
    password: ${COURSEBOX_PASSWORD}
    login_backoff: {first: 1, max: 2}
    retry: {attempts: 1, intervals: [0]}   # one retry only: a held job must not use it up
"""


@pytest.fixture
def shop(tmp_path, settings_overrides, lms_env, redis_conn):
    """Return a client of an app on rules whose one connection has a short login backoff and one retry."""
    from bridge import create_app

    rules = write_rules(tmp_path / "rules", {"shop.yaml": SHOP}, connections=False)
    app = create_app({**settings_overrides, "rules_dir": rules}, env=lms_env)
    app.rules_dir = rules
    return app


def workers(count: int, redis_url: str, rules, lms_env, logs, first: int = 0, **values) -> list:
    """Start `bridge worker` processes; their logs go to files, since a pipe nobody reads fills up and blocks them."""
    env = child_env(REDIS_URL=redis_url, RULES_DIR=rules, BRIDGE_LOG_LEVEL="warning", **lms_env, **values)
    started = []
    for number in range(first, first + count):
        with open(logs / f"worker{number}.log", "w") as log:
            started.append(subprocess.Popen([PYTHON, "-m", "bridge", "worker"], env=env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True))
    return started


def stop_all(running: list, logs) -> str:
    """Stop the workers; return the last of what they logged, for a failing assertion to show."""
    for worker in running:
        stop(worker)
    return "\n".join(path.read_text()[-2000:] for path in sorted(logs.glob("worker*.log")))


def finished(redis_conn, replies) -> bool:
    return all(Job.fetch(reply["jobs"][0], connection=redis_conn).get_status() == JobStatus.FINISHED for reply in replies)


def test_while_logins_fail_two_workers_try_once_per_backoff_and_every_job_completes_after(
        shop, tmp_path, redis_conn, redis_url, lms_env, sandbox, sandbox_calls):
    fault(sandbox, status=503, count=4, path="/auth/login")
    client = shop.test_client()
    replies = [client.post("/hooks/shop", **woo_post({**ORDER, "id": 300 + n, "billing": {"email": f"o{n}@example.com"}})).get_json()
               for n in range(8)]
    running = workers(2, redis_url, shop.rules_dir, lms_env, tmp_path)
    try:
        wait_for(lambda: finished(redis_conn, replies), timeout=120, what="every job to finish once logins work again")
    finally:
        output = stop_all(running, tmp_path)
    logins = [call for call in sandbox_calls() if call["path"].endswith("/auth/login")]
    # Four failed logins, then one that worked and whose token every job of both workers shared.
    assert [call["status"] for call in logins] == [503] * 4 + [200], output
    moments = [datetime.fromisoformat(call["time"]).timestamp() for call in logins]
    gaps = [later - earlier for earlier, later in zip(moments, moments[1:])]
    assert all(gap >= wait - 0.05 for gap, wait in zip(gaps, [1, 2, 2, 2])), gaps  # never sooner than the backoff
    assert len(state(sandbox)["coursebox"]["enrollments"]["42"]) == 8
    found = samples(client)
    assert found[("bridge_jobs_total", (("outcome", "held"), ("rule", "enroll-buyer")))] >= 8
    assert found[("bridge_jobs_total", (("outcome", "succeeded"), ("rule", "enroll-buyer")))] == 8
    assert ("bridge_jobs_total", (("outcome", "failed"), ("rule", "enroll-buyer"))) not in found


def test_a_lost_create_account_reply_still_ends_with_the_buyer_enrolled_once(shop, tmp_path, redis_conn, redis_url, lms_env, sandbox, sandbox_calls):
    fault(sandbox, drop="after", path="createAccount")
    reply = shop.test_client().post("/hooks/shop", **woo_post(ORDER)).get_json()
    running = workers(1, redis_url, shop.rules_dir, lms_env, tmp_path)
    try:
        wait_for(lambda: finished(redis_conn, [reply]), timeout=60, what="the job to finish after the lost reply")
    finally:
        output = stop_all(running, tmp_path)
    created = [call for call in sandbox_calls() if call["path"].endswith("/createAccount")]
    assert [(call["dropped"], call["status"]) for call in created] == [(True, None), (False, 422)], output
    [buyer] = [user for user in state(sandbox)["coursebox"]["users"] if user["email"].lower() == "jane@example.com"]
    assert state(sandbox)["coursebox"]["enrollments"]["42"] == [buyer["id"]]
    job = Job.fetch(reply["jobs"][0], connection=redis_conn)
    assert job.return_value()["steps"]["learner"]["found_by"] == "logging in to the account the bridge created"


# Short beats, and LMS timeouts that make a dead worker's lock on the buyer's email lapse in 2 * (2 + 10) + 5 = 29 s.
KILLED = {"BRIDGE_JOB_HEARTBEAT_SECONDS": 2, "BRIDGE_LMS_CONNECT_TIMEOUT": 2, "BRIDGE_LMS_READ_TIMEOUT": 10}


def test_a_worker_killed_while_create_account_is_in_flight_still_enrolls_the_buyer_once(
        shop, tmp_path, redis_conn, redis_url, lms_env, sandbox, sandbox_calls):
    fault(sandbox, hold=5, path="createAccount")  # Coursebox creates the account, then keeps the reply a while
    reply = shop.test_client().post("/hooks/shop", **woo_post(ORDER)).get_json()
    job_id = reply["jobs"][0]
    running = workers(1, redis_url, shop.rules_dir, lms_env, tmp_path, **KILLED)
    try:
        wait_for(lambda: [u for u in state(sandbox)["coursebox"]["users"] if u["email"].lower() == "jane@example.com"],
                 what="Coursebox to create the account")
    finally:
        for worker in running:
            kill_tree(worker)  # the reply is still on its way: nobody will read it
    job = Job.fetch(job_id, connection=redis_conn)
    assert job.get_status() == JobStatus.STARTED and "0" not in job.meta.get("steps", {})
    # Nothing is moved on by hand: a new worker's upkeep finds the job once its heartbeat lapses, and the rerun
    # waits for the dead worker's lock on the buyer's email to lapse.
    running = workers(1, redis_url, shop.rules_dir, lms_env, tmp_path, first=1, **KILLED)
    try:
        wait_for(lambda: Job.fetch(job_id, connection=redis_conn).get_status() in (JobStatus.FINISHED, JobStatus.FAILED),
                 timeout=180, what="the rerun to end")
    finally:
        output = stop_all(running, tmp_path)
    job = Job.fetch(job_id, connection=redis_conn)
    timeline = [(entry["status"], entry.get("reason", "")) for entry in load_record(redis_conn, reply["delivery_id"])["timeline"]]
    calls = [(call["path"].rsplit("/", 1)[-1], call["status"]) for call in sandbox_calls()]
    assert job.get_status() == JobStatus.FINISHED, f"meta {job.meta}, timeline {timeline}, LMS calls {calls}, workers said: {output}"
    # Resumed, not retried: the dead worker used up none of the job's one retry.
    assert [status for status, _ in timeline] == ["received", "queued", "running", "queued", "running", "succeeded"], timeline
    assert "worker stopped beating" in timeline[3][1] and job.retries_left == 1
    assert [call["status"] for call in sandbox_calls() if call["path"].endswith("/createAccount")] == [200, 422], output
    [buyer] = [user for user in state(sandbox)["coursebox"]["users"] if user["email"].lower() == "jane@example.com"]
    assert state(sandbox)["coursebox"]["enrollments"]["42"] == [buyer["id"]]
