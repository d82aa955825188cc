"""Coursebox connector against the sandbox over real HTTP: a contract test for every operation."""

from __future__ import annotations

import json

import pytest
import requests

from bridge.lms import ACTIONS, LMSNotFound, LMSRejected, build_connector
from bridge.lms.errors import LMSNeedsAttention
from bridge.lms.coursebox import ATTRIBUTES, UPDATE_FIELDS, Coursebox, snake
from bridge.lms.coursebox_spec import segment
from bridge.sandbox import COURSEBOX_EMAIL, COURSEBOX_PASSWORD
from tests.lms_helpers import connectors, coursebox, live_sandbox, lms_sandbox  # noqa: F401
from tests.lms_helpers import coursebox_spec as spec

NAME = "coursebox"


def box_users(sandbox) -> dict:
    return {user["email"]: user for user in sandbox.snapshot()["coursebox"]["users"]}


def made_outside_the_bridge(sandbox, email: str, course: int) -> int:
    """Create and enrol a user straight through the sandbox's API, as the LMS's own admin screens would."""
    token = requests.post(f"{sandbox.coursebox_url}/auth/login", timeout=5,
                          json={"email": COURSEBOX_EMAIL, "password": COURSEBOX_PASSWORD}).json()["token"]["id"]
    auth = {"X-Access-Token": token}
    user = {"firstName": "Out", "lastName": "Side", "email": email, "password": "pw-123456"}
    uid = requests.post(f"{sandbox.coursebox_url}/api/wineusers/createAccount", headers=auth, timeout=5,
                        json={"data": {"user": user}}).json()["id"]
    requests.post(f"{sandbox.coursebox_url}/api/Courses/{course}/enrolUser", headers=auth, timeout=5,
                  json={"id": course, "userId": uid}).raise_for_status()
    sandbox.control("DELETE", "/calls")
    return uid


def test_create_user_creates_an_account_without_returning_the_password(coursebox, lms_sandbox):
    result = coursebox.perform("create_user", {"email": "Ann@Example.com", "first_name": "Ann", "last_name": "Lee"})

    assert result["created"] is True and result["email"] == "Ann@Example.com" and result["password_generated"]
    assert "password" not in result
    user = box_users(lms_sandbox)["Ann@Example.com"]
    assert str(user["id"]) == result["id"] and user["firstName"] == "Ann"
    [call] = lms_sandbox.calls("createAccount")
    assert call["body"]["data"]["user"]["password"] == "***" and call["body"]["data"]["marketingEmails"] is False
    assert call["headers"]["X-Access-Token"] == "***"


def test_create_user_for_a_known_email_makes_no_second_account(coursebox, lms_sandbox):
    first = coursebox.perform("create_user", {"email": "ann@example.com"})
    second = coursebox.perform("create_user", {"email": " ANN@example.com"})

    assert second == {"id": first["id"], "email": "ANN@example.com", "created": False}
    assert len(lms_sandbox.calls("createAccount")) == 1


def test_create_user_of_an_account_made_elsewhere_finds_it_in_a_course(coursebox, lms_sandbox):
    uid = made_outside_the_bridge(lms_sandbox, "out@example.com", 13)

    result = coursebox.perform("create_user", {"email": "out@example.com"})
    assert result == {"id": str(uid), "email": "out@example.com", "created": False,
                      "found_by": "the account's course lists"}
    assert coursebox.identities.get("OUT@example.com") == str(uid)


def test_get_user_by_id_and_by_known_email(coursebox, lms_sandbox):
    by_id = coursebox.perform("get_user", {"user_id": 1})
    by_email = coursebox.perform("get_user", {"email": COURSEBOX_EMAIL.upper()})

    assert by_id["id"] == by_email["id"] == "1" and by_id["user"]["isAdmin"] is True
    assert by_email["email"] == COURSEBOX_EMAIL
    assert [call["path"] for call in lms_sandbox.calls("WineUsers")] == ["/sandbox/coursebox/api/WineUsers/1"] * 2


def test_update_user_sends_only_the_attributes_a_rule_sets(coursebox, lms_sandbox):
    uid = coursebox.perform("create_user", {"email": "dee@example.com"})["id"]

    result = coursebox.perform("update_user", {"email": "DEE@example.com", "title": "Chef", "is_vip_approved": True,
                                               "zip_code": "", "status": "active", "profile": {"background": "x"}})
    assert result["updated"] == ["isVIPApproved", "profile", "status", "title"]
    [call] = lms_sandbox.calls("updateMainAttributes")
    assert call["query"] == {"id": uid}
    assert call["body"] == {"id": int(uid), "attributes": {"title": "Chef", "isVIPApproved": True, "status": ["active"],
                                                            "profile": {"background": "x"}}}
    stored = box_users(lms_sandbox)["dee@example.com"]
    assert stored["title"] == "Chef" and stored["isVIPApproved"] is True and "zipCode" not in stored


