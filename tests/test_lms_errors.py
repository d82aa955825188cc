"""Every LMS error class, from both connectors over real HTTP: retryable or not, and what the message says."""

from __future__ import annotations

import pytest

from bridge.lms import LMSAuthError, LMSError, LMSNotFound, LMSRateLimited, LMSRejected, LMSUnavailable
from bridge.lms.errors import LMSNeedsAttention
from bridge.sandbox import COURSEBOX_EMAIL, COURSEBOX_PASSWORD, COURSETOOLKIT_API_KEY, COURSETOOLKIT_API_USER
from tests.lms_helpers import closed_port_url, connectors, live_sandbox, lms_sandbox  # noqa: F401

SECRETS = (COURSEBOX_PASSWORD, COURSETOOLKIT_API_KEY)


def box_spec(url: str, **overrides) -> dict:
    return {"type": "coursebox", "url": url, "email": COURSEBOX_EMAIL, "password": COURSEBOX_PASSWORD, **overrides}


def kit_spec(url: str, **overrides) -> dict:
    return {"type": "coursetoolkit", "url": url, "api_user": COURSETOOLKIT_API_USER,
            "api_key": COURSETOOLKIT_API_KEY, **overrides}


@pytest.fixture
def coursebox(lms_sandbox, connectors):
    return connectors("box", box_spec(lms_sandbox.coursebox_url))


@pytest.fixture
def toolkit(lms_sandbox, connectors):
    return connectors("kit", kit_spec(lms_sandbox.coursetoolkit_url))


def caught(connector, action: str, params: dict, cls: type[LMSError]) -> LMSError:
    """Perform an action that must fail with `cls`; check what every LMS error message must hold."""
    with pytest.raises(cls) as info:
        connector.perform(action, params)
    error = info.value
    assert type(error) is cls and error.retryable == (cls in (LMSRateLimited, LMSUnavailable))
    assert str(error).startswith(f"LMS connection {connector.name!r}, {error.operation}: ")
    assert error.operation.split(":")[0] == action and error.to_dict()["connection"] == connector.name
    assert not any(secret in str(error) or secret in repr(error.to_dict()) for secret in SECRETS)
    return error


def test_wrong_password_is_an_auth_error_naming_the_login(lms_sandbox, connectors):
    wrong = connectors("box", box_spec(lms_sandbox.coursebox_url, password="wrong-Secret-42"))

    error = caught(wrong, "get_user", {"user_id": 1}, LMSAuthError)
    assert error.operation == "get_user: login" and error.http_status == 401
    assert "login failed" in str(error) and "wrong-Secret-42" not in str(error)


def test_wrong_api_key_is_an_auth_error_with_the_lms_text(lms_sandbox, connectors):
    wrong = connectors("kit", kit_spec(lms_sandbox.coursetoolkit_url, api_key="not-the-key-123"))

    error = caught(wrong, "get_user", {"userid": "1001"}, LMSAuthError)
    assert "response 1: Authentication failed" in str(error) and "not-the-key-123" not in str(error)
    with pytest.raises(LMSAuthError):
        wrong.ping()


def test_not_found_from_both_lms(coursebox, toolkit):
    assert 'Unknown "WineUser" id "555"' in str(caught(coursebox, "get_user", {"user_id": "555"}, LMSNotFound))
    assert "User not found" in str(caught(toolkit, "get_user", {"userid": "4242"}, LMSNotFound))
    assert "no Coursebox user id is known for 'x@example.com'" in str(
        caught(coursebox, "unenroll", {"course_id": 42, "email": "x@example.com"}, LMSNeedsAttention))


def test_rejected_input_from_both_lms(coursebox, toolkit, lms_sandbox, connectors):
    lms_sandbox.fault(status=422, path="createAccount", body="data.user.email is not an email")
    error = caught(coursebox, "create_user", {"email": "not-an-email"}, LMSRejected)
    assert error.http_status == 422 and "HTTP 422: data.user.email is not an email" in str(error)
    lms_sandbox.fault(status=400, path="/coursebox/", body="bad request")
    assert "HTTP 400: bad request" in str(caught(coursebox, "get_course", {"course_id": 7}, LMSRejected))
    assert "Unknown api-action" in str(caught(
        connectors("kit", kit_spec(toolkit.url, actions={"get_user": "fetch"})), "get_user", {"userid": 1},
        LMSRejected))


