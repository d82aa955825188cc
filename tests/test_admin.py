"""The admin API: bearer auth, each endpoint, its OpenAPI document (checked by schemathesis), and no secrets out."""

import json
import shutil
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from rq.job import JobStatus

from bridge import create_app
from bridge.admin import openapi_document
from bridge.embedded import DEMO_SECRETS
from bridge.sandbox_state import COURSEBOX_PASSWORD, COURSETOOLKIT_API_KEY
from bridge.settings import Settings
from tests.rule_files import EXAMPLE_RULES, wait_reloaded
from tests.signing import hr_post, sign_stripe, woo_post
from tests.test_pipeline import ORDER, fault, job_of

TOKEN = "admin-token-for-the-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HIRE = {"event": "employee.hired", "id": "h1", "employee": {"email": "Zoe@Example.com"}}


@pytest.fixture
def settings_overrides(settings_overrides):
    """Turn the admin API on for every app of this module."""
    return {**settings_overrides, "admin_token": TOKEN}


def get(client, path, **kwargs):
    return client.get(path, headers=AUTH, **kwargs)


def post(client, path, **kwargs):
    return client.post(path, headers=AUTH, **kwargs)


@pytest.fixture
def failed_and_succeeded(client, work, lms_env):
    """Store a delivery whose LMS call fails for good (a wrong API key) and one that succeeds; return both replies."""
    lms_env["COURSETOOLKIT_API_KEY"] = "wrong-key-for-the-admin-tests"  # the app and the worker read their rules from this dict
    failed = client.post("/hooks/hr", **hr_post(HIRE)).get_json()
    succeeded = client.post("/hooks/shop", **woo_post(ORDER)).get_json()
    work()
    return failed, succeeded


# --- on, off and auth ---------------------------------------------------------------------------------------

def test_the_api_is_off_without_a_token(settings_overrides, lms_env, redis_conn):
    client = create_app({**settings_overrides, "admin_token": None}, env=lms_env).test_client()
    for path in ("/admin/deliveries", "/admin/openapi.json", "/admin/rules"):
        assert client.get(path, headers=AUTH).status_code == 404
    assert client.post("/admin/retry", headers=AUTH, json={"all_failed": True}).status_code == 404


def test_the_token_setting_is_trimmed_long_enough_and_kept_out_of_reprs():
    assert Settings.from_env({}).admin_token is None and Settings.from_env({"BRIDGE_ADMIN_TOKEN": " "}).admin_token is None
    assert Settings.from_env({"BRIDGE_ADMIN_TOKEN": f"  {TOKEN}\n"}).admin_token == TOKEN
    with pytest.raises(ValueError, match="BRIDGE_ADMIN_TOKEN must be at least 16 characters"):
        Settings.from_env({"BRIDGE_ADMIN_TOKEN": "guessable"})
    assert TOKEN not in repr(Settings(admin_token=TOKEN))


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer ", f"Basic {TOKEN}", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer wrong"])
def test_a_missing_or_wrong_token_gets_401_with_a_bearer_challenge(client, header):
    headers = {"Authorization": header} if header is not None else {}
    for method, path in (("GET", "/admin/deliveries"), ("GET", "/admin/deliveries/x"), ("POST", "/admin/retry"),
                         ("POST", "/admin/deliveries/x/retry"), ("POST", "/admin/deliveries/x/replay"), ("GET", "/admin/rules")):
        response = client.open(path, method=method, headers=headers)
        assert response.status_code == 401, (method, path)
        assert response.headers["WWW-Authenticate"].startswith("Bearer ")
        assert response.get_json()["error"] == "TokenRejected"
        assert TOKEN not in response.get_data(as_text=True)


