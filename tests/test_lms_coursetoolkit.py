"""Course Toolkit connector against the sandbox over real HTTP; the shared client base's pure parts."""

from __future__ import annotations

import ast
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.lms import (ACTIONS, CONNECTION_SCHEMAS, LMSAuthError, LMSError, LMSNotFound, LMSRateLimited,
                        LMSRejected, LMSUnavailable, build_connector, validate_connection_spec)
from bridge.lms.base import USER_AGENT, error_class, parse_retry_after
from bridge.lms.coursetoolkit import parse_permissions
from bridge.lms.errors import LMSNeedsAttention
from bridge.sandbox import COURSETOOLKIT_API_KEY, COURSETOOLKIT_API_USER
from tests.lms_helpers import connectors, live_sandbox, lms_sandbox  # noqa: F401

NAME = "toolkit"


def spec(url: str, **overrides) -> dict:
    return {"type": "coursetoolkit", "url": url, "api_user": COURSETOOLKIT_API_USER,
            "api_key": COURSETOOLKIT_API_KEY, **overrides}


@pytest.fixture
def toolkit(lms_sandbox, connectors):
    return connectors(NAME, spec(lms_sandbox.coursetoolkit_url))


def users_by_email(sandbox) -> dict:
    return {user["email"]: user for user in sandbox.snapshot()["coursetoolkit"]["users"]}


def test_create_user_returns_the_new_id_and_passes_extra_fields_through(toolkit, lms_sandbox):
    result = toolkit.perform("create_user", {"email": "new@example.com", "first_name": "Ann", "department": "Sales"})

    assert result["email"] == "new@example.com" and result["id"]
    stored = users_by_email(lms_sandbox)["new@example.com"]
    assert stored["userid"] == result["id"] and stored["first_name"] == "Ann" and stored["department"] == "Sales"
    [call] = lms_sandbox.calls()
    assert call["method"] == "POST" and call["body"]["api-action"] == "createuser"
    assert call["body"]["api-key"] == "***" and call["headers"]["User-Agent"] == USER_AGENT


def test_create_user_for_a_known_email_returns_the_existing_id(toolkit, lms_sandbox):
    result = toolkit.perform("create_user", {"email": "learner@sandbox.test"})

    assert result["id"] == "1001"
    assert len(lms_sandbox.snapshot()["coursetoolkit"]["users"]) == 1


def test_get_user_parses_course_permissions(toolkit):
    result = toolkit.perform("get_user", {"userid": 1001})

    assert result["id"] == "1001" and result["email"] == "learner@sandbox.test"
    assert result["courses"] == {"42": "all", "7": ["m1", "m2"]}
    assert result["permissions_raw"] == "42 all\n7 m1,m2" and result["unparsed_permissions"] == []


def test_remove_user_then_get_user_is_not_found_with_the_lms_text(toolkit, lms_sandbox):
    assert toolkit.perform("remove_user", {"userid": "1001"})["removed"] is True
    assert users_by_email(lms_sandbox) == {}

    with pytest.raises(LMSNotFound) as caught:
        toolkit.perform("get_user", {"userid": "1001"})
    assert "User not found" in str(caught.value) and caught.value.operation == "get_user"


def test_remove_user_by_an_email_the_bridge_created_checks_the_id_first(toolkit, lms_sandbox):
    created = toolkit.perform("create_user", {"email": "Kim@Example.com"})

    assert toolkit.perform("remove_user", {"email": "kim@example.com"}) == {
        "id": created["id"], "email": "kim@example.com", "removed": True, "reply": {"userid": created["id"]}}
    assert [call["body"]["api-action"] for call in lms_sandbox.calls()] == ["createuser", "getuser", "removeuser"]
    assert toolkit.identities.get("kim@example.com") is None


def test_remove_user_by_an_unknown_email_creates_nothing_and_is_skipped(toolkit, lms_sandbox):
    result = toolkit.perform("remove_user", {"email": "stranger@example.com"})

    assert result["removed"] is False and result["id"] is None
    assert "nothing to remove" in result["skipped"] and "stranger@example.com" in result["skipped"]
    assert lms_sandbox.calls() == [] and "stranger@example.com" not in users_by_email(lms_sandbox)


def test_remove_user_by_an_unknown_email_needs_attention_when_the_rule_says_so(toolkit, lms_sandbox):
    with pytest.raises(LMSNeedsAttention, match="stranger@example.com") as caught:
        toolkit.perform("remove_user", {"email": "stranger@example.com", "if_unknown": "needs-attention"})
    assert "bridge lms link toolkit stranger@example.com USER_ID" in caught.value.remedy
    assert lms_sandbox.calls() == []


@pytest.mark.parametrize("stale", ["9999", "1001"])  # an id the LMS no longer has; an id that is someone else's now
def test_remove_user_never_removes_by_an_id_the_lms_contradicts(toolkit, lms_sandbox, stale):
    toolkit.identities.remember("lou@example.com", stale)

    result = toolkit.perform("remove_user", {"email": "lou@example.com"})
    assert result["removed"] is False and "skipped" in result
    assert "learner@sandbox.test" in users_by_email(lms_sandbox)
    assert [call["body"]["api-action"] for call in lms_sandbox.calls()] == ["getuser"]
    assert toolkit.identities.get("lou@example.com") is None
    assert toolkit.identities.get("learner@sandbox.test") == ("1001" if stale == "1001" else None)


def test_get_user_by_a_known_email_only(toolkit, lms_sandbox):
    toolkit.perform("get_user", {"userid": "1001"})

    assert toolkit.perform("get_user", {"email": "LEARNER@sandbox.test"})["courses"]["42"] == "all"
    with pytest.raises(LMSNotFound, match="no coursetoolkit user id is known for 'new@example.com'"):
        toolkit.perform("get_user", {"email": "new@example.com"})
    assert [call["body"]["api-action"] for call in lms_sandbox.calls()] == ["getuser", "getuser"]


