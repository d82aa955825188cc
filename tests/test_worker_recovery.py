"""Workers keep their promises at the edges: killed, restarted all at once, Redis gone, idle queues, racing workers.

Every wait here is bounded polling; short heartbeats (a setting) make the waits short, no clock is faked.
"""

import os
import shutil
import signal
import subprocess

import pytest
import redis
import requests
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import ReadyJobRegistry, StartedJobRegistry

from bridge import create_app
from bridge.deliveries import load_record
from bridge.settings import Settings
from bridge.worker import abandoned_within
from tests.conftest import free_port
from tests.processes import PYTHON, child_env, descendants, kill_tree, start, stop, wait_for
from tests.rule_files import EXAMPLE_RULES
from tests.signing import hr_post, woo_post
from tests.test_pipeline import ORDER, fault, job_of, state

MODES = ["threads", "fork"]


def worker_env(redis_url, lms_env, **values):
    return child_env(REDIS_URL=redis_url, RULES_DIR=EXAMPLE_RULES, BRIDGE_RETRY_INTERVALS="0,0,0",
                     BRIDGE_JOB_HEARTBEAT_SECONDS=2, **lms_env, **values)


def status(redis_conn, job_id):
    return Job.fetch(job_id, connection=redis_conn).get_status()


def test_by_default_a_killed_workers_job_is_retried_within_two_minutes():
    assert abandoned_within(Settings()) <= 120


@pytest.mark.parametrize("mode", MODES)
def test_a_killed_workers_job_resumes_on_time_on_an_otherwise_idle_queue(
        client, sandbox, sandbox_calls, redis_conn, redis_url, lms_env, mode):
    fault(sandbox, latency=1.5)
    reply = client.post("/hooks/shop", **woo_post(ORDER)).get_json()
    job_id = reply["jobs"][0]
    first = start([PYTHON, "-m", "bridge", "worker"], worker_env(redis_url, lms_env, BRIDGE_WORKER_MODE=mode))
    try:
        wait_for(lambda: "0" in Job.fetch(job_id, connection=redis_conn).meta.get("steps", {}), what="the first step")
    finally:
        kill_tree(first)
    requests.delete(f"{sandbox}/sandbox/faults", timeout=5).raise_for_status()
    # A second worker with nothing else to do: its upkeep alone must find the abandoned job and run it.
    second = start([PYTHON, "-m", "bridge", "worker"], worker_env(redis_url, lms_env, BRIDGE_WORKER_MODE=mode))
    try:
        wait_for(lambda: status(redis_conn, job_id) == JobStatus.FINISHED, timeout=90, what="the abandoned job to finish")
    finally:
        output = stop(second)
    assert len([call for call in sandbox_calls() if call["path"].endswith("/createAccount")]) == 1, output
    assert len(state(sandbox)["coursebox"]["enrollments"]["42"]) == 1


def test_a_ready_job_left_behind_by_a_race_is_queued_within_seconds(client, redis_conn, redis_url, lms_env, sandbox):
    hired = client.post("/hooks/hr", **hr_post({"event": "employee.hired", "id": "r1", "employee": {"email": "rae@example.com"}})).get_json()
    left = client.post("/hooks/hr", **hr_post({"event": "employee.left", "id": "r2", "employee": {"email": "rae@example.com"}})).get_json()
    queue = Queue("bridge", connection=redis_conn)
    hire_job, leave_job = job_of(redis_conn, hired), job_of(redis_conn, left)
    assert leave_job.get_status() == JobStatus.DEFERRED
    # What a lost "Ready job ... changed while enqueueing" race leaves: the parent done, the dependent moved to
    # ready and never queued. (The hire is taken off the queue so that only the leave is left to recover.)
    queue.remove(hire_job)
    with redis_conn.pipeline() as pipe:
        hire_job.set_status(JobStatus.FINISHED, pipeline=pipe)
        ReadyJobRegistry("bridge", connection=redis_conn).register_jobs([leave_job], pipeline=pipe)
        pipe.execute()
    assert queue.count == 0
    worker = start([PYTHON, "-m", "bridge", "worker"], worker_env(redis_url, lms_env))
    try:
        wait_for(lambda: status(redis_conn, leave_job.id) in (JobStatus.FINISHED, JobStatus.FAILED), timeout=60,
                 what="the stranded leave to run")
    finally:
        output = stop(worker)
    assert ReadyJobRegistry("bridge", connection=redis_conn).count == 0, output


def test_two_racing_workers_leave_no_leave_behind(client, sandbox, redis_conn, redis_url, lms_env):
    replies = []
    for n in range(12):
        employee = {"email": f"p{n}@example.com"}
        replies.append(client.post("/hooks/hr", **hr_post({"event": "employee.hired", "id": f"h{n}", "employee": employee})).get_json())
        replies.append(client.post("/hooks/hr", **hr_post({"event": "employee.left", "id": f"l{n}", "employee": employee})).get_json())
    workers = [start([PYTHON, "-m", "bridge", "worker"], worker_env(redis_url, lms_env, BRIDGE_WORKER_CONCURRENCY=4))
               for _ in range(2)]
    try:
        job_ids = [reply["jobs"][0] for reply in replies]
        wait_for(lambda: all(status(redis_conn, job_id) == JobStatus.FINISHED for job_id in job_ids), timeout=90,
                 what="every hire and leave to finish")
    finally:
        outputs = [stop(worker) for worker in workers]
    emails = {user["email"] for user in state(sandbox)["coursetoolkit"]["users"]}
    assert not any(f"p{n}@example.com" in emails for n in range(12)), outputs