def test_the_openapi_document_is_public_and_covers_every_route(client, app):
    response = client.get("/admin/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document == openapi_document() and document["openapi"].startswith("3.1")
    schemathesis.openapi.from_dict(document).validate()  # against the OpenAPI 3.1 meta-schema
    documented = {(path, method.upper()) for path, item in document["paths"].items() for method in item if method != "parameters"}
    served = {(rule.rule.replace("<", "{").replace(">", "}"), method) for rule in app.url_map.iter_rules()
              if rule.rule.startswith("/admin/") and not rule.endpoint.startswith("console.")
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == served


# --- GET /admin/deliveries ------------------------------------------------------------------------------------

def test_list_filters_newest_first(client, failed_and_succeeded):
    failed, succeeded = failed_and_succeeded
    ids = lambda query="": [item["id"] for item in get(client, f"/admin/deliveries{query}").get_json()["deliveries"]]  # noqa: E731
    assert ids() == [succeeded["delivery_id"], failed["delivery_id"]]
    assert ids("?status=failed") == [failed["delivery_id"]]
    assert ids("?email=ZOE@example.com") == ids("?subject=zoe@example.com") == [failed["delivery_id"]]
    assert ids("?source=shop") == ids("?rule=enroll-buyer-on-completed-order") == ids("?connection=coursebox") == [succeeded["delivery_id"]]
    assert ids("?since=1h&until=2099-01-01T00:00:00Z") == ids()
    assert ids("?until=2000-01-01") == [] and ids("?status=retrying") == []
    assert ids("?since=1h&until=2h") == [] and ids("?subject=zoe@example.com&email=jane@example.com") == []
    assert ids("?subject=zoe@example.com&email=ZOE@example.com") == [failed["delivery_id"]]
    assert ids("?limit=1") == [succeeded["delivery_id"]]
    listed = get(client, "/admin/deliveries?status=failed").get_json()
    assert listed["count"] == 1
    assert listed["deliveries"][0]["matched"] == ["create-account-on-hire"] and listed["deliveries"][0]["status"] == "failed"


@pytest.mark.parametrize("query", ["status=bogus", "limit=0", "limit=10001", "limit=abc", "since=yesterday", "until=2026-13-01",
                                   "stauts=failed", "status=failed&status=queued", "source="])
def test_bad_filters_get_400_that_says_why(client, redis_conn, query):
    response = get(client, f"/admin/deliveries?{query}")
    assert response.status_code == 400
    assert response.get_json()["error"] == "BadRequest" and response.get_json()["message"]


# --- GET /admin/deliveries/{id} -------------------------------------------------------------------------------

def test_show_explains_a_failed_delivery_with_the_lms_reply(client, failed_and_succeeded):
    failed, _ = failed_and_succeeded
    shown = get(client, f"/admin/deliveries/{failed['delivery_id']}").get_json()
    assert shown["status"] == "failed" and shown["job_status"] == {failed["jobs"][0]: "failed"}
    assert shown["decisions"] == [{"rule": "create-account-on-hire", "matched": True, "reason": "no conditions"}]
    assert [step["status"] for step in shown["timeline"]][:3] == ["received", "queued", "running"]
    assert shown["timeline"][-1]["status"] == "failed" and "LMSAuthError" in shown["timeline"][-1]["error"]
    assert "invalid api-user or api-key" in shown["attempts"][-1]["reply"]["response_description"]
    assert shown["attempts"][-1]["request"]["api-key"] == "[redacted]"


def test_show_an_unknown_delivery_is_404(client, redis_conn):
    response = get(client, "/admin/deliveries/nope")
    assert response.status_code == 404 and "nope" in response.get_json()["message"]


# --- retry and replay -----------------------------------------------------------------------------------------

def test_retry_a_failed_delivery_after_the_lms_recovers(client, work, sandbox, redis_conn):
    fault(sandbox, status=503, count=4, path="enrolUser")
    reply = client.post("/hooks/shop", **woo_post(ORDER)).get_json()
    work()
    assert job_of(redis_conn, reply).get_status() == JobStatus.FAILED
    retried = post(client, f"/admin/deliveries/{reply['delivery_id']}/retry")
    assert retried.status_code == 200
    assert retried.get_json() == {"requeued": reply["jobs"], "results": [{"job": reply["jobs"][0], "requeued": True, "message": f"{reply['jobs'][0]}: queued again"}]}
    work()
    assert job_of(redis_conn, reply).get_status() == JobStatus.FINISHED
    again = post(client, f"/admin/deliveries/{reply['delivery_id']}/retry").get_json()
    assert again["requeued"] == [] and "not failed" in again["results"][0]["message"]
    assert post(client, "/admin/deliveries/nope/retry").status_code == 404


def test_bulk_retry_by_rule_and_time_returns_what_was_requeued(client, work, sandbox, redis_conn):
    fault(sandbox, status=400, count=2, path="coursetoolkit")
    replies = [client.post("/hooks/hr", **hr_post({**HIRE, "id": f"b{n}", "employee": {"email": f"b{n}@example.com"}})).get_json() for n in range(2)]
    work()
    assert post(client, "/admin/retry", json={"rule": "enroll-buyer-on-completed-order"}).get_json() == {"requeued": [], "results": []}
    assert post(client, "/admin/retry", json={"rule": "create-account-on-hire", "until": "2000-01-01T00:00:00Z"}).get_json()["requeued"] == []
    response = post(client, "/admin/retry", json={"rule": "create-account-on-hire", "connection": "coursetoolkit", "since": "1h"})
    assert response.status_code == 200
    assert sorted(response.get_json()["requeued"]) == sorted(reply["jobs"][0] for reply in replies)
    work()
    statuses = [item["status"] for item in get(client, "/admin/deliveries").get_json()["deliveries"]]
    assert statuses == ["succeeded", "succeeded"]


@pytest.mark.parametrize("body", [None, {}, {"all_failed": False}, {"bogus": 1}, {"rule": 5}, {"rule": ""}, {"since": "soon"},
                                  {"all_failed": "yes"}, [], "rule", b"not json"])
def test_bulk_retry_refuses_an_empty_or_wrong_choice(client, redis_conn, body):
    kwargs = {"data": body} if isinstance(body, bytes) else {} if body is None else {"json": body}
    response = post(client, "/admin/retry", **kwargs)
    assert response.status_code == 400 and response.get_json()["error"] == "BadRequest"


def test_replay_runs_a_stored_delivery_through_the_fixed_rules(settings_overrides, lms_env, redis_conn, work, sandbox_calls, tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(EXAMPLE_RULES, rules)
    client = create_app({**settings_overrides, "rules_dir": rules}, env=lms_env).test_client()
    reply = client.post("/hooks/shop", **woo_post({**ORDER, "line_items": [{"sku": "COURSE-99"}]})).get_json()
    assert reply["matched"] == []
    shop = rules / "shop.yaml"
    shop.write_text(shop.read_text().replace("    COURSE-13: 13", "    COURSE-13: 13\n    COURSE-99: 13"))
    wait_reloaded(client.application.extensions["bridge"].rules)
    response = post(client, f"/admin/deliveries/{reply['delivery_id']}/replay")
    assert response.status_code == 202, response.get_json()
    replayed = response.get_json()
    assert replayed["matched"] == ["enroll-buyer-on-completed-order"] and replayed["delivery_id"] != reply["delivery_id"]
    work()
    assert any(call["path"].endswith("/Courses/13/enrolUser") for call in sandbox_calls())
    shown = get(client, f"/admin/deliveries/{replayed['delivery_id']}").get_json()
    assert shown["replay_of"] == reply["delivery_id"] and shown["status"] == "succeeded"
    assert post(client, "/admin/deliveries/nope/replay").status_code == 404


# --- rules ----------------------------------------------------------------------------------------------------

def test_rules_lists_names_and_no_settings(client, lms_env):
    rules = get(client, "/admin/rules").get_json()
    assert rules["loaded"] is True and rules["version"] and rules["errors"] == []
    assert {"name": "shop", "type": "woocommerce", "hook": "/hooks/shop"} in rules["sources"]
    assert {"name": "coursebox", "type": "coursebox"} in rules["connections"]
    hire = next(rule for rule in rules["rules"] if rule["name"] == "create-account-on-hire")
    assert hire["events"] == ["employee.hired"] and hire["actions"] == [{"connection": "coursetoolkit", "action": "create_user"}]
    assert lms_env["COURSEBOX_URL"] not in json.dumps(rules)


def test_rules_report_load_errors_and_the_set_kept(settings_overrides, lms_env, redis_conn, tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(EXAMPLE_RULES, rules)
    client = create_app({**settings_overrides, "rules_dir": rules}, env=lms_env).test_client()
    version = get(client, "/admin/rules").get_json()["version"]
    (rules / "broken.yaml").write_text("rules:\n  - name: x\n    sorce: y\n")
    wait_reloaded(client.application.extensions["bridge"].rules)
    kept = get(client, "/admin/rules").get_json()
    assert kept["loaded"] is True and kept["version"] == version
    assert any("broken.yaml:3:5" in error and "sorce" in error for error in kept["errors"])
    never = create_app({**settings_overrides, "rules_dir": tmp_path / "missing"}, env=lms_env).test_client()
    nothing = get(never, "/admin/rules").get_json()
    assert nothing["loaded"] is False and nothing["version"] is None and nothing["errors"]


# --- failures around it ---------------------------------------------------------------------------------------

def test_redis_down_is_503_with_retry_after(settings_overrides, lms_env):
    from tests.conftest import free_port

    client = create_app({**settings_overrides, "redis_url": f"redis://127.0.0.1:{free_port()}/0"}, env=lms_env).test_client()
    for response in (get(client, "/admin/deliveries"), get(client, "/admin/deliveries/x"), post(client, "/admin/retry", json={"all_failed": True})):
        assert response.status_code == 503 and response.headers["Retry-After"]
        assert response.get_json()["error"] == "QueueUnavailable"


def test_replay_with_rules_never_loaded_is_503(settings_overrides, lms_env, redis_conn, tmp_path):
    client = create_app({**settings_overrides, "rules_dir": tmp_path / "missing"}, env=lms_env).test_client()
    response = post(client, "/admin/deliveries/x/replay")
    assert response.status_code == 503 and response.get_json()["error"] == "ConfigErrors"


# --- no secrets -----------------------------------------------------------------------------------------------

def test_no_secret_of_the_test_configuration_appears_in_any_reply(client, work, lms_env, failed_and_succeeded):
    secrets = {*DEMO_SECRETS.values(), COURSEBOX_PASSWORD, COURSETOOLKIT_API_KEY, lms_env["COURSETOOLKIT_API_KEY"], TOKEN}
    # A sender that echoes its own secret in the body, and one more source, signed as Stripe signs.
    client.post("/hooks/hr", **hr_post({**HIRE, "id": "h2", "note": f"token {DEMO_SECRETS['HR_WEBHOOK_TOKEN']}"}))
    checkout = json.dumps({"id": "evt_1", "type": "checkout.session.completed", "data": {"object": {
        "payment_status": "paid", "metadata": {"course_id": "7"}, "customer_details": {"email": "sam@example.com"}}}}).encode()
    client.post("/hooks/stripe", data=checkout, content_type="application/json",
                headers=sign_stripe(checkout, DEMO_SECRETS["STRIPE_WEBHOOK_SECRET"], timestamp=int(time.time())))
    work()
    listed = get(client, "/admin/deliveries").get_json()["deliveries"]
    assert len(listed) == 4
    replies = [get(client, "/admin/deliveries"), get(client, "/admin/rules"), client.get("/admin/openapi.json"),
               get(client, "/admin/deliveries?status=bogus"), client.get("/admin/deliveries", headers={"Authorization": "Bearer wrong"})]
    for item in listed:
        replies += [get(client, f"/admin/deliveries/{item['id']}"), post(client, f"/admin/deliveries/{item['id']}/retry"),
                    post(client, f"/admin/deliveries/{item['id']}/replay")]
    replies.append(post(client, "/admin/retry", json={"all_failed": True}))
    assert all(response.status_code < 500 for response in replies)
    assert any("[redacted]" in response.get_data(as_text=True) for response in replies)  # they were there, and were taken out
    for response in replies:
        text = response.get_data(as_text=True)
        for secret in secrets:
            assert secret not in text, f"{secret!r} in a reply of {response.request.method} {response.request.path}"
        assert response.headers.get("WWW-Authenticate", "").find(TOKEN) == -1


# --- the OpenAPI document, checked by schemathesis -----------------------------------------------------------

# The packaged document, loaded at collection; `schemathesis.pytest.from_fixture` fails under pytest 9 (no `_nodeid`).
schema = schemathesis.openapi.from_dict(openapi_document())


@schema.auth(refresh_interval=None)
class AdminToken:
    """Give generated requests the admin token; schemathesis leaves it out where it tests a missing one."""

    def get(self, case, context):
        return TOKEN

    def set(self, case, data, context):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_the_api_answers_as_its_openapi_document_says(case, app, failed_and_succeeded):
    case.operation.schema.app = app  # this test's copy of the schema; its auth probes go to the app too
    case.call_and_validate(app=app)


def test_real_deliveries_match_the_document(app, failed_and_succeeded):
    loaded = schemathesis.openapi.from_wsgi("/admin/openapi.json", app)
    for reply in failed_and_succeeded:
        for path, method in (("/admin/deliveries/{delivery_id}", "GET"), ("/admin/deliveries/{delivery_id}/retry", "POST"),
                             ("/admin/deliveries/{delivery_id}/replay", "POST")):
            case = loaded[path][method].Case(path_parameters={"delivery_id": reply["delivery_id"]})
            response = case.call_and_validate(headers=AUTH)
            assert response.status_code in (200, 202)
    for query in ({}, {"status": "failed"}, {"since": "1h"}):
        assert loaded["/admin/deliveries"]["GET"].Case(query=query).call_and_validate(headers=AUTH).status_code == 200
    assert loaded["/admin/retry"]["POST"].Case(body={"all_failed": True}, media_type="application/json").call_and_validate(headers=AUTH).status_code == 200
    assert loaded["/admin/rules"]["GET"].Case().call_and_validate(headers=AUTH).status_code == 200
