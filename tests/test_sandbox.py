"""The LMS sandbox itself: both emulated APIs, the call log, state, faults and token expiry."""

from __future__ import annotations

import json
import time
from functools import partial

import pytest
import requests
from flask import Flask

from bridge.sandbox import (COURSEBOX_EMAIL, COURSEBOX_PASSWORD, COURSETOOLKIT_API_KEY, COURSETOOLKIT_API_USER,
                            SandboxState, create_sandbox_app, create_sandbox_blueprint)
from tests.lms_helpers import live_sandbox, lms_sandbox  # noqa: F401

TOOLKIT = "/sandbox/coursetoolkit/api"
BOX = "/sandbox/coursebox"


class Clock:
    def __init__(self):
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def client(clock):
    return create_sandbox_app(SandboxState(token_ttl=60, clock=clock)).test_client()


def toolkit(client, action: str, key: str = COURSETOOLKIT_API_KEY, **fields) -> dict:
    form = {"api-user": COURSETOOLKIT_API_USER, "api-key": key, "api-action": action, **fields}
    response = client.post(TOOLKIT, data=form)
    assert response.status_code == 200
    return response.get_json()


def login(client) -> str:
    response = client.post(f"{BOX}/auth/login", json={"email": COURSEBOX_EMAIL, "password": COURSEBOX_PASSWORD})
    assert response.status_code == 200
    return response.get_json()["token"]["id"]


def test_course_toolkit_actions(client):
    created = toolkit(client, "createuser", email="Dee@example.com", first_name="Dee")
    assert created["response"] == 0 and created["userid"] == "1002"
    assert toolkit(client, "createuser", email="dee@EXAMPLE.com")["userid"] == "1002"
    assert toolkit(client, "getuser", userid="1001")["permissions"] == "42 all\n7 m1,m2"
    assert toolkit(client, "getuser", userid="1002")["first_name"] == "Dee"
    assert toolkit(client, "removeuser", userid="1002")["response"] == 0
    assert toolkit(client, "getuser", userid="1002")["response"] != 0


@pytest.mark.parametrize(("fields", "said"), [
    ({"key": "wrong"}, "Authentication failed"),
    ({"action": "dance"}, "Unknown api-action"),
    ({"action": "createuser"}, "Missing required field: email"),
])
def test_course_toolkit_errors_are_nonzero_replies(client, fields, said):
    reply = toolkit(client, fields.pop("action", "getuser"), **fields)

    assert reply["response"] != 0 and said in reply["response_description"]


def test_coursebox_login_and_token_checks(client, clock):
    assert client.post(f"{BOX}/auth/login", json={"email": COURSEBOX_EMAIL, "password": "nope"}).status_code == 401
    assert client.get(f"{BOX}/api/WineUsers/1").status_code == 401
    assert client.get(f"{BOX}/api/WineUsers/1", headers={"X-Access-Token": "made-up"}).status_code == 401
    token = login(client)
    assert client.get(f"{BOX}/api/WineUsers/1", headers={"X-Access-Token": token}).status_code == 200

    clock.now += 61
    response = client.get(f"{BOX}/api/WineUsers/1", headers={"X-Access-Token": token})
    assert response.status_code == 401 and response.get_json()["error"]["message"] == "Authorization Required"


