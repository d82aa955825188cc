"""Coursebox: a JSON API behind an email/password login that hands out an X-Access-Token."""

from __future__ import annotations

import json
import logging
import re
import secrets as secrets_module
from collections import deque
from collections.abc import Mapping
from urllib.parse import quote

from bridge.lms.base import (
    ActionSpec,
    Connector,
    connection_schema,
    digest,
    find_list,
    find_value,
)
from bridge.lms.errors import LMSAuthError, LMSRejected
from bridge.lms.identity import normal
from bridge.lms.store import locked
from bridge.lms.tokens import SharedToken

log = logging.getLogger("bridge.lms")

# Everything the public API guide leaves out lives here, so a wrong guess is fixed in one place.
DEFAULTS = {
    # Assumption: the guide gives paths only, never the host.
    "url": "https://api.coursebox.ai",
    # Seconds a login token is reused; the guide advises short-lived tokens and states no lifetime.
    # A shorter `ttl` in the login reply (LoopBack sends one) wins.
    "token_ttl": 3600,
    # The guide says the login reply carries the token "in token:id parameter".
    "token_fields": ("token.id", "id"),
    "token_ttl_fields": ("token.ttl", "ttl"),
    # Assumption: reply shapes of createAccount, WineUsers/<id> and the lists are undocumented.
    "user_id_fields": ("id", "user.id", "data.id", "data.user.id"),
    "email_fields": ("email", "user.email", "data.email", "data.user.email"),
    # A learner list item may be an enrolment that names its user: its own `id` would be the enrolment's.
    "learner_id_fields": ("userId", "user.id", "id"),
    "list_fields": ("", "data", "rows", "items", "learners", "users", "courses"),
    # The guide's example sends marketingEmails true; we never opt people in on their behalf.
    "marketing_emails": False,
    "is_18_plus": True,
    # The guide's only example of findCourses.
    "page_options": {"my": True},
}

# The attributes updateMainAttributes documents, minus `id` (named by user_id) and `email` (which names
# the user in a rule, as in enroll; the guide's `newEmail` is the one to set).
ATTRIBUTES = (
    "realm emailVerified fullName firstName lastName title contactNumber dateOfBirth headline avatarUrl "
    "profile country city location region state zipCode status rate rateAdditionalTax price currency "
    "additionalTax isDiscountCodeUsed calendlyLink personalSite companySite linkedIn twitter facebookLink "
    "instagramLink facebookId googleId linkedinId appleId customerId stripeId isDeleted isPlatformUpdates "
    "isAdmin isExpertRequested isExpertApproved organisationCode isVIPRequested isVIPApproved "
    "isChannelPublished isCoursePublished newEmail isSideBarVisible isTopBarVisible channelsPageTabs "
    "peoplePageTabs elibraryPageTabs resourcesPageTabs lastActiveAt isInActive isTrial inIframe referer "
    "username credentials challenges created lastUpdated createdAt updatedAt isUserAdmin isVIP isBoxer isPro "
    "isApprovedExpert isExpert isLearner isFollowed"
).split()