def test_ping_probes_with_a_userid_nobody_has(toolkit, lms_sandbox):
    assert toolkit.ping() == {"ok": True, "said": "response 4: User not found: '0'"}
    assert lms_sandbox.calls()[0]["body"]["userid"] == "0"


def test_a_web_page_instead_of_json_is_rejected(toolkit, lms_sandbox):
    lms_sandbox.fault(status=200, body="<html>Welcome to Course Toolkit</html>")

    with pytest.raises(LMSRejected) as caught:
        toolkit.perform("get_user", {"userid": "1001"})
    assert "not JSON" in str(caught.value) and not caught.value.retryable


def test_action_names_can_be_overridden(lms_sandbox, connectors):
    toolkit = connectors(NAME, spec(lms_sandbox.coursetoolkit_url, actions={"get_user": "fetchuser"}))

    with pytest.raises(LMSRejected, match="fetchuser"):
        toolkit.perform("get_user", {"userid": "1001"})


@pytest.mark.parametrize(("action", "params", "said"), [
    ("enroll", {"userid": "1"}, "unknown action"),
    ("get_user", {}, "needs one of 'userid', 'email'"),
    ("remove_user", {"userid": ""}, "needs one of 'userid', 'email'"),
    ("get_user", {"userid": "1", "course": "2"}, "unknown parameter 'course'"),
    ("create_user", {"email": "a@b.c", "api-key": "x"}, "'api-key' is set by the connector"),
])
def test_invalid_requests_are_refused_before_sending(toolkit, lms_sandbox, action, params, said):
    with pytest.raises(LMSRejected, match=said):
        toolkit.perform(action, params)
    assert lms_sandbox.calls() == []


@pytest.mark.parametrize(("change", "said"), [
    ({"api_key": None}, "missing key 'api_key'"),
    ({"apikey": "x"}, "unknown key 'apikey'"),
    ({"actions": {"delete_user": "x"}}, "'delete_user' was unexpected"),
    ({"timeout": -1}, "timeout"),
    ({"url": "www.example.com"}, "url"),
])
def test_bad_specs_name_the_connection_and_the_key(change, said):
    bad = {key: value for key, value in {**spec("https://lms.example"), **change}.items() if value is not None}

    with pytest.raises(ValueError, match=f"connection 'toolkit': .*{said}"):
        build_connector(NAME, bad)
    assert any(said in message for _, message in validate_connection_spec(bad))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, CONNECTION_SCHEMAS["coursetoolkit"])


def test_a_wrongly_typed_secret_is_not_echoed():
    with pytest.raises(ValueError) as caught:
        build_connector(NAME, spec("https://lms.example", api_key=987654321))
    assert "987654321" not in str(caught.value) and "'api_key'" in str(caught.value)


def test_good_specs_pass_the_schema_and_the_defaults_apply(connectors):
    good = {"type": "coursetoolkit", "api_user": 523098, "api_key": "k", "timeout": [1, 2]}

    jsonschema.validate(good, CONNECTION_SCHEMAS["coursetoolkit"])
    assert validate_connection_spec(good) == []
    toolkit = connectors(NAME, good)
    assert toolkit.url == "https://www.coursetoolkit.com/api" and toolkit.timeouts == (1.0, 2.0)
    assert CONNECTION_SCHEMAS["coursetoolkit"]["additionalProperties"] is False
    assert set(ACTIONS["coursetoolkit"]) == {"create_user", "remove_user", "get_user"}
    assert set(ACTIONS["coursebox"]) == {
        "create_user", "get_user", "update_user", "invite", "enroll", "unenroll", "remove_user", "list_courses",
        "get_course", "get_activity", "course_learners", "course_admins"}


def test_permission_lines_parse_with_oddities_kept_aside():
    courses, unparsed = parse_permissions("42 all\r\n7 m1, m2,\n\n  9 ALL\n13\n15 ,")

    assert courses == {"42": "all", "7": ["m1", "m2"], "9": "all"}
    assert unparsed == ["13", "15 ,"]


ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=8)


@given(st.dictionaries(ids, st.one_of(st.just("all"), st.lists(ids, min_size=1, max_size=4))))
def test_permission_lines_round_trip(courses):
    text = "\n".join(f"{course} {p if p == 'all' else ','.join(p)}" for course, p in courses.items())

    assert parse_permissions(text) == (courses, [])


@pytest.mark.parametrize(("status", "cls"), [
    (400, LMSRejected), (401, LMSAuthError), (403, LMSAuthError), (404, LMSNotFound), (409, LMSRejected),
    (422, LMSRejected), (429, LMSRateLimited), (500, LMSUnavailable), (503, LMSUnavailable),
])
def test_statuses_map_to_errors(status, cls):
    assert error_class(status) is cls
    assert issubclass(cls, LMSError) and cls.retryable == (cls in (LMSRateLimited, LMSUnavailable))


def test_retry_after_reads_seconds_and_dates():
    now = datetime(2025, 1, 1, 12, 0, tzinfo=timezone.utc)
    later = (now + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")

    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(later, now=now) == 90.0
    assert parse_retry_after("Wed, 01 Jan 2020 00:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_the_lms_package_never_imports_flask():
    # RQ work horses import bridge.lms; Flask there would cost every job its import time.
    for path in Path(__file__).resolve().parent.parent.joinpath("bridge", "lms").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(name.split(".")[0] in ("flask", "werkzeug") for name in names), path
