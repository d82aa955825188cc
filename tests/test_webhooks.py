"""The receiver: what senders get back, and what is (and is not) queued."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rq import Queue

from bridge.deliveries import INDEX_KEY, load_record
from tests.signing import hr_post, woo_post

ORDER = {"id": 1001, "status": "completed", "line_items": [{"sku": "COURSE-42", "quantity": 1}], "billing": {"email": "Jane@Example.com", "first_name": "Jane", "last_name": "Doe"}}


def queued(app, redis_conn) -> list[str]:
    return Queue(app.extensions["bridge"].settings.queue_name, connection=redis_conn).get_job_ids()


def test_matching_webhook_is_queued_and_answered_202(client, app, redis_conn):
    response = client.post("/hooks/shop", **woo_post(ORDER, delivery_id="77"))
    assert response.status_code == 202
    reply = response.get_json()
    assert reply["matched"] == ["enroll-buyer-on-completed-order"]
    assert reply["event"] == "order.updated"
    assert reply["jobs"] == [f"{reply['delivery_id']}_0"]
    assert queued(app, redis_conn) == reply["jobs"]
    record = load_record(redis_conn, reply["delivery_id"])
    assert record["status"] == "queued" and record["sender_id"].startswith("77:")
    assert [step["status"] for step in record["timeline"]] == ["received", "queued"]
    assert json.loads(record["body"]) == ORDER
    assert redis_conn.zscore(INDEX_KEY, reply["delivery_id"]) is not None


def test_non_matching_webhook_gets_202_with_the_reason(client, app, redis_conn):
    response = client.post("/hooks/shop", **woo_post({**ORDER, "status": "processing"}))
    assert response.status_code == 202
    reply = response.get_json()
    assert reply["matched"] == [] and reply["message"] == "matched no rule"
    assert reply["decisions"][0]["reason"] == "body.status is 'processing', expected 'completed'"
    assert queued(app, redis_conn) == []
    assert load_record(redis_conn, reply["delivery_id"])["status"] == "unmatched"


def test_form_encoded_webhook_with_nested_keys(client, app, redis_conn):
    post = woo_post(b"status=completed&billing[email]=jo%40example.com&billing[first_name]=Jo&line_items[0][sku]=COURSE-42")
    response = client.post("/hooks/shop", **{**post, "content_type": "application/x-www-form-urlencoded"})
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
    response = client.post("/hooks/shop", **{**woo_post(data), "content_type": content_type})
    assert response.status_code == 400
    assert reason in response.get_json()["message"]
    assert redis_conn.zcard(INDEX_KEY) == 0


def test_body_over_the_limit_is_413(settings_overrides, lms_env, redis_conn):
    from bridge import create_app

    client = create_app({**settings_overrides, "max_body_bytes": 100}, env=lms_env).test_client()
    response = client.post("/hooks/shop", **woo_post({"pad": "x" * 200}))
    assert response.status_code == 413
    assert response.get_json()["error"] == "PayloadTooLarge" and "over the limit of 100" in response.get_json()["message"]
    assert redis_conn.zcard(INDEX_KEY) == 0


def test_redis_unreachable_is_503_with_retry_after(settings_overrides, lms_env):
    from bridge import create_app
    from tests.conftest import free_port

    app = create_app({**settings_overrides, "redis_url": f"redis://127.0.0.1:{free_port()}/0"}, env=lms_env)
    response = app.test_client().post("/hooks/shop", **woo_post(ORDER))
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
    response = app.test_client().post("/hooks/shop", **woo_post(ORDER))
    assert response.status_code == 503 and response.headers["Retry-After"] == "60"
    # File names and keys are for the operator (logs, `bridge check`, the admin API), not for anyone on the URL.
    assert "bad.yaml" not in response.get_data(as_text=True) and "errors" not in response.get_json()


def test_bad_signature_is_401_and_nothing_is_stored(client, redis_conn):
    post = woo_post(ORDER)
    post["headers"]["X-WC-Webhook-Signature"] = "AAAA" + post["headers"]["X-WC-Webhook-Signature"][4:]
    response = client.post("/hooks/shop", **post)
    assert response.status_code == 401
    assert response.get_json()["message"] == "signature does not match"
    missing = client.post("/hooks/shop", data=post["data"], content_type="application/json")
    assert missing.status_code == 401 and "missing X-WC-Webhook-Signature header" in missing.get_json()["message"]
    assert redis_conn.zcard(INDEX_KEY) == 0


def test_woocommerce_creation_ping_gets_exactly_200(client, redis_conn):
    response = client.post("/hooks/shop", data="webhook_id=12", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200 and response.get_json()["ping"] is True
    assert redis_conn.zcard(INDEX_KEY) == 0


def test_duplicate_delivery_gets_200_naming_the_first_and_no_second_job(client, app, redis_conn):
    first = client.post("/hooks/shop", **woo_post(ORDER, delivery_id="same")).get_json()
    again = client.post("/hooks/shop", **woo_post(ORDER, delivery_id="same"))
    assert again.status_code == 200
    assert again.get_json()["duplicate"] is True and again.get_json()["delivery_id"] == first["delivery_id"]
    assert queued(app, redis_conn) == first["jobs"]
    assert load_record(redis_conn, first["delivery_id"])["duplicates"] == 1


def test_a_storm_of_duplicates_queues_one_job(app, redis_conn):
    from concurrent.futures import ThreadPoolExecutor

    post = woo_post(ORDER, delivery_id="storm")

    def send(_):
        return app.test_client().post("/hooks/shop", **post).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(send, range(40)))
    assert sorted(statuses) == [200] * 39 + [202]
    assert len(queued(app, redis_conn)) == 1
    assert redis_conn.zcard(INDEX_KEY) == 1


def test_source_secrets_are_not_stored(tmp_path, settings_overrides, lms_env, redis_conn):
    from bridge import create_app
    from tests.rule_files import write_rules

    write_rules(tmp_path / "rules", {"gum.yaml": """
        sources:
          gum:
            type: gumroad
            secret: the-gumroad-token
        rules:
          - name: enroll
            source: gum
            actions:
              - connection: coursebox
                action: invite
                with: {course_id: 42, email: "{{ body.email }}"}
    """})
    client = create_app({**settings_overrides, "rules_dir": tmp_path / "rules"}, env=lms_env).test_client()
    body = "sale_id=S1&email=a%40b.test&note=the-gumroad-token"
    response = client.post("/hooks/gum?token=the-gumroad-token", data=body, content_type="application/x-www-form-urlencoded",
                           headers={"Authorization": "Bearer xyz-secret"})
    assert response.status_code == 202, response.get_json()
    reply = response.get_json()
    record = load_record(redis_conn, reply["delivery_id"])
    job = Queue("bridge", connection=redis_conn).fetch_job(reply["jobs"][0])
    stored = json.dumps(record) + json.dumps(job.args)
    assert "the-gumroad-token" not in stored and "xyz-secret" not in stored
    assert record["query"] == {"token": "[redacted]"}


def test_hubspot_batch_is_split_into_one_delivery_per_event(tmp_path, settings_overrides, lms_env, redis_conn):
    from bridge import create_app
    from tests.rule_files import write_rules
    from tests.signing import sign_hubspot_v3

    write_rules(tmp_path / "rules", {"hub.yaml": """
        sources:
          crm:
            type: hubspot
            secret: hub-secret
        rules:
          - name: deal-won
            source: crm
            event: deal.propertyChange
            when:
              - path: body.propertyValue
                equals: closedwon
            actions:
              - connection: coursebox
                action: get_user
                with: {user_id: "{{ body.objectId }}"}
    """})
    client = create_app({**settings_overrides, "rules_dir": tmp_path / "rules"}, env=lms_env).test_client()
    batch = [{"eventId": 1, "subscriptionType": "deal.propertyChange", "objectId": 7, "propertyName": "dealstage", "propertyValue": "closedwon"},
             {"eventId": 2, "subscriptionType": "deal.propertyChange", "objectId": 8, "propertyName": "dealstage", "propertyValue": "lost"},
             {"eventId": 3, "subscriptionType": "contact.creation", "objectId": 9}]
    raw = json.dumps(batch).encode()
    import time as clock

    headers = sign_hubspot_v3(raw, "hub-secret", "http://localhost/hooks/crm", int(clock.time() * 1000))
    response = client.post("/hooks/crm", data=raw, content_type="application/json", headers=headers)
    assert response.status_code == 202, response.get_json()
    deliveries = response.get_json()["deliveries"]
    assert [(d["event"], d["matched"]) for d in deliveries] == [
        ("deal.propertyChange", ["deal-won"]), ("deal.propertyChange", []), ("contact.creation", [])]
    assert len({d["delivery_id"] for d in deliveries}) == 3
    again = client.post("/hooks/crm", data=raw, content_type="application/json", headers=headers)
    assert again.status_code == 200 and all(d["duplicate"] for d in again.get_json()["deliveries"])


def test_a_short_secret_in_the_body_is_scrubbed_without_breaking_the_event():
    from bridge.deliveries import stored_event

    event = {"headers": {}, "query": {}, "body": {"order": 12345, "note": "pin 1234 used", "items": ["1234"]}}
    stored, _ = stored_event(event, ["1234"])
    assert stored["body"] == {"order": 12345, "note": "pin [redacted] used", "items": ["[redacted]"]}


_TEXT = st.text(st.sampled_from('ab1234"\\/é%+ \n'), max_size=12)
_DATA = st.recursive(st.none() | st.integers() | _TEXT, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(_TEXT, inner, max_size=3), max_leaves=8)


@given(body=_DATA, query=st.dictionaries(_TEXT, _TEXT, max_size=2), headers=st.dictionaries(_TEXT, _TEXT, max_size=2),
       secrets=st.lists(_TEXT, max_size=2))
def test_storing_skips_the_walk_only_when_no_secret_can_be_in_the_data(body, query, headers, secrets):
    """The quick check on the JSON agrees with scrubbing every string, whatever the secrets are spelled with."""
    from bridge.deliveries import stored_event
    from bridge.redaction import REDACTED, redact

    event = {"headers": headers, "query": query, "body": body}
    stored, texts = stored_event(event, secrets)
    expected_headers = {name: REDACTED if name in ("authorization", "cookie") else value for name, value in headers.items()}
    assert stored["headers"] == redact(expected_headers, secrets, by_name=False)
    assert stored["query"] == redact(query, secrets, by_name=False)
    assert stored["body"] == redact(body, secrets, by_name=False)
    assert {part: json.loads(text) for part, text in texts.items()} == {part: stored[part] for part in texts}


def test_a_captured_request_resent_with_a_fresh_delivery_id_is_a_duplicate(client, app, redis_conn):
    from bridge.deliveries import REPLAY_KEY_PREFIX

    first = client.post("/hooks/shop", **woo_post(ORDER, delivery_id="original")).get_json()
    again = client.post("/hooks/shop", **woo_post(ORDER, delivery_id="forged-fresh-id"))
    assert again.status_code == 200
    assert again.get_json()["duplicate"] is True and again.get_json()["delivery_id"] == first["delivery_id"]
    assert queued(app, redis_conn) == first["jobs"]
    [key] = redis_conn.keys(REPLAY_KEY_PREFIX + b"*")
    assert len(key) == len(REPLAY_KEY_PREFIX) + 32
    window = app.extensions["bridge"].settings.replay_window
    assert window == 90 * 24 * 3600 and window - 60 < redis_conn.ttl(key) <= window


def test_a_changed_body_is_a_new_delivery_and_timestamped_senders_keep_no_replay_key(client, app, redis_conn):
    from bridge.deliveries import REPLAY_KEY_PREFIX

    assert client.post("/hooks/shop", **woo_post(ORDER)).status_code == 202
    assert client.post("/hooks/shop", **woo_post({**ORDER, "id": 1002})).status_code == 202
    assert len(redis_conn.keys(REPLAY_KEY_PREFIX + b"*")) == 2
    redis_conn.delete(*redis_conn.keys(REPLAY_KEY_PREFIX + b"*"))
    response = client.post("/hooks/hr", **hr_post({"event": "hired", "employee": {"email": "a@b.test"}}))
    assert response.status_code == 202, response.get_json()
    assert redis_conn.keys(REPLAY_KEY_PREFIX + b"*") == []


def test_a_signed_source_checks_the_signature_before_decoding_the_body(client, redis_conn):
    # Unsigned: refused on the raw bytes, whatever they would decode to (here: no valid JSON at all).
    hostile = b"[" * 500_000
    response = client.post("/hooks/shop", data=hostile, content_type="application/json")
    assert response.status_code == 401 and "missing X-WC-Webhook-Signature" in response.get_json()["message"]
    # Signed, the same bytes get their decoding error.
    signed = client.post("/hooks/shop", **woo_post(hostile))
    assert signed.status_code == 400 and "nested deeper than 32" in signed.get_json()["message"]
    assert redis_conn.zcard(INDEX_KEY) == 0


def test_a_changed_secret_in_the_env_file_takes_effect_without_a_restart(tmp_path, settings_overrides, lms_env, redis_conn):
    from bridge import create_app
    from tests.processes import wait_for
    from tests.rule_files import EXAMPLE_RULES

    env_file = tmp_path / ".env"
    client = create_app({**settings_overrides, "rules_dir": EXAMPLE_RULES, "env_file": env_file}, env=lms_env).test_client()
    order = {"id": 31, "status": "completed", "billing": {"email": "a@b.test"}, "line_items": []}
    assert client.post("/hooks/shop", **woo_post(order)).status_code == 202  # the demo secret, from the environment
    env_file.write_text("WOOCOMMERCE_SECRET=rotated-in-the-env-file\n")
    wait_for(lambda: client.post("/hooks/shop", **woo_post({**order, "id": 32}, secret="rotated-in-the-env-file")).status_code == 202,
             what="the rotated secret to be in force")
    assert client.post("/hooks/shop", **woo_post({**order, "id": 33})).status_code == 401


def test_a_refused_deeply_nested_body_is_401_and_its_preview_kept(client, redis_conn):
    nested = b"[" * 900 + b"]" * 900  # deeper than any recursion of the log's preview could follow
    response = client.post("/hooks/hr", data=nested, content_type="application/json")
    assert response.status_code == 401 and redis_conn.zcard(INDEX_KEY) == 0
