"""Finding people in Coursebox: existing accounts, contradicted ids, lost replies, rehires, removals that find nobody."""

from __future__ import annotations

import pytest

from bridge.lms.errors import LMSNeedsAttention, LMSUnavailable
from bridge.sandbox import COURSEBOX_EMAIL
from tests.lms_helpers import connectors, coursebox, live_sandbox, lms_sandbox  # noqa: F401
from tests.test_lms_coursebox import box_users, made_outside_the_bridge


def paths(sandbox, contains: str = "") -> list[str]:
    return [call["path"].removeprefix("/sandbox/coursebox") for call in sandbox.calls(contains)]


def test_an_existing_learner_is_found_once_and_a_burst_of_unknown_emails_costs_one_scan(coursebox, lms_sandbox):
    uid = made_outside_the_bridge(lms_sandbox, "old@example.com", 7)

    assert coursebox.perform("enroll", {"course_id": 42, "email": "Old@Example.com"})["user_id"] == str(uid)
    for email in ("a@example.com", "b@example.com"):
        with pytest.raises(LMSNeedsAttention):
            coursebox.perform("enroll", {"course_id": 42, "email": email})
    # One scan stopped at the course that lists old@example.com; one complete scan for a@; none for b@.
    assert len(lms_sandbox.calls("findCourses")) == 2
    assert lms_sandbox.snapshot()["coursebox"]["enrollments"]["42"] == [uid]


def test_an_account_no_course_lists_needs_attention_and_a_link_resolves_it(coursebox, lms_sandbox):
    uid = made_outside_the_bridge(lms_sandbox, "solo@example.com", 13)
    lms_sandbox.state.enrollments["13"].clear()  # enrolled nowhere now: no list shows them

    with pytest.raises(LMSNeedsAttention) as caught:
        coursebox.perform("create_user", {"email": "solo@example.com"})
    said = caught.value.to_dict()
    assert said["email"] == "solo@example.com" and said["connection"] == "coursebox"
    assert "Email already exists" in said["detail"]
    assert said["remedy"].startswith("find the user's id in the LMS, then run "
                                     "`bridge lms link coursebox solo@example.com USER_ID`")
    coursebox.identities.remember("solo@example.com", uid)  # what `bridge lms link` does, after checking
    assert coursebox.perform("create_user", {"email": "solo@example.com"})["id"] == str(uid)


def test_an_id_the_lms_shows_under_another_email_is_never_used_for_this_person(coursebox, lms_sandbox):
    coursebox.identities.remember("ann@example.com", "1")  # wrong: 1 is the administrator

    created = coursebox.perform("create_user", {"email": "ann@example.com"})
    assert created["created"] is True and created["id"] != "1"
    assert coursebox.identities.get("ann@example.com") == created["id"]
    assert coursebox.identities.get(COURSEBOX_EMAIL) == "1"
    assert not lms_sandbox.calls("updateMainAttributes")


def test_removal_by_an_id_that_contradicts_the_lms_deactivates_nobody_else(coursebox, lms_sandbox):
    coursebox.identities.remember("leaver@example.com", "1")

    result = coursebox.perform("remove_user", {"email": "leaver@example.com", "mode": "deactivate"})
    assert result["skipped"].startswith("no Coursebox account is known for 'leaver@example.com'")
    assert not lms_sandbox.calls("updateMainAttributes") and not box_users(lms_sandbox)[COURSEBOX_EMAIL].get("isInActive")
    with pytest.raises(LMSNeedsAttention, match="leaver@example.com"):
        coursebox.perform("remove_user", {"email": "leaver@example.com", "mode": "deactivate",
                                          "if_unknown": "needs-attention"})


def test_enroll_with_an_id_the_lms_no_longer_has_relearns_it(coursebox, lms_sandbox):
    uid = made_outside_the_bridge(lms_sandbox, "moved@example.com", 7)
    coursebox.identities.remember("moved@example.com", "999")

    assert coursebox.perform("enroll", {"course_id": 42, "email": "moved@example.com"})["user_id"] == str(uid)
    assert lms_sandbox.snapshot()["coursebox"]["enrollments"]["42"] == [uid]
    assert paths(lms_sandbox, "enrolUser") == ["/api/Courses/42/enrolUser"] * 2


def test_an_unknown_course_is_not_mistaken_for_an_unknown_user(coursebox, lms_sandbox):
    created = coursebox.perform("create_user", {"email": "cy@example.com"})

    with pytest.raises(Exception, match='Unknown "Course" id "999"'):
        coursebox.perform("enroll", {"course_id": 999, "email": "cy@example.com"})
    assert coursebox.identities.get("cy@example.com") == created["id"]


def test_rehire_reactivates_the_account(coursebox, lms_sandbox):
    hired = coursebox.perform("create_user", {"email": "re@example.com"})
    coursebox.perform("remove_user", {"email": "re@example.com", "mode": "deactivate"})
    assert box_users(lms_sandbox)["re@example.com"]["isInActive"] is True

    again = coursebox.perform("create_user", {"email": "re@example.com"})
    assert again == {"id": hired["id"], "email": "re@example.com", "created": False, "reactivated": ["isInActive"]}
    assert box_users(lms_sandbox)["re@example.com"]["isInActive"] is False
    [update] = [call for call in lms_sandbox.calls("updateMainAttributes")][-1:]
    assert update["body"]["attributes"] == {"isInActive": False}
    assert len(lms_sandbox.calls("createAccount")) == 1


def test_a_lost_create_account_reply_finds_the_new_account_and_creates_no_second(coursebox, lms_sandbox):
    lms_sandbox.fault(drop="after", path="createAccount")

    with pytest.raises(LMSUnavailable, match="closed the connection without a reply"):
        coursebox.perform("create_user", {"email": "lost@example.com"})
    made = box_users(lms_sandbox)["lost@example.com"]  # Coursebox did create it
    result = coursebox.perform("create_user", {"email": "lost@example.com"})  # the job's retry
    assert result["id"] == str(made["id"]) and result["created"] is False
    assert result["found_by"] == "logging in to the account the bridge created"
    assert len(box_users(lms_sandbox)) == 2 and [c["dropped"] for c in lms_sandbox.calls("createAccount")] == [True, False]
    assert coursebox.store.get(coursebox.creating_key("lost@example.com")) is None


def test_an_account_made_elsewhere_is_never_logged_in_to(coursebox, lms_sandbox):
    made_outside_the_bridge(lms_sandbox, "else@example.com", 13)

    assert coursebox.perform("create_user", {"email": "else@example.com"})["created"] is False
    logins = [call["body"]["email"] for call in lms_sandbox.calls("/auth/login")]
    assert logins == [COURSEBOX_EMAIL]