def snake(name: str) -> str:
    """Spell a camelCase attribute the way rule fields are spelt: isVIPApproved -> is_vip_approved."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


UPDATE_FIELDS = {snake(name): name for name in ATTRIBUTES}  # rule field -> documented attribute
REMOVE_MODES = ("unenroll", "deactivate", "delete")
USER = (("user_id", "email"),)

ACTIONS = {
    "create_user": ActionSpec(required=("email",), optional=("first_name", "last_name", "password")),
    "get_user": ActionSpec(optional=USER[0], any_of=USER),
    "update_user": ActionSpec(optional=(*USER[0], *UPDATE_FIELDS), any_of=(*USER, tuple(UPDATE_FIELDS))),
    "invite": ActionSpec(required=("course_id", "email"), optional=("first_name", "last_name", "title", "body")),
    "enroll": ActionSpec(required=("course_id",), optional=USER[0], any_of=USER),
    "unenroll": ActionSpec(required=("course_id",), optional=USER[0], any_of=USER),
    "remove_user": ActionSpec(required=("mode",), optional=(*USER[0], "course_ids"), any_of=USER,
                              choices=(("mode", REMOVE_MODES),)),
    "list_courses": ActionSpec(optional=("page_options",)),
    "get_course": ActionSpec(required=("course_id",)),
    "get_activity": ActionSpec(required=("activity_id",)),
    "course_learners": ActionSpec(required=("course_id",)),
    "course_admins": ActionSpec(required=("course_id",)),
}

SCHEMA = connection_schema(
    "coursebox",
    {
        "email": {"type": "string", "minLength": 1},
        "password": {"type": "string", "minLength": 1},
        "token_ttl": {"type": "number", "exclusiveMinimum": 0},
    },
    required=("email", "password"),
)


def as_number(value):
    """Send an all-digit id as a number, as the guide's unquoted <courseid>/<userid> show."""
    return int(value) if isinstance(value, str) and value.isdigit() else value


def segment(value) -> str:
    """Quote an id for use as one URL path segment."""
    return quote(str(value), safe="")


def id_list(value) -> list[str]:
    """Read course ids given as a list, a number, or text separated by commas or spaces."""
    items = value if isinstance(value, (list, tuple)) else re.split(r"[\s,]+", str(value))
    return [str(item).strip() for item in items if str(item).strip()]


