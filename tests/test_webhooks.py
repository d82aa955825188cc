"""The receiver: what senders get back, and what is (and is not) queued."""

import json

import pytest
from rq import Queue

from bridge.deliveries import INDEX_KEY, load_record

ORDER = {"id": 1001, "status": "completed", "billing": {"email": "Jane@Example.com", "first_name": "Jane", "last_name": "Doe"}}
WOO = {"X-WC-Webhook-Topic": "order.updated", "X-WC-Webhook-Delivery-ID": "77"}


def queued(app, redis_conn) -> list[str]:
    return Queue(app.extensions["bridge"].settings.queue_name, connection=redis_conn).get_job_ids()


def test_matching_webhook_is_queued_and_answered_202(client, app, redis_conn):
    response = client.post("/hooks/shop", json=ORDER, headers=WOO)
    assert response.status_code == 202
    reply = response.get_json()
    assert reply["matched"] == ["enroll-buyer-on-completed-order"]
    assert reply["event"] == "order.updated"
    assert reply["jobs"] == [f"{reply['delivery_id']}_0"]
    assert queued(app, redis_conn) == reply["jobs"]
    record = load_record(redis_conn, reply["delivery_id"])
    assert record["status"] == "queued" and record["sender_id"] == "77"
    assert json.loads(record["body"]) == ORDER
    assert redis_conn.zscore(INDEX_KEY, reply["delivery_id"]) is not None


def test_non_matching_webhook_gets_202_with_the_reason(client, app, redis_conn):
    response = client.post("/hooks/shop", json={**ORDER, "status": "processing"}, headers=WOO)
    assert response.status_code == 202
    reply = response.get_json()
    assert reply["matched"] == [] and reply["message"] == "matched no rule"
    assert reply["decisions"][0]["reason"] == "body.status is 'processing', expected 'completed'"
    assert queued(app, redis_conn) == []
    assert load_record(redis_conn, reply["delivery_id"])["status"] == "unmatched"


def test_form_encoded_webhook_with_nested_keys(client, app, redis_conn):
    data = "status=completed&billing[email]=jo%40example.com&billing[first_name]=Jo"
    response = client.post("/hooks/shop", data=data, headers={**WOO, "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 202 and response.get_json()["matched"]
    [job] = Queue("bridge", connection=redis_conn).get_jobs()
    assert job.args[0]["event"]["body"]["billing"]["email"] == "jo@example.com"


def test_unknown_source_is_404(client):
    response = client.post("/hooks/nope", json={})
    assert response.status_code == 404
    assert "no source named 'nope'" in response.get_json()["message"]


@pytest.mark.parametrize(
    ("data", "content_type", "reason"),
    [
        (b"{broken", "application/json", "not valid JSON"),
        (b"plain words", "text/plain", "neither JSON nor form data"),
        (b"<order/>", "application/xml", "unsupported content type"),
    ],
)
def test_undecodable_body_is_400_with_the_reason(client, app, redis_conn, data, content_type, reason):
    response = client.post("/hooks/shop", data=data, headers={**WOO, "Content-Type": content_type})
    assert response.status_code == 400
    assert reason in response.get_json()["message"]
    assert redis_conn.zcard(INDEX_KEY) == 0


def test_body_over_the_limit_is_413(settings_overrides, lms_env, redis_conn):
    from bridge import create_app

    client = create_app({**settings_overrides, "max_body_bytes": 100}, env=lms_env).test_client()
    response = client.post("/hooks/shop", json={"pad": "x" * 200}, headers=WOO)
    assert response.status_code == 413
    assert response.get_json()["error"] == "RequestEntityTooLarge"
    assert redis_conn.zcard(INDEX_KEY) == 0


def test_redis_unreachable_is_503_with_retry_after(settings_overrides, lms_env):
    from bridge import create_app
    from tests.conftest import free_port

    app = create_app({**settings_overrides, "redis_url": f"redis://127.0.0.1:{free_port()}/0"}, env=lms_env)
    response = app.test_client().post("/hooks/shop", json=ORDER, headers=WOO)
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert "nothing was accepted" in response.get_json()["message"]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_senders_can_check_the_url(client, method):
    assert client.open("/hooks/shop", method=method).status_code == 200
    assert client.open("/hooks/nope", method=method).status_code == 404


def test_healthz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_broken_rules_answer_503_so_senders_retry(settings_overrides, lms_env, redis_conn, tmp_path):
    from bridge import create_app

    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "bad.yaml").write_text("rules:\n  - nme: x\n")
    app = create_app({**settings_overrides, "rules_dir": tmp_path / "rules"}, env=lms_env)
    response = app.test_client().post("/hooks/shop", json=ORDER)
    assert response.status_code == 503
    assert any("bad.yaml:2:" in error for error in response.get_json()["errors"])