def test_update_user_refuses_unknown_fields_naming_the_known_ones(coursebox, lms_sandbox):
    with pytest.raises(LMSRejected) as caught:
        coursebox.perform("update_user", {"user_id": 1, "titel": "Chef"})
    message = str(caught.value)
    assert "needs one of 'realm', 'email_verified', 'full_name', 'first_name', 'last_name', 'title', … (74 in all)" \
        in message
    assert "unknown parameter 'titel', did you mean 'title'? (known: " in message and "is_in_active" in message
    assert message.endswith("; nothing was sent")
    with pytest.raises(LMSRejected, match=r"needs one of 'realm', .* \(74 in all\)"):
        coursebox.perform("update_user", {"user_id": 1, "title": ""})
    assert lms_sandbox.calls() == []


def test_every_documented_attribute_has_one_rule_field():
    assert len(UPDATE_FIELDS) == len(ATTRIBUTES) == 74
    assert snake("isInActive") == "is_in_active" and snake("isVIP") == "is_vip" and snake("linkedIn") == "linked_in"
    assert "email" not in UPDATE_FIELDS and "id" not in UPDATE_FIELDS and UPDATE_FIELDS["new_email"] == "newEmail"


def test_invite_reaches_the_course(coursebox, lms_sandbox):
    result = coursebox.perform("invite", {"course_id": "42", "email": "bo@example.com", "first_name": "Bo"})

    assert result["invited"] is True and result["course_id"] == "42"
    [invite] = lms_sandbox.snapshot()["coursebox"]["invites"]
    assert invite["courseId"] == 42 and invite["email"] == "bo@example.com" and invite["firstName"] == "Bo"
    [call] = lms_sandbox.calls("inviteUserForCourse")
    assert call["body"]["data"]["courseid"] == 42 and call["body"]["courseId"] == 42


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


def test_enroll_by_an_unknown_email_needs_attention_after_reading_the_courses(coursebox, lms_sandbox):
    with pytest.raises(LMSNeedsAttention, match="nobody@example.com.*no course of the account lists them") as caught:
        coursebox.perform("enroll", {"course_id": "42", "email": "nobody@example.com"})
    assert caught.value.email == "nobody@example.com" and not caught.value.retryable
    assert "bridge lms link coursebox nobody@example.com USER_ID" in caught.value.remedy
    assert not lms_sandbox.calls("enrolUser")


def test_list_courses_sends_the_documented_page_options(coursebox, lms_sandbox):
    courses = coursebox.perform("list_courses", {})["courses"]

    assert {course["title"] for course in courses} == {"Onboarding", "Food Safety", "Customer Service"}
    assert json.loads(lms_sandbox.calls("findCourses")[0]["query"]["pageOptions"]) == {"my": True}
    coursebox.perform("list_courses", {"page_options": {"my": False, "page": 2}})
    assert json.loads(lms_sandbox.calls("findCourses")[1]["query"]["pageOptions"]) == {"my": False, "page": 2}


def test_get_course_and_get_activity(coursebox, lms_sandbox):
    assert coursebox.perform("get_course", {"course_id": 7})["course"]["title"] == "Food Safety"
    assert lms_sandbox.calls("/findCourse")[0]["query"] == {"id": "7"}
    activity = coursebox.perform("get_activity", {"activity_id": "501"})
    assert activity["activity_id"] == "501" and activity["activity"]["courseId"] == 42
    with pytest.raises(LMSNotFound, match='Unknown "Course" id "99"'):
        coursebox.perform("get_course", {"course_id": 99})
    with pytest.raises(LMSNotFound, match='Unknown "Activity" id "9"'):
        coursebox.perform("get_activity", {"activity_id": 9})


def test_course_learners_teach_the_identity_map(coursebox, lms_sandbox):
    uid = made_outside_the_bridge(lms_sandbox, "Eve@Example.com", 42)

    result = coursebox.perform("course_learners", {"course_id": 42})
    assert [learner["id"] for learner in result["learners"]] == [uid] and result["remembered"] == 1
    again = coursebox.perform("create_user", {"email": "eve@example.com"})
    assert again == {"id": str(uid), "email": "eve@example.com", "created": False}
    coursebox.perform("remove_user", {"email": "eve@example.com", "mode": "deactivate"})
    assert box_users(lms_sandbox)["Eve@Example.com"]["isInActive"] is True
    assert lms_sandbox.calls("createAccount") == []


def test_course_admins_use_the_documented_params(coursebox, lms_sandbox):
    result = coursebox.perform("course_admins", {"course_id": 42})

    assert [admin["email"] for admin in result["admins"]] == [COURSEBOX_EMAIL]
    [call] = lms_sandbox.calls("getUserForMentio")
    assert json.loads(call["query"]["params"]) == {"all": True, "ids": "42"}