@pytest.mark.parametrize("mode", MODES)
def test_sigterm_to_every_process_at_once_requeues_the_job_after_its_step(
        client, sandbox, sandbox_calls, redis_conn, redis_url, lms_env, mode):
    fault(sandbox, latency=2.0)
    reply = client.post("/hooks/shop", **woo_post(ORDER)).get_json()
    job_id = reply["jobs"][0]
    env = worker_env(redis_url, lms_env, BRIDGE_WORKER_MODE=mode, BRIDGE_SHUTDOWN_GRACE_SECONDS=0.5)
    worker = start([PYTHON, "-m", "bridge", "worker"], env)
    try:
        wait_for(lambda: status(redis_conn, job_id) == JobStatus.STARTED, what="the job to start")
        # What a PaaS does on a restart: SIGTERM to every process of the dyno, work horse and scheduler included.
        for pid in [worker.pid, *descendants(worker.pid)]:
            os.kill(pid, signal.SIGTERM)
        worker.wait(timeout=60)
    finally:
        output = stop(worker)
    assert worker.returncode == 0, output
    assert status(redis_conn, job_id) == JobStatus.QUEUED, output
    assert job_id in Queue("bridge", connection=redis_conn).get_job_ids()
    assert "signal 15" not in output and StartedJobRegistry("bridge", connection=redis_conn).count == 0
    requests.delete(f"{sandbox}/sandbox/faults", timeout=5).raise_for_status()
    again = start([PYTHON, "-m", "bridge", "worker", "--burst"], env)
    again.wait(timeout=60)
    output = stop(again)
    assert status(redis_conn, job_id) == JobStatus.FINISHED, output
    assert len([call for call in sandbox_calls() if call["path"].endswith("/createAccount")]) == 1
    assert len(state(sandbox)["coursebox"]["enrollments"]["42"]) == 1
    timeline = load_record(redis_conn, reply["delivery_id"])["timeline"]
    assert [entry["status"] for entry in timeline] == ["received", "queued", "running", "queued", "running", "succeeded"]
    assert "worker shut down" in timeline[3]["reason"]


@pytest.mark.skipif(not shutil.which("redis-server"), reason="needs a redis-server binary to stop and start")
@pytest.mark.parametrize("mode", MODES)
def test_the_worker_survives_a_redis_restart_and_carries_on(tmp_path, settings_overrides, lms_env, sandbox, mode):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"

    def start_redis():
        process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                    "--appendonly", "yes", "--appendfsync", "always", "--dir", str(tmp_path)],
                                   stdout=subprocess.DEVNULL)
        wait_for(lambda: redis.Redis.from_url(url).ping(), what="redis-server")
        return process

    server = start_redis()
    client = create_app({**settings_overrides, "redis_url": url}, env=lms_env).test_client()
    connection = redis.Redis.from_url(url)
    worker = start([PYTHON, "-m", "bridge", "worker"], worker_env(url, lms_env, BRIDGE_WORKER_MODE=mode))
    try:
        before = client.post("/hooks/shop", **woo_post(ORDER)).get_json()["jobs"][0]
        wait_for(lambda: status(connection, before) == JobStatus.FINISHED, what="the first job")
        server.terminate()
        server.wait()
        wait_for(lambda: any(text in _peek(worker) for text in ("Redis does not answer", "could not connect to Redis")),
                 timeout=30, what="the worker to notice")
        server = start_redis()
        after = client.post("/hooks/shop", **woo_post({**ORDER, "id": 8})).get_json()["jobs"][0]
        wait_for(lambda: status(connection, after) == JobStatus.FINISHED, timeout=90, what="the job queued after the restart")
        assert worker.poll() is None
    finally:
        output = _peek(worker) + stop(worker)
        connection.close()
        server.terminate()
        server.wait()
    assert mode == "fork" or "quitting" not in output, output


def _peek(process) -> str:
    """Return what a process printed so far, without waiting for its end (stop() then reads the rest)."""
    seen = process.__dict__.setdefault("seen", [])
    fd = process.stdout.fileno()
    os.set_blocking(fd, False)
    try:
        while chunk := os.read(fd, 65536):
            seen.append(chunk.decode("utf-8", "replace"))
    except BlockingIOError:
        pass
    finally:
        os.set_blocking(fd, True)
    return "".join(seen)


def test_a_job_whose_worker_dies_every_time_is_failed_visibly_not_resumed_for_ever(client, redis_conn):
    """Each lapsed run is resumed from its checkpoint, up to MAX_RESUMES; the next death fails it with the reason."""
    import time as clock
    import uuid

    from bridge.worker.upkeep import MAX_RESUMES, resume_abandoned

    reply = client.post("/hooks/shop", **woo_post(ORDER)).get_json()
    job = job_of(redis_conn, reply)
    queue = Queue(job.origin, connection=redis_conn)
    registry = StartedJobRegistry(queue.name, connection=redis_conn)

    def die_while_running() -> list:
        queue.remove(job.id)  # as a worker's dequeue does, then it dies mid-job: status STARTED, heartbeat lapsed
        job.set_status(JobStatus.STARTED)
        redis_conn.zadd(registry.key, {f"{job.id}:{uuid.uuid4().hex}": clock.time() - 10})
        return resume_abandoned(queue)

    for death in range(1, MAX_RESUMES + 1):
        assert die_while_running() == [job.id]
        assert status(redis_conn, job.id) == JobStatus.QUEUED and Job.fetch(job.id, connection=redis_conn).meta["resumes"] == death
    assert die_while_running() == []
    assert status(redis_conn, job.id) == JobStatus.FAILED and job.id in queue.failed_job_registry
    record = load_record(redis_conn, reply["delivery_id"])
    assert record["status"] == "failed"
    assert f"its worker died {MAX_RESUMES} times" in record["timeline"][-1]["error"]
