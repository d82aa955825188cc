"""Coursebox connector against the sandbox over real HTTP: actions, tokens, identity map, failures."""

from __future__ import annotations

import pytest

from bridge.lms import LMSAuthError, LMSNotFound, LMSRateLimited, LMSRejected, LMSUnavailable, build_connector
from bridge.sandbox import COURSEBOX_EMAIL, COURSEBOX_PASSWORD
from tests.lms_helpers import closed_port_url, connectors, live_sandbox, lms_sandbox, redis14  # noqa: F401

NAME = "coursebox"


def spec(url: str, **overrides) -> dict:
    return {"type": "coursebox", "url": url, "email": COURSEBOX_EMAIL, "password": COURSEBOX_PASSWORD, **overrides}


@pytest.fixture
def coursebox(lms_sandbox, connectors):
    return connectors(NAME, spec(lms_sandbox.coursebox_url))


@pytest.fixture
def shared(lms_sandbox, connectors, redis14):
    """Return a function that builds a connector on Redis db 14, as each RQ work horse would."""
    return lambda **overrides: connectors(NAME, spec(lms_sandbox.coursebox_url, **overrides), redis=redis14)


def logins(sandbox) -> int:
    return len(sandbox.calls("/auth/login"))


def test_create_user_creates_an_account_without_returning_the_password(coursebox, lms_sandbox):
    result = coursebox.perform("create_user", {"email": "Ann@Example.com", "first_name": "Ann", "last_name": "Lee"})

    assert result["created"] is True and result["email"] == "Ann@Example.com" and result["password_generated"]
    assert "password" not in result
    [user] = [u for u in lms_sandbox.snapshot()["coursebox"]["users"] if u["email"] == "Ann@Example.com"]
    assert str(user["id"]) == result["id"] and user["firstName"] == "Ann"
    [call] = lms_sandbox.calls("createAccount")
    assert call["body"]["data"]["user"]["password"] == "***" and call["body"]["data"]["marketingEmails"] is False
    assert call["headers"]["X-Access-Token"] == "***"


def test_create_user_for_a_known_email_makes_no_second_account(coursebox, lms_sandbox):
    first = coursebox.perform("create_user", {"email": "ann@example.com"})
    second = coursebox.perform("create_user", {"email": " ANN@example.com"})

    assert second == {"id": first["id"], "email": "ANN@example.com", "created": False}
    assert len(lms_sandbox.calls("createAccount")) == 1


def test_identity_map_and_token_live_in_redis_for_every_work_horse(shared, lms_sandbox, redis14):
    created = shared().perform("create_user", {"email": "ann@example.com", "password": "chosen-Pa55"})
    again = shared().perform("create_user", {"email": "ann@example.com"})
    enrolled = shared().perform("enroll", {"course_id": "42", "email": "Ann@Example.com"})

    assert again["created"] is False and again["id"] == created["id"] == enrolled["user_id"]
    assert created["password_generated"] is False
    assert redis14.hget(f"bridge:lms:{NAME}:ids", "ann@example.com").decode() == created["id"]
    assert logins(lms_sandbox) == 1 and len(lms_sandbox.calls("createAccount")) == 1
    assert 0 < redis14.ttl(f"bridge:lms:{NAME}:token") <= 3600


def test_token_ttl_setting_sets_the_redis_expiry(shared, redis14):
    shared(token_ttl=120).perform("get_user", {"user_id": 1})

    assert 0 < redis14.ttl(f"bridge:lms:{NAME}:token") <= 120


def test_the_token_is_reused_between_calls(coursebox, lms_sandbox):
    coursebox.perform("get_user", {"user_id": 1})
    coursebox.perform("get_user", {"user_id": "1"})

    assert logins(lms_sandbox) == 1
    assert len(lms_sandbox.calls("/api/WineUsers/1")) == 2


def test_an_expired_token_means_one_new_login(coursebox, lms_sandbox):
    coursebox.perform("get_user", {"user_id": 1})
    lms_sandbox.control("DELETE", "/tokens")

    assert coursebox.perform("get_user", {"user_id": 1})["email"] == COURSEBOX_EMAIL
    assert logins(lms_sandbox) == 2
    assert [call["status"] for call in lms_sandbox.calls("/api/WineUsers/1")] == [200, 401, 200]


def test_an_expired_token_in_redis_means_one_new_login(shared, lms_sandbox):
    shared().perform("get_user", {"user_id": 1})
    lms_sandbox.control("DELETE", "/tokens")

    shared().perform("get_user", {"user_id": 1})
    shared().perform("get_user", {"user_id": 1})
    assert logins(lms_sandbox) == 2


def test_a_token_refused_twice_is_an_auth_error(coursebox, lms_sandbox):
    lms_sandbox.fault(status=401, count=2, path="/WineUsers/")

    with pytest.raises(LMSAuthError) as caught:
        coursebox.perform("get_user", {"user_id": 1})
    assert "fresh from login" in str(caught.value) and not caught.value.retryable
    assert logins(lms_sandbox) == 2


def test_wrong_password_is_an_auth_error_without_the_password(lms_sandbox, connectors):
    wrong = connectors(NAME, spec(lms_sandbox.coursebox_url, password="wrong-Secret-42"))

    with pytest.raises(LMSAuthError) as caught:
        wrong.perform("get_user", {"user_id": 1})
    error = caught.value
    assert "login failed" in str(error) and "get_user: login" in str(error) and error.http_status == 401
    assert "wrong-Secret-42" not in str(error) and not error.retryable