class Coursebox(Connector):
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
        self.token = SharedToken(self.store, f"bridge:lms:{name}:{digest(self.url, self.spec['email'])}:token",
                                 lock_ttl=sum(self.timeouts) + 5)
        self._tokens: deque[str] = deque(maxlen=4)  # kept only so error messages can scrub them

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
        def send(token: str):
            if token not in self._tokens:
                self._tokens.append(token)
            headers = {"X-Access-Token": token}
            return self.json(operation, self.request(operation, method, self.url + path, secrets,
                                                     headers=headers, **kwargs), secrets)

        def login():
            return self.login(f"{operation}: login")

        token = self.token.get(login)  # a refused login is final, so it stays outside the retry
        try:
            return send(token)
        except LMSAuthError as exc:
            if exc.http_status != 401:
                raise
        # Tokens expire or get revoked on the LMS side before our cached copy does.
        log.info("%s: token refused during %s; getting a new one", self.name, operation)
        try:
            return send(self.token.get(login, refused=token))
        except LMSAuthError as exc:
            if exc.http_status != 401:
                raise
            raise self.error(LMSAuthError, operation, f"{exc.detail} (even with a new token)",
                             http_status=401) from exc

    def remember_users(self, users: list, id_fields=DEFAULTS["user_id_fields"]) -> int:
        """Teach the identity map every (email, id) pair of a list of users; return how many."""
        return self.identities.remember_all(
            (find_value(user, DEFAULTS["email_fields"]), find_value(user, id_fields))
            for user in users if isinstance(user, Mapping))

    def do_create_user(self, params: Mapping) -> dict:
        """Create the user unless the identity map already knows the email."""
        email = str(params["email"]).strip()
        # Two purchases by one buyer may run at once: the second must wait and find the first's account.
        with locked(self.store, f"{self.identities.key}:{normal(email)}:lock", 2 * sum(self.timeouts) + 5):
            known = self.identities.get(email)
            if known is not None:
                return {"id": known, "email": email, "created": False}
            return self.create_account(email, params)

    def create_account(self, email: str, params: Mapping) -> dict:
        """Send createAccount and remember the new id."""
        password = params.get("password") or secrets_module.token_urlsafe(18)
        user = {"firstName": params.get("first_name", ""), "lastName": params.get("last_name", ""),
                "email": email, "password": password}
        body = {"data": {"user": user, "offerCode": "", "marketingEmails": DEFAULTS["marketing_emails"],
                         "is18Plus": DEFAULTS["is_18_plus"]}}
        try:
            reply = self.api("create_user", "POST", "/api/wineusers/createAccount", secrets=[password], json=body)
        except LMSRejected as exc:
            if "exist" not in exc.detail.lower():
                raise
            raise self.error(LMSRejected, "create_user", f"{exc.detail} (an account this bridge did not create: "
                             "it cannot look ids up by email, but `bridge lms learners` on a course of theirs "
                             "teaches it the id)", http_status=exc.http_status) from exc
        user_id = find_value(reply, DEFAULTS["user_id_fields"])
        if user_id is None:
            raise self.error(LMSRejected, "create_user", "the reply carries no user id (looked for "
                             f"{', '.join(DEFAULTS['user_id_fields'])})", [password])
        self.identities.remember(email, user_id)
        # The password is never returned: results are stored with the job, and Coursebox can reset it.
        return {"id": str(user_id), "email": email, "created": True,
                "first_name": user["firstName"], "last_name": user["lastName"],
                "password_generated": not params.get("password")}

    def do_get_user(self, params: Mapping) -> dict:
        """Fetch a user by id or known email, and remember their email."""
        user_id = self.user_id("get_user", params)
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
        return self.update("update_user", self.user_id("update_user", params), attributes)

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
        """Enrol a user, given by id or by an email the identity map knows, in a course."""
        user_id, course = self.user_id("enroll", params), params["course_id"]
        reply = self.api("enroll", "POST", f"/api/Courses/{segment(course)}/enrolUser",
                         json={"id": as_number(course), "userId": as_number(user_id)})
        return {"course_id": str(course), "user_id": user_id, "enrolled": True, "reply": reply}

    def do_unenroll(self, params: Mapping) -> dict:
        """Remove a user, given by id or by a known email, from a course."""
        return self.unenroll("unenroll", self.user_id("unenroll", params), params["course_id"])

    def unenroll(self, operation: str, user_id: str, course) -> dict:
        """Send one unenrol call."""
        reply = self.api(operation, "DELETE", f"/api/Courses/{segment(course)}/users", params={"userid": user_id})
        return {"course_id": str(course), "user_id": user_id, "unenrolled": True, "reply": reply}

    def do_remove_user(self, params: Mapping) -> dict:
        """Remove a user the way the rule's `mode` says; Coursebox's API has no call that deletes an account.

        `unenroll` takes them out of every course of `course_ids` and leaves the account alone;
        `deactivate` sets `isInActive` and `delete` sets `isDeleted` with updateMainAttributes. The account
        stays in Coursebox either way, so the identity map keeps its email.
        """
        mode = str(params["mode"])
        courses = id_list(params.get("course_ids", ""))
        if mode == "unenroll" and not courses:
            raise self.error(LMSRejected, "remove_user", "mode 'unenroll' needs course_ids; nothing was sent")
        if mode not in REMOVE_MODES:
            raise self.error(LMSRejected, "remove_user", f"mode must be one of {', '.join(REMOVE_MODES)}, "
                             f"got {mode!r}; nothing was sent")
        user_id = self.user_id("remove_user", params)
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

    def do_course_learners(self, params: Mapping) -> dict:
        """List a course's learners, teaching the identity map each one's email."""
        course = params["course_id"]
        reply = self.api("course_learners", "GET", f"/api/Courses/{segment(course)}/allLearners")
        learners = find_list(reply, DEFAULTS["list_fields"])
        remembered = self.remember_users(learners, DEFAULTS["learner_id_fields"])
        return {"course_id": str(course), "learners": learners, "remembered": remembered}

    def do_course_admins(self, params: Mapping) -> dict:
        """List a course's administrators (getUserForMentio), teaching the identity map their emails too."""
        course = params["course_id"]
        query = json.dumps({"all": True, "ids": str(course)}, separators=(",", ":"))
        admins = find_list(self.api("course_admins", "GET", "/api/WineUsers/getUserForMentio",
                                    params={"params": query}), DEFAULTS["list_fields"])
        return {"course_id": str(course), "admins": admins, "remembered": self.remember_users(admins)}
