"""GET /metrics: Prometheus text, counted in Redis so every process adds to the same numbers."""

from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families
from rq import Queue
from rq.job import Job
from rq.registry import ReadyJobRegistry

from tests.signing import hr_post, woo_post
from tests.test_pipeline import ORDER, fault


def samples(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.get_data(as_text=True)) for sample in family.samples}


def test_deliveries_jobs_retries_and_lms_latency_are_counted(client, work, sandbox):
    client.post("/hooks/shop", **woo_post(ORDER))
    client.post("/hooks/shop", **woo_post(ORDER))  # a duplicate
    client.post("/hooks/shop", **woo_post({**ORDER, "id": 2, "status": "processing"}))
    bad = woo_post(ORDER)
    bad["headers"]["X-WC-Webhook-Signature"] = "forged"
    client.post("/hooks/shop", **bad)
    fault(sandbox, status=503, count=1, path="/coursebox/api/")
    before = samples(client)
    assert before[("bridge_queue_depth", ())] == 1
    assert before[("bridge_queue_oldest_job_age_seconds", ())] >= 0
    work()
    found = samples(client)
    assert found[("bridge_deliveries_total", (("outcome", "queued"), ("source", "shop")))] == 1
    assert found[("bridge_deliveries_total", (("outcome", "duplicate"), ("source", "shop")))] == 1
    assert found[("bridge_deliveries_total", (("outcome", "unmatched"), ("source", "shop")))] == 1
    assert found[("bridge_deliveries_total", (("outcome", "unauthorized"), ("source", "shop")))] == 1
    assert found[("bridge_signature_failures_total", (("source", "shop"),))] == 1
    assert found[("bridge_duplicates_total", (("source", "shop"),))] == 1
    assert found[("bridge_rule_matches_total", (("rule", "enroll-buyer-on-completed-order"),))] == 1
    rule = ("rule", "enroll-buyer-on-completed-order")
    assert found[("bridge_jobs_total", (("outcome", "retried"), rule))] == 1
    assert found[("bridge_jobs_total", (("outcome", "succeeded"), rule))] == 1
    assert found[("bridge_retries_total", (rule,))] == 1
    assert found[("bridge_queue_depth", ())] == 0
    calls = found[("bridge_lms_call_seconds_count", (("connection", "coursebox"), ("operation", "enroll")))]
    assert calls == 1
    assert found[("bridge_lms_call_seconds_bucket", (("connection", "coursebox"), ("le", "+Inf"), ("operation", "enroll")))] == 1


def test_latency_buckets_are_cumulative_when_read(client, redis_conn):
    from bridge import metrics

    with redis_conn.pipeline() as pipe:
        for seconds in (0.01, 0.05, 0.3, 0.3, 7.0, 99.0):
            metrics.observe(pipe, "bridge_lms_call_seconds", seconds, connection="c", operation="enroll")
        pipe.execute()
    found = samples(client)
    labels = (("connection", "c"),)

    def bucket(le):
        return found[("bridge_lms_call_seconds_bucket", (*labels, ("le", le), ("operation", "enroll")))]

    assert [bucket(le) for le in ("0.05", "0.1", "0.25", "0.5", "5.0", "10.0", "30.0", "+Inf")] == [2, 2, 2, 4, 4, 5, 5, 6]
    assert found[("bridge_lms_call_seconds_count", (*labels, ("operation", "enroll")))] == 6
    assert abs(found[("bridge_lms_call_seconds_sum", (*labels, ("operation", "enroll")))] - 106.66) < 1e-9


def test_failed_jobs_are_a_gauge(client, work, sandbox):
    fault(sandbox, status=400, count=1, path="coursetoolkit")
    client.post("/hooks/hr", **hr_post({"event": "employee.hired", "id": "m1", "employee": {"email": "m@example.com"}}))
    work()
    found = samples(client)
    assert found[("bridge_failed_jobs", ())] == 1
    assert found[("bridge_jobs_total", (("outcome", "failed"), ("rule", "create-account-on-hire")))] == 1


def test_jobs_in_every_state_are_counted(client, redis_conn):
    hired = client.post("/hooks/hr", **hr_post({"event": "employee.hired", "id": "s1", "employee": {"email": "s@example.com"}})).get_json()
    client.post("/hooks/hr", **hr_post({"event": "employee.left", "id": "s2", "employee": {"email": "s@example.com"}}))
    queue = Queue("bridge", connection=redis_conn)
    queue.enqueue_in(timedelta(hours=1), "bridge.jobs.run_rule", {})
    hire_job = Job.fetch(hired["jobs"][0], connection=redis_conn)
    queue.remove(hire_job)
    ReadyJobRegistry("bridge", connection=redis_conn).add(hire_job)
    found = samples(client)
    counts = {state: found[("bridge_queue_jobs", (("state", state),))]
              for state in ("queued", "started", "deferred", "scheduled", "ready", "failed")}
    assert counts == {"queued": 0, "started": 0, "deferred": 1, "scheduled": 1, "ready": 1, "failed": 0}
    assert found[("bridge_queue_overdue_seconds", (("state", "scheduled"),))] == 0