@pytest.mark.parametrize("lms", ["coursebox", "coursetoolkit"])
def test_rate_limit_carries_retry_after(coursebox, toolkit, lms_sandbox, lms):
    connector, action, params = {"coursebox": (coursebox, "list_courses", {}),
                                 "coursetoolkit": (toolkit, "get_user", {"userid": "1001"})}[lms]
    lms_sandbox.fault(status=429, retry_after=7)

    error = caught(connector, action, params, LMSRateLimited)
    assert error.retry_after == 7.0 and error.to_dict()["retry_after"] == 7.0 and "HTTP 429" in str(error)


def test_server_errors_three_times_then_one_account(coursebox, lms_sandbox):
    lms_sandbox.fault(status=500, count=3, path="createAccount")

    for _ in range(3):
        error = caught(coursebox, "create_user", {"email": "ivy@example.com"}, LMSUnavailable)
        assert error.http_status == 500 and "sandbox fault: injected HTTP 500" in str(error)
    assert coursebox.perform("create_user", {"email": "ivy@example.com"})["created"] is True
    users = [u for u in lms_sandbox.snapshot()["coursebox"]["users"] if u["email"] == "ivy@example.com"]
    assert len(users) == 1 and [c["status"] for c in lms_sandbox.calls("createAccount")] == [500, 500, 500, 200]
    assert len(lms_sandbox.calls("/auth/login")) == 1


def test_server_errors_three_times_then_one_toolkit_user(toolkit, lms_sandbox):
    lms_sandbox.fault(status=503, count=3)

    for _ in range(3):
        caught(toolkit, "create_user", {"email": "jo@example.com"}, LMSUnavailable)
    first = toolkit.perform("create_user", {"email": "jo@example.com"})
    assert [u["userid"] for u in lms_sandbox.snapshot()["coursetoolkit"]["users"] if u["email"] == "jo@example.com"] \
        == [first["id"]]


def test_a_dropped_connection_is_unavailable(coursebox, toolkit, lms_sandbox):
    lms_sandbox.fault(drop=True, count=2, path="api")  # calls, not the login (test_lms_outage.py)

    assert "closed the connection without a reply" in str(caught(toolkit, "get_user", {"userid": 1}, LMSUnavailable))
    assert "closed the connection" in str(caught(coursebox, "get_user", {"user_id": 1}, LMSUnavailable))
    assert coursebox.perform("get_user", {"user_id": 1})["id"] == "1"
    assert [call["dropped"] for call in lms_sandbox.calls()] == [True, False, True, False]


@pytest.mark.parametrize("lms", ["coursebox", "coursetoolkit"])
def test_closed_port_is_unavailable(connectors, lms):
    connector = connectors(lms, box_spec(closed_port_url()) if lms == "coursebox" else kit_spec(closed_port_url()))

    error = caught(connector, "get_user", {"user_id" if lms == "coursebox" else "userid": 1}, LMSUnavailable)
    assert "cannot reach 127.0.0.1" in str(error) and "refused" in str(error).lower()


def test_slow_lms_times_out_as_unavailable(lms_sandbox, connectors):
    toolkit = connectors("kit", kit_spec(lms_sandbox.coursetoolkit_url), timeouts=(1.0, 0.2))
    lms_sandbox.fault(latency=0.5)

    assert "in time" in str(caught(toolkit, "get_user", {"userid": "1001"}, LMSUnavailable))


def test_secrets_echoed_by_the_lms_are_scrubbed(coursebox, lms_sandbox):
    coursebox.perform("get_user", {"user_id": 1})
    token = next(iter(lms_sandbox.state.tokens))
    lms_sandbox.fault(status=400, path="createAccount", body=f"bad: {COURSEBOX_PASSWORD} {token} chosen-Pa55")

    error = caught(coursebox, "create_user", {"email": "a@example.com", "password": "chosen-Pa55"}, LMSRejected)
    assert token not in str(error) and "chosen-Pa55" not in str(error) and str(error).count("[redacted]") == 3


def test_toolkit_key_echoed_by_the_lms_is_scrubbed(toolkit, lms_sandbox):
    lms_sandbox.fault(status=400, body=f"bad request: api-key={COURSETOOLKIT_API_KEY}")

    assert "[redacted]" in str(caught(toolkit, "get_user", {"userid": "1001"}, LMSRejected))


def test_a_connection_reads_the_proxy_and_ca_settings_once_for_its_server(monkeypatch):
    """requests would read the environment on every request; a connection reads it when built, for its own server."""
    from bridge.lms.base import session_for

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "lms.internal")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    outside, inside = session_for("https://lms.example.com"), session_for("https://lms.internal/api")
    assert outside.proxies["https"] == "http://proxy.example:3128" and "https" not in inside.proxies
    assert outside.verify == inside.verify == "/etc/ssl/certs/ca-certificates.crt"
    assert not outside.trust_env  # nothing is looked up again per request