def test_every_coursebox_endpoint(client):
    auth = {"X-Access-Token": login(client)}
    account = {"data": {"user": {"firstName": "Eve", "lastName": "Ng", "email": "eve@example.com", "password": "x1"},
                        "offerCode": "", "marketingEmails": False, "is18Plus": True}}
    user = client.post(f"{BOX}/api/wineusers/createAccount", json=account, headers=auth).get_json()
    uid = user["id"]
    assert "password" not in user
    assert client.post(f"{BOX}/api/wineusers/createAccount", json=account, headers=auth).status_code == 422
    assert client.get(f"{BOX}/api/WineUsers/{uid}", headers=auth).get_json()["email"] == "eve@example.com"
    updated = client.post(f"{BOX}/api/WineUsers/updateMainAttributes?id={uid}", headers=auth,
                          json={"id": uid, "attributes": {"title": "Chef", "password": "ignored"}}).get_json()
    assert updated["title"] == "Chef" and "password" not in updated
    assert client.post(f"{BOX}/api/WineUsers/updateMainAttributes?id={uid}", headers=auth,
                       json={"id": 1, "attributes": {"title": "x"}}).status_code == 400
    assert client.post(f"{BOX}/api/WineUsers/updateMainAttributes?id=999", headers=auth,
                       json={"attributes": {"title": "x"}}).status_code == 404

    invite = {"data": {"firstName": "Fay", "lastName": "", "courseid": 7, "email": "fay@example.com"},
              "courseId": 7, "title": "", "body": ""}
    assert client.post(f"{BOX}/api/Courses/inviteUserForCourse", json=invite, headers=auth).status_code == 200
    enrol = partial(client.post, headers=auth)
    assert enrol(f"{BOX}/api/Courses/42/enrolUser", json={"id": 42, "userId": uid}).status_code == 200
    assert enrol(f"{BOX}/api/Courses/42/enrolUser", json={"id": 7, "userId": uid}).status_code == 400
    assert enrol(f"{BOX}/api/Courses/99/enrolUser", json={"userId": uid}).status_code == 404
    learners = client.get(f"{BOX}/api/Courses/42/allLearners", headers=auth).get_json()
    assert [learner["id"] for learner in learners] == [uid]
    assert client.delete(f"{BOX}/api/Courses/42/users?userid={uid}", headers=auth).get_json() == {"count": 1}
    assert client.get(f"{BOX}/api/Courses/42/allLearners", headers=auth).get_json() == []

    options = json.dumps({"my": True})
    titles = [c["title"] for c in client.get(f"{BOX}/api/Courses/findCourses?pageOptions={options}", headers=auth).json]
    assert {"Onboarding", "Food Safety"} <= set(titles)
    assert client.get(f"{BOX}/api/Courses/findCourses?pageOptions=nope", headers=auth).status_code == 400
    assert client.get(f"{BOX}/api/Courses/findCourse?id=7", headers=auth).get_json()["title"] == "Food Safety"
    assert client.get(f"{BOX}/api/Activities/501", headers=auth).get_json()["courseId"] == 42
    assert client.get(f"{BOX}/api/Activities/9", headers=auth).status_code == 404
    params = json.dumps({"all": True, "ids": "42"})
    admins = client.get(f"{BOX}/api/WineUsers/getUserForMentio?params={params}", headers=auth).get_json()
    assert [admin["email"] for admin in admins] == [COURSEBOX_EMAIL]

    state = client.get("/sandbox/state").get_json()
    assert [i["email"] for i in state["coursebox"]["invites"]] == ["fay@example.com"]
    assert "password" not in json.dumps(state)


def test_calls_are_recorded_oldest_first_with_secrets_redacted(client):
    toolkit(client, "getuser", userid="1001")
    token = login(client)
    client.get(f"{BOX}/api/WineUsers/1?x=1", headers={"X-Access-Token": token})
    client.get("/sandbox/state")

    calls = client.get("/sandbox/calls").get_json()["calls"]
    assert [(c["method"], c["path"], c["status"]) for c in calls] == [
        ("POST", TOOLKIT, 200), ("POST", f"{BOX}/auth/login", 200), ("GET", f"{BOX}/api/WineUsers/1", 200)]
    assert calls[0]["body"]["api-key"] == "***" and calls[0]["body"]["userid"] == "1001"
    assert calls[1]["body"] == {"email": COURSEBOX_EMAIL, "password": "***"}
    assert calls[2]["headers"]["X-Access-Token"] == "***" and calls[2]["query"] == {"x": "1"}
    dumped = json.dumps(calls)
    assert COURSETOOLKIT_API_KEY not in dumped and COURSEBOX_PASSWORD not in dumped and token not in dumped


