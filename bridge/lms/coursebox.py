"""Coursebox: a JSON API behind an email/password login that hands out an X-Access-Token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
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
from bridge.lms.directory import Directory
from bridge.lms.errors import (
    LMSAuthError,
    LMSError,
    LMSLoginHeld,
    LMSNeedsAttention,
    LMSNotFound,
    LMSRejected,
)
from bridge.lms.identity import normal
from bridge.lms.store import locked
from bridge.lms.tokens import FIRST_BACKOFF, MAX_BACKOFF, LoginBackoff, SharedToken

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
    # Assumption: LoopBack's login reply names the user it logged in; used only to find an account whose
    # createAccount reply was lost, and the account is checked by its email before it is used.
    "login_user_fields": ("token.userId", "userId", "user.id", "token.user.id"),
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
IF_UNKNOWN = ("skip", "needs-attention")  # what remove_user does for a person the bridge cannot find
CREATING_TTL = 86400  # seconds the bridge remembers sending createAccount, for a rerun after a lost reply
USER = (("user_id", "email"),)

ACTIONS = {
    "create_user": ActionSpec(required=("email",), optional=("first_name", "last_name", "password")),
    "get_user": ActionSpec(optional=USER[0], any_of=USER),
    "update_user": ActionSpec(optional=(*USER[0], *UPDATE_FIELDS), any_of=(*USER, tuple(UPDATE_FIELDS))),
    "invite": ActionSpec(required=("course_id", "email"), optional=("first_name", "last_name", "title", "body")),
    "enroll": ActionSpec(required=("course_id",), optional=USER[0], any_of=USER),
    "unenroll": ActionSpec(required=("course_id",), optional=USER[0], any_of=USER),
    "remove_user": ActionSpec(required=("mode",), optional=(*USER[0], "course_ids", "if_unknown"), any_of=USER,
                              choices=(("mode", REMOVE_MODES), ("if_unknown", IF_UNKNOWN))),
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
        "login_backoff": {"type": "object", "additionalProperties": False,
                          "description": "seconds without a login after a failed one (doubling with each failure, "
                                         f"up to max; defaults {FIRST_BACKOFF:g} and {MAX_BACKOFF:g})",
                          "properties": {"first": {"type": "number", "exclusiveMinimum": 0},
                                         "max": {"type": "number", "exclusiveMinimum": 0}}},
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

    def do_create_user(self, params: Mapping) -> dict:
        """Create the user unless the email is known; a known but deactivated user is reactivated."""
        email = str(params["email"]).strip()
        # Two purchases by one buyer may run at once: the second must wait and find the first's account.
        with locked(self.store, f"{self.identities.key}:{normal(email)}:lock", 2 * sum(self.timeouts) + 5):
            known = self.identities.get(email)
            user = self.checked_user("create_user", email, known) if known is not None else None
            if user is not None:
                return {"id": known, "email": email, "created": False, **self.reactivate("create_user", known, user)}
            return self.create_account(email, params)

    def create_account(self, email: str, params: Mapping) -> dict:
        """Send createAccount and remember the new id; find the account when Coursebox says it exists."""
        password = params.get("password") or self.initial_password(email)
        user = {"firstName": params.get("first_name", ""), "lastName": params.get("last_name", ""),
                "email": email, "password": password}
        body = {"data": {"user": user, "offerCode": "", "marketingEmails": DEFAULTS["marketing_emails"],
                         "is18Plus": DEFAULTS["is_18_plus"]}}
        # Noted before sending: if the reply is lost, the rerun knows the account may be this bridge's own.
        sent_before = self.store.get(self.creating_key(email)) is not None
        self.store.set(self.creating_key(email), "1", CREATING_TTL)
        try:
            reply = self.api("create_user", "POST", "/api/wineusers/createAccount", secrets=[password], json=body)
        except LMSRejected as exc:
            if "exist" not in exc.detail.lower():
                raise
            return self.existing_account(email, password, exc, sent_before)
        user_id = find_value(reply, DEFAULTS["user_id_fields"])
        if user_id is None:
            raise self.error(LMSRejected, "create_user", "the reply carries no user id (looked for "
                             f"{', '.join(DEFAULTS['user_id_fields'])})", [password])
        self.identities.remember(email, user_id)
        self.store.delete(self.creating_key(email))
        # The password is never returned: results are stored with the job, and Coursebox can reset it.
        return {"id": str(user_id), "email": email, "created": True,
                "first_name": user["firstName"], "last_name": user["lastName"],
                "password_generated": not params.get("password")}

    def creating_key(self, email: str) -> str:
        """Return the key that says createAccount was sent for an email."""
        return f"{self.identities.key}:{normal(email)}:creating"

    def initial_password(self, email: str) -> str:
        """Return a new account's password that a rerun can compute again, without storing it anywhere.

        Derived from the connection's own password, so only someone who already holds the admin login can
        know it; the learner sets their own through Coursebox.
        """
        mac = hmac.new(str(self.spec["password"]).encode(), f"{self.url}\0{normal(email)}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()[:18]).decode()

    def existing_account(self, email: str, password: str, refusal: LMSError, sent_before: bool) -> dict:
        """Find the id of an account Coursebox says exists: this bridge's own (a lost reply), or a course's."""
        user_id, found_by = None, "the account's course lists"
        if sent_before:
            user_id, found_by = self.own_account_id(email, password), "logging in to the account the bridge created"
        if user_id is None:
            user_id, found_by = self.directory.find(email), "the account's course lists"
        user = self.checked_user("create_user", email, user_id) if user_id is not None else None
        if user is None:
            self.store.delete(self.creating_key(email))  # an account made elsewhere: never logged in to
            raise self.unknown("create_user", email, f"Coursebox says: {refusal.detail}")
        self.identities.remember(email, user_id)
        self.store.delete(self.creating_key(email))
        return {"id": str(user_id), "email": email, "created": False, "found_by": found_by,
                **self.reactivate("create_user", str(user_id), user)}

    def own_account_id(self, email: str, password: str) -> str | None:
        """Log in as an account this bridge created, whose createAccount reply was lost, to learn its id.

        Tried once per account: a refused login is never repeated, so a learner's account is never locked.
        """
        operation = "create_user: find the new account"
        try:
            response = self.request(operation, "POST", f"{self.url}/auth/login", [password],
                                    json={"email": email, "password": password})
            reply = self.json(operation, response, [password])
        except LMSError as exc:
            if exc.retryable:
                raise
            self.store.delete(self.creating_key(email))
            return None
        token = find_value(reply, DEFAULTS["token_fields"])
        if token is not None:
            self._tokens.append(str(token))  # never used, only scrubbed from messages
        user_id = find_value(reply, DEFAULTS["login_user_fields"])
        return None if user_id is None else str(user_id)

    def checked_user(self, operation: str, email: str, user_id) -> dict | None:
        """Fetch the user an id names; None, and the id forgotten, when the LMS contradicts the email."""
        try:
            user = self.api(operation, "GET", f"/api/WineUsers/{segment(user_id)}")
        except LMSNotFound:
            log.warning("%s: user id %s of %s no longer exists; forgetting it", self.name, user_id, email)
            self.identities.forget(email)
            return None
        said = find_value(user, DEFAULTS["email_fields"])
        if said is not None and normal(said) != normal(email):
            # The id belongs to someone else now: never act on it for this person.
            log.warning("%s: user id %s is %s, not %s; forgetting it", self.name, user_id, said, email)
            self.identities.forget(email)
            self.identities.remember(said, user_id)
            return None
        return dict(user) if isinstance(user, Mapping) else {}

    def verified_user(self, operation: str, params: Mapping) -> tuple[str, dict | None] | None:
        """Return (id, user) of the person a rule names, confirmed by the LMS when found by email; None if unknown."""
        if params.get("user_id") not in (None, ""):
            return str(params["user_id"]), None
        for _ in range(2):  # a contradicted id is dropped and looked up once more
            user_id = self.directory.find(params["email"])
            if user_id is None:
                return None
            user = self.checked_user(operation, params["email"], user_id)
            if user is not None:
                return user_id, user
            self.directory.forget_scan()
        return None

    def with_user(self, operation: str, params: Mapping, send):
        """Call send(user id) for the person a rule names; an id the LMS does not know is looked up once more."""
        if params.get("user_id") not in (None, ""):
            return send(str(params["user_id"]))
        email = params["email"]
        user_id = self.directory.find(email)
        if user_id is None:
            raise self.unknown(operation, email)
        try:
            return send(user_id)
        except LMSNotFound:
            if self.checked_user(operation, email, user_id) is not None:
                raise  # the user is there: what is missing is something else (the course)
        self.directory.forget_scan()
        user_id = self.directory.find(email)
        if user_id is None:
            raise self.unknown(operation, email)
        return send(user_id)

    def unknown(self, operation: str, email: str, said: str = "") -> LMSNeedsAttention:
        """Build the error of a person whose id neither the bridge nor any course of the account shows."""
        detail = (f"no Coursebox user id is known for {email!r}" + (f" ({said})" if said else "")
                  + ": the API looks nobody up by email, and no course of the account lists them")
        return self.error(LMSNeedsAttention, operation, detail, email=email)

    def reactivate(self, operation: str, user_id: str, user: Mapping) -> dict:
        """Undo a deactivation (or a delete mode's isDeleted) of a user who comes back, with documented attributes."""
        flags = {name: False for name in ("isInActive", "isDeleted") if user.get(name) in (True, "true", 1)}
        if not flags:
            return {}
        self.update(operation, user_id, flags)
        log.info("%s: reactivated user %s", self.name, user_id)
        return {"reactivated": sorted(flags)}

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
