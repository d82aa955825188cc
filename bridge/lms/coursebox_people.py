"""Coursebox people: create without duplicates, find existing accounts, check ids, reactivate rehires.

A mixin of the Coursebox connector, which provides `api`, `update`, `request`, `json`, `error`, the store,
the identity map and the directory (directory.py) it reads course lists with.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Mapping

from bridge.lms.base import find_value
from bridge.lms.coursebox_spec import CREATING_TTL, DEFAULTS, segment
from bridge.lms.errors import LMSError, LMSNeedsAttention, LMSNotFound, LMSRejected
from bridge.lms.identity import normal
from bridge.lms.store import locked

log = logging.getLogger("bridge.lms")


class People:
    """The Coursebox connector's ways of knowing who is who."""

    def do_create_user(self, params: Mapping) -> dict:
        """Create the user unless the email is known; a known but deactivated user is reactivated."""
        email = str(params["email"]).strip()
        # Two purchases by one buyer may run at once: the second must wait and find the first's account.
        # The lock's round trip reads the id too, and its release records a new one (one round trip each).
        with locked(self.store, f"{self.identities.key}:{normal(email)}:lock", 2 * sum(self.timeouts) + 5,
                    read=self.identities.read_of(email)) as held:
            known = held.read
            user = self.checked_user("create_user", email, known) if known is not None else None
            if user is not None:
                return {"id": known, "email": email, "created": False, **self.reactivate("create_user", known, user)}
            return self.create_account(email, params, held.later)

    def create_account(self, email: str, params: Mapping, later) -> dict:
        """Send createAccount and remember the new id; find the account when Coursebox says it exists.

        `later` is the store whose writes go out as the lock is released.
        """
        password = params.get("password") or self.initial_password(email)
        user = {"firstName": params.get("first_name", ""), "lastName": params.get("last_name", ""),
                "email": email, "password": password}
        body = {"data": {"user": user, "offerCode": "", "marketingEmails": DEFAULTS["marketing_emails"],
                         "is18Plus": DEFAULTS["is_18_plus"]}}
        # Noted before sending: if the reply is lost, the rerun knows the account may be this bridge's own.
        sent_before = self.store.swap(self.creating_key(email), "1", CREATING_TTL) is not None
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
        self.identities.on(later).remember(email, user_id)
        later.delete(self.creating_key(email))
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