def test_deleting_calls_keeps_state_and_reset_restores_the_seed(client):
    toolkit(client, "createuser", email="gus@example.com")
    client.delete("/sandbox/calls")
    assert client.get("/sandbox/calls").get_json()["calls"] == []
    assert len(client.get("/sandbox/state").get_json()["coursetoolkit"]["users"]) == 2

    token = login(client)
    client.post("/sandbox/faults", json={"latency": 0.01, "status": 500})
    client.post("/sandbox/reset")
    assert len(client.get("/sandbox/state").get_json()["coursetoolkit"]["users"]) == 1
    assert client.get(f"{BOX}/api/WineUsers/1", headers={"X-Access-Token": token}).status_code == 401
    assert [c["status"] for c in client.get("/sandbox/calls").get_json()["calls"]] == [401]
    assert client.post(TOOLKIT, data={}).status_code == 200  # the latency fault went too


def test_status_faults_fail_the_next_calls_then_stop(client):
    client.post("/sandbox/faults", json={"status": 500, "count": 2})

    statuses = [client.post(TOOLKIT, data={}).status_code for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert [c["fault"] for c in client.get("/sandbox/calls").get_json()["calls"]] == [True, True, False]


def test_rate_limit_fault_sends_retry_after_and_path_filter_applies(client):
    client.post("/sandbox/faults", json={"status": 429, "retry_after": 2, "path": "/coursebox/"})

    assert client.post(TOOLKIT, data={}).status_code == 200
    response = client.post(f"{BOX}/auth/login", json={})
    assert response.status_code == 429 and response.headers["Retry-After"] == "2"
    assert client.get("/sandbox/state").status_code == 200


def test_faults_can_be_cleared_and_bad_ones_are_refused(client):
    client.post("/sandbox/faults", json={"status": 503, "count": 5})
    client.delete("/sandbox/faults")

    assert client.post(TOOLKIT, data={}).status_code == 200
    assert client.post("/sandbox/faults", json={"status": 1000}).status_code == 400
    assert client.post("/sandbox/faults", json={"count": 0, "status": 500}).status_code == 400
    assert client.post("/sandbox/faults", json={"stauts": 500}).status_code == 400
    assert client.post("/sandbox/faults", json={"status": 500, "drop": True}).status_code == 400
    assert client.post("/sandbox/faults", json={"drop": "yes"}).status_code == 400
    assert client.post("/sandbox/faults", json={"hold": 0}).status_code == 400
    assert client.post("/sandbox/faults", json={"hold": 1, "drop": "after"}).status_code == 400


def test_act_then_drop_performs_the_call_and_loses_its_reply(lms_sandbox):
    import requests

    lms_sandbox.fault(drop="after", path="coursetoolkit")
    with pytest.raises(requests.ConnectionError):
        requests.post(lms_sandbox.coursetoolkit_url, timeout=5, data={
            "api-user": "sandbox", "api-key": "sandbox-key", "api-action": "createuser", "email": "gone@example.com"})
    [call] = lms_sandbox.calls()
    assert call["dropped"] is True and call["performed"] is True and call["status"] is None
    assert "gone@example.com" in [user["email"] for user in lms_sandbox.snapshot()["coursetoolkit"]["users"]]


def test_drop_closes_the_connection_without_a_reply_over_http(lms_sandbox):
    lms_sandbox.fault(drop=True, count=2, path="/coursebox/")

    assert requests.post(lms_sandbox.coursetoolkit_url, data={"api-user": "x"}, timeout=5).status_code == 200
    with requests.Session() as session:
        for _ in range(2):
            with pytest.raises(requests.ConnectionError, match="without response"):
                session.post(f"{lms_sandbox.coursebox_url}/auth/login", json={"email": "e"}, timeout=5)
        assert session.post(f"{lms_sandbox.coursebox_url}/auth/login", json={}, timeout=5).status_code == 401
    calls = lms_sandbox.calls()
    assert [(c["status"], c["fault"], c["dropped"]) for c in calls] == [
        (200, False, False), (None, True, True), (None, True, True), (401, False, False)]
    assert calls[1]["body"] == {"email": "e"}


def test_drop_without_a_socket_says_it_cannot(client):
    client.post("/sandbox/faults", json={"drop": True})

    response = client.post(TOOLKIT, data={})
    assert response.status_code == 500 and "cannot drop" in response.get_json()["error"]["message"]


def test_latency_slows_lms_calls_over_http(lms_sandbox):
    lms_sandbox.fault(latency=0.3)

    started = time.monotonic()
    requests.post(lms_sandbox.coursetoolkit_url, data={}, timeout=5)
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    lms_sandbox.control("GET", "/calls")
    assert time.monotonic() - started < 0.3


def test_the_blueprint_serves_the_same_urls_in_another_app():
    state = SandboxState()
    app = Flask("host")
    app.register_blueprint(create_sandbox_blueprint(state), url_prefix="/sandbox")
    client = app.test_client()

    assert toolkit(client, "createuser", email="hal@example.com")["response"] == 0
    assert any(u["email"] == "hal@example.com" for u in state.snapshot()["coursetoolkit"]["users"])
    login(client)
    assert len(state.calls) == 2


def test_unknown_lms_paths_are_recorded_not_found(client):
    assert client.get(f"{BOX}/api/Nope").status_code == 404
    assert client.get(TOOLKIT).status_code == 404
    assert [c["status"] for c in client.get("/sandbox/calls").get_json()["calls"]] == [404, 404]


def create_eve(client) -> int:
    account = {"data": {"user": {"firstName": "Eve", "lastName": "Ng", "email": "eve@example.com", "password": "x1"},
                        "offerCode": "", "marketingEmails": False, "is18Plus": True}}
    auth = {"X-Access-Token": login(client)}
    uid = client.post(f"{BOX}/api/wineusers/createAccount", json=account, headers=auth).get_json()["id"]
    assert client.post(f"{BOX}/api/Courses/42/enrolUser", json={"userId": uid}, headers=auth).status_code == 200
    return uid


def test_a_sandbox_with_a_state_file_keeps_its_users_across_restarts(tmp_path):
    path = tmp_path / "sandbox.json"
    uid = create_eve(create_sandbox_app(SandboxState(path=path)).test_client())
    restarted = create_sandbox_app(SandboxState(path=path)).test_client()
    auth = {"X-Access-Token": login(restarted)}  # tokens are of one run: a new login is needed
    assert restarted.get(f"{BOX}/api/WineUsers/{uid}", headers=auth).get_json()["email"] == "eve@example.com"
    assert uid in restarted.get("/sandbox/state").get_json()["coursebox"]["enrollments"]["42"]
    logged = [call["path"] for call in restarted.get("/sandbox/calls").get_json()["calls"]]
    assert not [path for path in logged if "createAccount" in path or "enrolUser" in path]  # the call log is of one run
    # The next user gets a new id, not Eve's.
    other = {"data": {"user": {"firstName": "Al", "lastName": "Bo", "email": "al@example.com", "password": "x1"}}}
    assert restarted.post(f"{BOX}/api/wineusers/createAccount", json=other, headers=auth).get_json()["id"] == uid + 1


def test_a_kept_sandbox_never_hands_out_an_id_twice_even_after_a_reset(tmp_path):
    client = create_sandbox_app(SandboxState(path=tmp_path / "sandbox.json")).test_client()
    uid = create_eve(client)
    client.post("/sandbox/reset")
    assert [user["email"] for user in client.get("/sandbox/state").get_json()["coursebox"]["users"]] == [COURSEBOX_EMAIL]
    # A bridge's identity map may still say eve -> uid: whoever comes next must not be that user.
    assert create_eve(client) == uid + 1
    # Without a state file (the tests' sandbox), a reset is a fresh start, ids included.
    fresh = create_sandbox_app(SandboxState()).test_client()
    first = create_eve(fresh)
    fresh.post("/sandbox/reset")
    assert create_eve(fresh) == first
