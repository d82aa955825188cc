"""Workers as a PaaS treats them: SIGTERM to restart, SIGKILL when they hang."""

import os
import signal
import time

import requests

from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from bridge.worker import JOB_MONITORING_INTERVAL, MAINTENANCE_INTERVAL
from bridge.worker.threaded import ThreadedWorker
from tests.processes import PYTHON, child_env, kill_tree, start, stop, wait_for
from tests.rule_files import EXAMPLE_RULES
from tests.signing import woo_post
from tests.test_pipeline import ORDER, fault, job_of, state


def worker_env(redis_url, lms_env):
    return child_env(REDIS_URL=redis_url, RULES_DIR=EXAMPLE_RULES, BRIDGE_RETRY_INTERVALS="0,0,0", **lms_env)


def spin(seconds: float) -> str:
    """A job that keeps running Python code for a while (a timeout lands between two of its steps)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.01)
    return "done"


def test_a_job_in_a_thread_past_its_timeout_fails_with_rqs_timeout_and_the_others_finish(app, redis_conn):
    queue = Queue("timeouts", connection=redis_conn)
    slow, quick = queue.enqueue(spin, 60, job_timeout=1), queue.enqueue(spin, 0.1, job_timeout=5)
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        ThreadedWorker([queue], connection=redis_conn, concurrency=2).work(burst=True, with_scheduler=False,
                                                                            logging_level="WARNING")
    finally:
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
    assert quick.get_status() == JobStatus.FINISHED and quick.return_value() == "done"
    assert slow.get_status() == JobStatus.FAILED
    assert "JobTimeoutException: Task exceeded maximum timeout value (1 seconds)" in slow.latest_result().exc_string


def test_abandoned_jobs_are_found_within_about_two_minutes():
    assert JOB_MONITORING_INTERVAL + 60 + MAINTENANCE_INTERVAL <= 150


def test_sigterm_finishes_the_job_in_hand_then_exits(client, sandbox, redis_conn, redis_url, lms_env):
    fault(sandbox, latency=1.0)
    reply = client.post("/hooks/shop", **woo_post(ORDER)).get_json()
    worker = start([PYTHON, "-m", "bridge", "worker"], worker_env(redis_url, lms_env))
    try:
        wait_for(lambda: job_of(redis_conn, reply).get_status() == JobStatus.STARTED, what="the job to start")
        os.kill(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
    finally:
        output = stop(worker)
    assert worker.returncode == 0, output
    assert job_of(redis_conn, reply).get_status() == JobStatus.FINISHED, output
    assert len(state(sandbox)["coursebox"]["enrollments"]["42"]) == 1


def test_a_worker_killed_mid_job_leaves_the_action_performed_exactly_once(client, sandbox, sandbox_calls, redis_conn, redis_url, lms_env):
    fault(sandbox, latency=1.5)
    reply = client.post("/hooks/shop", **woo_post(ORDER)).get_json()
    worker = start([PYTHON, "-m", "bridge", "worker"], worker_env(redis_url, lms_env))
    try:
        # Kill it (parent and work horse) after the account step is checkpointed, during the enrollment.
        wait_for(lambda: "0" in Job.fetch(reply["jobs"][0], connection=redis_conn).meta.get("steps", {}), what="the first step")
    finally:
        kill_tree(worker)
    assert job_of(redis_conn, reply).get_status() == JobStatus.STARTED
    requests.delete(f"{sandbox}/sandbox/faults", timeout=5).raise_for_status()
    # A surviving worker's maintenance finds the job once its heartbeat lapses; here the clock is moved on instead of waiting.
    StartedJobRegistry("bridge", connection=redis_conn).cleanup(timestamp=time.time() + 3600)
    assert job_of(redis_conn, reply).get_status() == JobStatus.QUEUED
    again = start([PYTHON, "-m", "bridge", "worker", "--burst"], worker_env(redis_url, lms_env))
    again.wait(timeout=60)
    output = stop(again)
    assert job_of(redis_conn, reply).get_status() == JobStatus.FINISHED, output
    created = [call for call in sandbox_calls() if call["path"].endswith("/createAccount")]
    assert len(created) == 1
    assert state(sandbox)["coursebox"]["enrollments"]["42"] == [int(Job.fetch(reply["jobs"][0], connection=redis_conn).meta["steps"]["0"]["id"])]
    assert Queue("bridge", connection=redis_conn).count == 0
