"""Coursebox: a JSON API behind an email/password login that hands out an X-Access-Token."""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Mapping

from bridge.lms.base import Connector, digest, find_list, find_value
from bridge.lms.coursebox_people import People
from bridge.lms.coursebox_spec import (  # noqa: F401 - ATTRIBUTES, UPDATE_FIELDS, snake: the rule fields' names
    ACTIONS,
    ATTRIBUTES,
    DEFAULTS,
    REMOVE_MODES,
    SCHEMA,
    UPDATE_FIELDS,
    as_number,
    id_list,
    segment,
    snake,
)
from bridge.lms.directory import Directory
from bridge.lms.errors import LMSAuthError, LMSError, LMSLoginHeld, LMSRejected
from bridge.lms.tokens import FIRST_BACKOFF, MAX_BACKOFF, LoginBackoff, SharedToken

log = logging.getLogger("bridge.lms")

class Coursebox(People, Connector):
    """A Coursebox organisation reached through an admin login."""

    type = "coursebox"
    actions = ACTIONS
    schema = SCHEMA
    defaults = DEFAULTS
    secret_keys = ("password",)
    learns_ids_from = " and course_learners lists"

    def __init__(self, name: str, spec: Mapping, redis=None, timeouts=None):
        super().__init__(name, spec, redis=redis, timeouts=timeouts)
        self.token_ttl = float(self.spec.get("token_ttl", DEFAULTS["token_ttl"]))
        # Keyed by url and login too, so a changed account in the rule files never reuses the old token.
        backoff = self.spec.get("login_backoff", {})
        first = float(backoff.get("first", FIRST_BACKOFF))
        self.token = SharedToken(self.store, f"bridge:lms:{name}:{digest(self.url, self.spec['email'])}:token",
                                 lock_ttl=sum(self.timeouts) + 5, first_backoff=first,
                                 max_backoff=max(first, float(backoff.get("max", MAX_BACKOFF))), failures=(LMSError,))
        self._tokens: deque[str] = deque(maxlen=4)  # kept only so error messages can scrub them
        self.directory = Directory(self)

    def secrets(self) -> list[str]:
        """Return the password and the tokens this connector used."""
        return super().secrets() + list(self._tokens)

    def login(self, operation: str = "login") -> tuple[str, float]:
        """Log in and return the token with the seconds to keep it."""
        body = {"email": self.spec["email"], "password": self.spec["password"]}
        reply = self.json(operation, self.request(operation, "POST", f"{self.url}/auth/login", json=body))
        token = find_value(reply, DEFAULTS["token_fields"])
        if token is None:
            raise self.error(LMSAuthError, operation, "the login reply carries no token "
                             f"(looked for {', '.join(DEFAULTS['token_fields'])})")
        if str(token) not in self._tokens:
            self._tokens.append(str(token))
        said = find_value(reply, DEFAULTS["token_ttl_fields"])
        ttl = min(self.token_ttl, float(said)) if isinstance(said, (int, float)) and said > 0 else self.token_ttl
        log.info("%s: logged in to Coursebox", self.name)
        return str(token), ttl

    def ping(self) -> dict:
        """Log in afresh (a cached token proves nothing about the password) and share the new token."""
        self.token.renew(lambda: self.login("ping: login"))
        return {"ok": True, "login": self.spec["email"]}

    def api(self, operation: str, method: str, path: str, secrets=(), **kwargs):
        """Call an endpoint with the shared token; on a 401 get a new token once and repeat."""
        if any(part in ("", ".", "..") for part in path.split("?")[0].split("/")[1:]):
            # An id of "." or ".." (or none) would name another endpoint once the URL is normalized.
            raise self.error(LMSRejected, operation, f"an id in {path!r} is empty, '.' or '..'; nothing was sent")
        def send(token: str):
            if token not in self._tokens:
                self._tokens.append(token)
            headers = {"X-Access-Token": token}
            return self.json(operation, self.request(operation, method, self.url + path, secrets,
                                                     headers=headers, **kwargs), secrets)

        def login():
            return self.login(f"{operation}: login")

        token = self.shared_token(operation, login)  # a refused login is final, so it stays outside the retry
        try:
            return send(token)
        except LMSAuthError as exc:
            if exc.http_status != 401:
                raise
        # Tokens expire or get revoked on the LMS side before our cached copy does.
        log.info("%s: token refused during %s; getting a new one", self.name, operation)
        try:
            return send(self.shared_token(operation, login, refused=token))
        except LMSAuthError as exc:
            if exc.http_status != 401:
                raise
            raise self.error(LMSAuthError, operation, f"{exc.detail} (even with a new token)",
                             http_status=401) from exc

    def shared_token(self, operation: str, login, refused: str | None = None) -> str:
        """Return the shared token; while logins fail, raise an error whose `held_for` makes the job wait."""
        try:
            return self.token.get(login, refused)
        except LoginBackoff as held:
            raise self.error(LMSLoginHeld, operation, f"the connection cannot log in now: {held}",
                             retry_after=held.retry_after) from None
        except LMSError as exc:
            state = self.token.backoff() or {"until": 0.0}
            exc.held_for = max(1.0, state["until"] - self.token.clock())
            raise

    def remember_users(self, users: list, id_fields=DEFAULTS["user_id_fields"]) -> int:
        """Teach the identity map every (email, id) pair of a list of users; return how many."""
        return self.identities.remember_all(
            (find_value(user, DEFAULTS["email_fields"]), find_value(user, id_fields))
            for user in users if isinstance(user, Mapping))

    def do_get_user(self, params: Mapping) -> dict:
        """Fetch a user by id or by email, and remember their email."""
        if params.get("user_id") in (None, ""):
            found = self.verified_user("get_user", params)
            if found is None:
                raise self.unknown("get_user", params["email"])
            user_id, reply = found
        else:
            user_id = str(params["user_id"])
            reply = self.api("get_user", "GET", f"/api/WineUsers/{segment(user_id)}")
        email = find_value(reply, DEFAULTS["email_fields"])
        self.identities.remember(email, user_id)
        return {"id": user_id, "email": email, "user": reply}

    def do_update_user(self, params: Mapping) -> dict:
        """Set the attributes a rule gives, and only those, with updateMainAttributes.

        Rule fields are the documented attributes in snake_case (`is_in_active` for `isInActive`). One
        that renders empty is not sent, so `default('')` leaves the attribute as it is (at least one must
        be left); a scalar `status` is sent as the one-element list the guide shows.
        """
        attributes = {UPDATE_FIELDS[key]: value for key, value in params.items()
                      if key in UPDATE_FIELDS and value != ""}
        if "status" in attributes and not isinstance(attributes["status"], list):
            attributes["status"] = [attributes["status"]]
        found = self.verified_user("update_user", params)
        if found is None:
            raise self.unknown("update_user", params["email"])
        return self.update("update_user", found[0], attributes)

    def update(self, operation: str, user_id: str, attributes: dict) -> dict:
        """Send one updateMainAttributes call."""
        body = {"id": as_number(user_id), "attributes": attributes}
        reply = self.api(operation, "POST", "/api/WineUsers/updateMainAttributes", params={"id": user_id}, json=body)
        return {"id": user_id, "updated": sorted(attributes), "user": reply}

    def do_invite(self, params: Mapping) -> dict:
        """Invite a person to a course by email."""
        course = as_number(params["course_id"])
        body = {
            "data": {"firstName": params.get("first_name", ""), "lastName": params.get("last_name", ""),
                     "courseid": course, "email": params["email"]},
            "courseId": course,
            "title": params.get("title", ""),
            "body": params.get("body", ""),
        }
        reply = self.api("invite", "POST", "/api/Courses/inviteUserForCourse", json=body)
        return {"course_id": str(params["course_id"]), "email": params["email"], "invited": True, "reply": reply}

    def do_enroll(self, params: Mapping) -> dict:
        """Enrol a user, given by id or by email, in a course."""
        course = params["course_id"]

        def send(user_id: str) -> dict:
            reply = self.api("enroll", "POST", f"/api/Courses/{segment(course)}/enrolUser",
                             json={"id": as_number(course), "userId": as_number(user_id)})
            return {"course_id": str(course), "user_id": user_id, "enrolled": True, "reply": reply}

        return self.with_user("enroll", params, send)

    def do_unenroll(self, params: Mapping) -> dict:
        """Remove a user, given by id or by email, from a course."""
        return self.with_user("unenroll", params, lambda user_id: self.unenroll("unenroll", user_id, params["course_id"]))

    def unenroll(self, operation: str, user_id: str, course) -> dict:
        """Send one unenrol call."""
        reply = self.api(operation, "DELETE", f"/api/Courses/{segment(course)}/users", params={"userid": user_id})
        return {"course_id": str(course), "user_id": user_id, "unenrolled": True, "reply": reply}

    def do_remove_user(self, params: Mapping) -> dict:
        """Remove a user the way the rule's `mode` says; Coursebox's API has no call that deletes an account.

        `unenroll` takes them out of every course of `course_ids` and leaves the account alone;
        `deactivate` sets `isInActive` and `delete` sets `isDeleted` with updateMainAttributes. The account
        stays in Coursebox either way, so the identity map keeps its email. Someone the bridge cannot find
        is skipped, or needs attention when the rule says `if_unknown: needs-attention`.
        """
        mode = str(params["mode"])
        courses = id_list(params.get("course_ids", ""))
        if mode == "unenroll" and not courses:
            raise self.error(LMSRejected, "remove_user", "mode 'unenroll' needs course_ids; nothing was sent")
        if mode not in REMOVE_MODES:
            raise self.error(LMSRejected, "remove_user", f"mode must be one of {', '.join(REMOVE_MODES)}, "
                             f"got {mode!r}; nothing was sent")
        found = self.verified_user("remove_user", params)
        if found is None:
            if params.get("if_unknown") == "needs-attention":
                raise self.unknown("remove_user", params["email"])
            return {"id": None, "email": params["email"], "mode": mode,
                    "skipped": f"no Coursebox account is known for {params['email']!r} and no course lists one: "
                               "nothing to remove"}
        user_id = found[0]
        if mode == "unenroll":
            done = [self.unenroll("remove_user", user_id, course)["reply"] for course in courses]
            return {"id": user_id, "mode": mode, "course_ids": courses, "replies": done}
        attribute = "isInActive" if mode == "deactivate" else "isDeleted"
        return {**self.update("remove_user", user_id, {attribute: True}), "mode": mode}

    def do_list_courses(self, params: Mapping) -> dict:
        """List the courses findCourses returns for `page_options` (the guide's {"my": true} by default)."""
        options = params.get("page_options", DEFAULTS["page_options"])
        if not isinstance(options, str):
            options = json.dumps(options, separators=(",", ":"))
        reply = self.api("list_courses", "GET", "/api/Courses/findCourses", params={"pageOptions": options})
        return {"courses": find_list(reply, DEFAULTS["list_fields"])}

    def do_get_course(self, params: Mapping) -> dict:
        """Fetch one course with findCourse."""
        reply = self.api("get_course", "GET", "/api/Courses/findCourse", params={"id": params["course_id"]})
        return {"course_id": str(params["course_id"]), "course": reply}

    def do_get_activity(self, params: Mapping) -> dict:
        """Fetch one activity (a page of course content)."""
        reply = self.api("get_activity", "GET", f"/api/Activities/{segment(params['activity_id'])}")
        return {"activity_id": str(params["activity_id"]), "activity": reply}

    def courses_for_scan(self) -> list:
        """Return the courses findCourses lists, for a directory scan."""
        return self.do_list_courses({})["courses"]

    def course_people(self, course) -> list[tuple[str, str]]:
        """Return (email, id) of a course's learners and administrators (the directory remembers them)."""
        groups = ((self.learners("course_learners", course), DEFAULTS["learner_id_fields"]),
                  (self.admins("course_admins", course), DEFAULTS["user_id_fields"]))
        pairs = [(find_value(user, DEFAULTS["email_fields"]), find_value(user, id_fields))
                 for users, id_fields in groups for user in users if isinstance(user, Mapping)]
        return [(str(email), str(user_id)) for email, user_id in pairs
                if email not in (None, "") and user_id not in (None, "")]

    def learners(self, operation: str, course) -> list:
        """Fetch a course's learner list."""
        reply = self.api(operation, "GET", f"/api/Courses/{segment(course)}/allLearners")
        return find_list(reply, DEFAULTS["list_fields"])

    def admins(self, operation: str, course) -> list:
        """Fetch a course's administrators with getUserForMentio."""
        query = json.dumps({"all": True, "ids": str(course)}, separators=(",", ":"))
        reply = self.api(operation, "GET", "/api/WineUsers/getUserForMentio", params={"params": query})
        return find_list(reply, DEFAULTS["list_fields"])

    def do_course_learners(self, params: Mapping) -> dict:
        """List a course's learners, teaching the identity map each one's email."""
        learners = self.learners("course_learners", params["course_id"])
        remembered = self.remember_users(learners, DEFAULTS["learner_id_fields"])
        return {"course_id": str(params["course_id"]), "learners": learners, "remembered": remembered}

    def do_course_admins(self, params: Mapping) -> dict:
        """List a course's administrators (getUserForMentio), teaching the identity map their emails too."""
        admins = self.admins("course_admins", params["course_id"])
        return {"course_id": str(params["course_id"]), "admins": admins, "remembered": self.remember_users(admins)}
