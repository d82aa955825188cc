"""The acceptance script writes RQ jobs that RQ reads as its own: the same keys and fields RQ writes itself."""

import os
import re
import subprocess
import zlib

import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import DeferredJobRegistry

from bridge import deliveries
from tests.processes import PYTHON, child_env
from tests.signing import hr_post

RQ = os.path.join(os.path.dirname(PYTHON), "rq")


def rq_state(connection, job_ids: list[str]) -> dict:
    """Everything RQ keeps about some jobs: their hashes, expiries, dependency sets, the queue and registries."""
    state = {"queues": sorted(connection.smembers("rq:queues")), "queue": connection.lrange("rq:queue:bridge", 0, -1),
             "deferred": [member for member, _ in connection.zrange("rq:deferred:bridge", 0, -1, withscores=True)]}
    for job_id in job_ids:
        fields = connection.hgetall(f"rq:job:{job_id}")
        if b"data" in fields:  # RQ compresses the call; the bridge only a large one, and RQ reads both
            fields[b"data"] = uncompressed(fields[b"data"])
        if b"enqueued_at" in fields:
            fields[b"enqueued_at"] = b"(a time of its own)"
        state[job_id] = {
            "fields": fields,
            "dependents": sorted(connection.smembers(f"rq:job:{job_id}:dependents")),
            "dependencies": sorted(connection.smembers(f"rq:job::{job_id}:dependencies")),
            "expires": [connection.ttl(key) > 0 for key in (f"rq:job:{job_id}", f"rq:job:{job_id}:dependents",
                                                             f"rq:job::{job_id}:dependencies")],
        }
    return state


def uncompressed(data: bytes) -> bytes:
    """Return a job's call as RQ's Job.restore reads it."""
    try:
        return zlib.decompress(data)
    except zlib.error:
        return data


def forget_rq_keys(connection) -> None:
    for key in connection.scan_iter("rq:*"):
        connection.delete(key)


def test_jobs_written_by_the_script_are_what_rq_itself_writes(client, redis_conn):
    hired = client.post("/hooks/hr", **hr_post({"event": "employee.hired", "id": "q1", "employee": {"email": "sam@example.com"}}))
    left = client.post("/hooks/hr", **hr_post({"event": "employee.left", "id": "q2", "employee": {"email": "Sam@Example.com"}}))
    [first], [second] = hired.get_json()["jobs"], left.get_json()["jobs"]
    written = rq_state(redis_conn, [first, second])
    assert written["queue"] == [first.encode()] and written["deferred"] == [second.encode()]
    assert written[first]["dependents"] == [second.encode()] and written[second]["dependencies"] == [first.encode()]

    # RQ fetches both, then enqueues them again itself, into an emptied Redis: the same state comes out.
    jobs = [Job.fetch(job_id, connection=redis_conn) for job_id in (first, second)]
    assert [job.get_status() for job in jobs] == [JobStatus.QUEUED, JobStatus.DEFERRED]
    assert jobs[1].dependency_ids == [first] and jobs[1].allow_dependency_failures
    for job in jobs:  # the call and meta are serialized as RQ serializes those of a job it creates
        own = Job.create(job.func_name, args=job.args, kwargs=job.kwargs, meta=job.meta, connection=redis_conn)
        assert written[job.id]["fields"][b"data"] == own.data
        assert written[job.id]["fields"][b"meta"] == own.serializer.dumps(own.meta)
    forget_rq_keys(redis_conn)
    queue = Queue("bridge", connection=redis_conn)
    for job in jobs:
        job._status = None
        queue.enqueue_job(job)
    assert rq_state(redis_conn, [first, second]) == written
    deferred = DeferredJobRegistry("bridge", connection=redis_conn)
    assert deferred.get_job_ids() == [second]