@pytest.mark.parametrize(("mode", "attribute"), [("deactivate", "isInActive"), ("delete", "isDeleted")])
def test_remove_user_by_flag_keeps_the_account(coursebox, lms_sandbox, mode, attribute):
    uid = coursebox.perform("create_user", {"email": "fay@example.com"})["id"]

    result = coursebox.perform("remove_user", {"email": "fay@example.com", "mode": mode})
    assert result["mode"] == mode and result["updated"] == [attribute]
    assert lms_sandbox.calls("updateMainAttributes")[0]["body"] == {"id": int(uid), "attributes": {attribute: True}}
    assert box_users(lms_sandbox)["fay@example.com"][attribute] is True
    assert coursebox.perform("create_user", {"email": "fay@example.com"})["created"] is False


def test_remove_user_by_unenrolling_from_given_courses(coursebox, lms_sandbox):
    uid = coursebox.perform("create_user", {"email": "gus@example.com"})["id"]
    for course in (42, 7, 13):
        coursebox.perform("enroll", {"course_id": course, "user_id": uid})

    result = coursebox.perform("remove_user", {"user_id": uid, "mode": "unenroll", "course_ids": "42, 7"})
    assert result["course_ids"] == ["42", "7"] and [reply["count"] for reply in result["replies"]] == [1, 1]
    assert lms_sandbox.snapshot()["coursebox"]["enrollments"] == {"42": [], "7": [], "13": [int(uid)]}
    coursebox.perform("remove_user", {"email": "gus@example.com", "mode": "unenroll", "course_ids": [13]})
    assert lms_sandbox.snapshot()["coursebox"]["enrollments"]["13"] == []
    assert "gus@example.com" in box_users(lms_sandbox)


@pytest.mark.parametrize(("params", "said"), [
    ({"user_id": 1, "mode": "unenroll"}, "mode 'unenroll' needs course_ids"),
    ({"user_id": 1, "mode": "erase"}, "'mode' must be one of 'unenroll', 'deactivate', 'delete', got 'erase'"),
    ({"user_id": 1}, "missing required parameter 'mode'"),
    ({"mode": "delete"}, "needs one of 'user_id', 'email'"),
])
def test_remove_user_is_refused_before_sending_when_incomplete(coursebox, lms_sandbox, params, said):
    with pytest.raises(LMSRejected, match=said):
        coursebox.perform("remove_user", params)
    assert lms_sandbox.calls() == []


def test_rule_checks_leave_templated_choices_to_run_time():
    remove = ACTIONS["coursebox"]["remove_user"]

    assert remove.problems({"email": "{{ body.email }}", "mode": "{{ body.mode }}"}) == []
    assert remove.problems({"email": "{{ body.email }}", "mode": "deactivte"}) == [
        "parameter 'mode' must be one of 'unenroll', 'deactivate', 'delete', got 'deactivte'"]
    assert remove.problems(["email", "mode"]) == []


def test_unknown_course_and_user_are_not_found(coursebox):
    with pytest.raises(LMSNotFound, match="HTTP 404"):
        coursebox.perform("enroll", {"course_id": "999", "user_id": "1"})
    with pytest.raises(LMSNotFound, match='Unknown "WineUser" id "555"'):
        coursebox.perform("get_user", {"user_id": "555"})


def test_an_existing_administrator_is_found_among_the_course_administrators(coursebox):
    assert coursebox.perform("create_user", {"email": COURSEBOX_EMAIL})["id"] == "1"


def test_ping_logs_in_afresh(coursebox, lms_sandbox):
    coursebox.perform("get_user", {"user_id": 1})

    assert coursebox.ping() == {"ok": True, "login": COURSEBOX_EMAIL}
    assert len(lms_sandbox.calls("/auth/login")) == 2


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


@pytest.mark.parametrize("user_id", ["..", ".", ""])
def test_an_id_that_would_name_another_endpoint_is_refused_before_sending(coursebox, lms_sandbox, user_id):
    with pytest.raises(LMSRejected, match="is empty, '.' or '..'; nothing was sent"):
        coursebox.api("get_user", "GET", f"/api/WineUsers/{segment(user_id)}")
    assert not [call for call in lms_sandbox.calls() if "/api/WineUsers/" in call["path"]]


def test_credentials_in_the_url_setting_never_reach_a_message():
    from bridge.lms.errors import LMSUnavailable

    connector = Coursebox("cb", {"type": "coursebox", "url": "http://someone:pw-in-url@127.0.0.1:9/cb",
                                 "email": "a@b.test", "password": "cb-password-1"}, timeouts=(1, 1))
    with pytest.raises(LMSUnavailable) as caught:
        connector.api("get_user", "GET", "/api/WineUsers/1")
    assert "pw-in-url" not in str(caught.value) and "someone" not in str(caught.value) and "127.0.0.1" in str(caught.value)
    assert "pw-in-url" not in repr(connector)