def test_secrets_echoed_by_the_lms_are_scrubbed(coursebox, lms_sandbox):
    coursebox.perform("get_user", {"user_id": 1})
    token = lms_sandbox.state.tokens and next(iter(lms_sandbox.state.tokens))
    lms_sandbox.fault(status=400, path="createAccount", body=f"bad: {COURSEBOX_PASSWORD} {token} chosen-Pa55")

    with pytest.raises(LMSRejected) as caught:
        coursebox.perform("create_user", {"email": "a@example.com", "password": "chosen-Pa55"})
    message = str(caught.value)
    assert COURSEBOX_PASSWORD not in message and token not in message and "chosen-Pa55" not in message
    assert message.count("***") == 3


def test_invite_reaches_the_course(coursebox, lms_sandbox):
    result = coursebox.perform("invite", {"course_id": "42", "email": "bo@example.com", "first_name": "Bo"})

    assert result["invited"] is True and result["course_id"] == "42"
    [invite] = lms_sandbox.snapshot()["coursebox"]["invites"]
    assert invite["courseId"] == 42 and invite["email"] == "bo@example.com" and invite["firstName"] == "Bo"


def test_enroll_and_unenroll_by_email_and_by_id(coursebox, lms_sandbox):
    user = coursebox.perform("create_user", {"email": "cy@example.com"})

    assert coursebox.perform("enroll", {"course_id": 42, "email": "cy@example.com"})["enrolled"] is True
    assert coursebox.perform("enroll", {"course_id": "7", "user_id": user["id"]})["user_id"] == user["id"]
    assert lms_sandbox.snapshot()["coursebox"]["enrollments"] == {"42": [int(user["id"])], "7": [int(user["id"])],
                                                                   "13": []}
    [call] = lms_sandbox.calls("/42/enrolUser")
    assert call["body"] == {"id": 42, "userId": int(user["id"])}

    coursebox.perform("unenroll", {"course_id": "42", "email": "CY@example.com"})
    coursebox.perform("unenroll", {"course_id": "7", "user_id": user["id"]})
    assert lms_sandbox.snapshot()["coursebox"]["enrollments"] == {"42": [], "7": [], "13": []}
    assert lms_sandbox.calls("/42/users")[0]["query"] == {"userid": user["id"]}


def test_enroll_by_an_unknown_email_is_not_found_without_a_call(coursebox, lms_sandbox):
    with pytest.raises(LMSNotFound, match="nobody@example.com"):
        coursebox.perform("enroll", {"course_id": "42", "email": "nobody@example.com"})
    assert lms_sandbox.calls() == []


def test_unknown_course_and_user_are_not_found(coursebox):
    with pytest.raises(LMSNotFound, match="HTTP 404"):
        coursebox.perform("enroll", {"course_id": "999", "user_id": "1"})
    with pytest.raises(LMSNotFound, match='Unknown "WineUser" id "555"'):
        coursebox.perform("get_user", {"user_id": "555"})


def test_get_user_returns_the_user_and_fills_the_identity_map(coursebox, lms_sandbox):
    result = coursebox.perform("get_user", {"user_id": 1})

    assert result["id"] == "1" and result["email"] == COURSEBOX_EMAIL and result["user"]["isAdmin"] is True
    coursebox.perform("enroll", {"course_id": "13", "email": COURSEBOX_EMAIL})
    assert lms_sandbox.snapshot()["coursebox"]["enrollments"]["13"] == [1]


def test_duplicate_account_is_rejected_with_the_lms_text(coursebox):
    with pytest.raises(LMSRejected, match="Email already exists"):
        coursebox.perform("create_user", {"email": COURSEBOX_EMAIL})


def test_enroll_needs_an_id_or_an_email(coursebox, lms_sandbox):
    with pytest.raises(LMSRejected, match="needs one of 'user_id', 'email'"):
        coursebox.perform("enroll", {"course_id": "42"})
    assert lms_sandbox.calls() == []


def test_server_error_is_retryable_unavailable(coursebox, lms_sandbox):
    lms_sandbox.fault(status=503, path="enrolUser")

    with pytest.raises(LMSUnavailable) as caught:
        coursebox.perform("enroll", {"course_id": "42", "user_id": "1"})
    assert caught.value.retryable and caught.value.http_status == 503
    assert coursebox.perform("enroll", {"course_id": "42", "user_id": "1"})["enrolled"] is True


def test_rate_limit_carries_retry_after(coursebox, lms_sandbox):
    lms_sandbox.fault(status=429, retry_after=7)

    with pytest.raises(LMSRateLimited) as caught:
        coursebox.perform("get_user", {"user_id": 1})
    assert caught.value.retry_after == 7.0 and caught.value.operation == "get_user: login"


def test_closed_port_is_unavailable(connectors):
    coursebox = connectors(NAME, spec(closed_port_url()))

    with pytest.raises(LMSUnavailable, match="cannot reach"):
        coursebox.perform("get_user", {"user_id": 1})


@pytest.mark.parametrize(("change", "said"), [
    ({"password": None}, "missing key 'password'"),
    ({"api_key": "x"}, "unknown key 'api_key'"),
    ({"token_ttl": 0}, "token_ttl"),
])
def test_bad_specs_name_the_connection_and_the_key(change, said):
    bad = {key: value for key, value in {**spec("https://lms.example"), **change}.items() if value is not None}

    with pytest.raises(ValueError, match=f"connection 'coursebox': .*{said}"):
        build_connector(NAME, bad)


def test_the_default_url_is_coursebox(connectors):
    assert connectors(NAME, {"type": "coursebox", "email": "e", "password": "p"}).url == "https://api.coursebox.ai"