def test_rq_tools_and_a_stock_worker_take_the_jobs(client, redis_conn, redis_url, settings_overrides, lms_env, sandbox_calls):
    hired = client.post("/hooks/hr", **hr_post({"event": "employee.hired", "id": "w1", "employee": {"email": "ria@example.com"}}))
    left = client.post("/hooks/hr", **hr_post({"event": "employee.left", "id": "w2", "employee": {"email": "ria@example.com"}}))
    info = subprocess.run([RQ, "info", "--url", redis_url, "bridge"], capture_output=True, text=True, timeout=60)
    assert info.returncode == 0, info.stderr
    assert re.search(r"^bridge +\|\S* 1, 0 executing", info.stdout, re.MULTILINE), info.stdout  # the deferred one waits
    env = child_env(REDIS_URL=redis_url, RULES_DIR=str(settings_overrides["rules_dir"]), BRIDGE_RETRY_INTERVALS="0,0,0", **lms_env)
    worker = subprocess.run([RQ, "worker", "--burst", "--url", redis_url, "bridge"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert worker.returncode == 0, worker.stdout + worker.stderr
    for reply in (hired, left):
        [job_id] = reply.get_json()["jobs"]
        assert Job.fetch(job_id, connection=redis_conn).get_status() == JobStatus.FINISHED
    actions = [(call["body"]["api-action"], call["body"].get("email") or call["body"].get("userid"))
               for call in sandbox_calls() if "coursetoolkit" in call["path"]]
    assert actions.index(("createuser", "ria@example.com")) < [action for action, _ in actions].index("removeuser")


@pytest.mark.parametrize("run", ["once", "again", "again, its dedupe key gone"])
def test_an_acceptance_run_twice_is_stored_once(app, redis_conn, run):
    """redis-py sends a command again after a lost reply: the second run must neither duplicate nor double the jobs."""
    # Its record tells, not its dedupe key: a short window or eviction may have removed that one first.
    from bridge.engine import decide_all

    runtime = app.extensions["bridge"]
    ruleset = runtime.rules.get()
    event = {"source": "hr", "event": "employee.hired", "delivery_id": deliveries.new_delivery_id(), "sender_id": "twice",
             "received_at": 0.0, "headers": {}, "query": {}, "body": {"employee": {"email": "twice@example.com"}}}
    batch = [(event, decide_all(ruleset, event))]
    [outcome] = deliveries.accept(redis_conn, runtime.settings, batch, b"{}", ruleset)
    if run.endswith("gone"):
        redis_conn.delete(deliveries.seen_key(event, b"{}", 0))
    again = deliveries.accept(redis_conn, runtime.settings, batch, b"{}", ruleset) if run != "once" else [outcome]
    assert again[0].duplicate_of is None and again[0].jobs == outcome.jobs
    assert redis_conn.lrange("rq:queue:bridge", 0, -1) == [job.encode() for job in outcome.jobs]
    assert len(redis_conn.lrange(deliveries.TIMELINE_KEY.format(outcome.delivery_id), 0, -1)) == 2


def test_a_full_redis_refuses_the_whole_delivery(client, redis_conn):
    """Out of memory, the script fails at its first write: a 503, and nothing of the delivery is left behind."""
    order = {"event": "employee.hired", "id": "oom-1", "employee": {"email": "oom@example.com"}}
    before = set(redis_conn.scan_iter("*"))
    try:
        policy = redis_conn.config_get("maxmemory-policy")["maxmemory-policy"]
    except redis.ResponseError:
        pytest.skip("this Redis does not allow CONFIG (a hosted one)")
    redis_conn.config_set("maxmemory-policy", "noeviction")
    redis_conn.config_set("maxmemory", 1)  # every write is refused, reads still answer
    try:
        refused = client.post("/hooks/hr", **hr_post(order))
    finally:
        redis_conn.config_set("maxmemory", 0)
        redis_conn.config_set("maxmemory-policy", policy)
    assert refused.status_code == 503 and refused.headers["Retry-After"]
    assert set(redis_conn.scan_iter("*")) == before
    accepted = client.post("/hooks/hr", **hr_post(order))
    assert accepted.status_code == 202 and len(accepted.get_json()["jobs"]) == 1


def test_a_redis_that_forgot_the_script_is_given_it_again(client, redis_conn):
    """After a restart or SCRIPT FLUSH Redis answers NOSCRIPT to the script's SHA; the script is loaded again."""
    first = client.post("/hooks/hr", **hr_post({"event": "employee.hired", "id": "ns-1", "employee": {"email": "ns1@example.com"}}))
    redis_conn.script_flush()
    second = client.post("/hooks/hr", **hr_post({"event": "employee.hired", "id": "ns-2", "employee": {"email": "ns2@example.com"}}))
    assert (first.status_code, second.status_code) == (202, 202)
    assert redis_conn.llen("rq:queue:bridge") == 2
