"""What the LMS sandbox knows: seed data, users, courses, tokens, recorded calls and pending faults."""

from __future__ import annotations

import copy
import json
import os
import secrets
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from bridge.sandbox_lookups import seed as lookup_seed

COURSETOOLKIT_API_USER = "sandbox"
COURSETOOLKIT_API_KEY = "sandbox-key"
COURSEBOX_EMAIL = "admin@sandbox.test"
COURSEBOX_PASSWORD = "sandbox-password"
TOKEN_TTL = 3600.0  # seconds a Coursebox token stays valid unless the state says otherwise

SECRET_FIELDS = {"api-key", "password", "x-access-token"}
REDACTED = "***"
FAULT_KEYS = {"status", "drop", "hold", "count", "retry_after", "latency", "path", "body"}
# What a sandbox with a state file keeps across restarts: what an LMS keeps. Calls, tokens and faults are of one run.
KEPT = ("users", "passwords", "courses", "activities", "enrollments", "invites", "next_id")

SEED_TOOLKIT_USERS = [{"userid": "1001", "email": "learner@sandbox.test", "first_name": "Lena", "last_name": "Learner",
                       "permissions": {"42": "all", "7": ["m1", "m2"]}}]
SEED_COURSEBOX_USERS = [{"id": 1, "email": COURSEBOX_EMAIL, "firstName": "Sandbox", "lastName": "Admin",
                         "fullName": "Sandbox Admin", "isAdmin": True}]
SEED_COURSES = [{"id": 42, "title": "Onboarding"}, {"id": 7, "title": "Food Safety"},
                {"id": 13, "title": "Customer Service"}]
SEED_ACTIVITIES = [{"id": 501, "courseId": 42, "title": "Welcome", "content": "<p>Welcome aboard.</p>"},
                   {"id": 502, "courseId": 42, "title": "Your first week", "content": "<p>What happens when.</p>"}]


def now_iso() -> str:
    """Return the current UTC time as ISO 8601."""
    return datetime.now(timezone.utc).isoformat()


def redact(value):
    """Return a copy with every secret field's value replaced."""
    if isinstance(value, dict):
        return {key: REDACTED if str(key).lower() in SECRET_FIELDS else redact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def fault_problem(spec) -> str | None:
    """Say what is wrong with a fault spec, None when it is fine."""
    if not isinstance(spec, dict) or not spec.keys() <= FAULT_KEYS:
        return f"expected a JSON object with some of {', '.join(sorted(FAULT_KEYS))}"
    status, count, latency = spec.get("status"), spec.get("count", 1), spec.get("latency")
    if status is not None and not (isinstance(status, int) and 100 <= status <= 599):
        return "status must be an HTTP status"
    if spec.get("drop") not in (None, True, False, "after") or (status is not None and spec.get("drop")):
        return 'drop must be true, "after" or false, and never comes with a status'
    if not (isinstance(count, int) and count >= 1):
        return "count must be a positive integer"
    if latency is not None and not (isinstance(latency, (int, float)) and latency >= 0):
        return "latency must be a number of seconds >= 0"
    hold = spec.get("hold")
    if hold is not None and (not isinstance(hold, (int, float)) or hold <= 0 or status is not None or spec.get("drop")):
        return "hold must be a number of seconds > 0, and never comes with a status or a drop"
    return None


class SandboxState:
    """Everything the sandbox knows, guarded by one lock; with a path, what an LMS keeps is kept in that file."""

    def __init__(self, token_ttl: float = TOKEN_TTL, clock=time.time, path: Path | str | None = None):
        self.lock = threading.RLock()
        self.token_ttl, self.clock = token_ttl, clock
        self.path = Path(path) if path is not None else None
        self._seed()
        if self.path is not None and self.path.exists():
            with self.lock:
                for name, value in json.loads(self.path.read_text(encoding="utf-8")).items():
                    if name in KEPT:
                        setattr(self, name, value)

    def reset(self) -> None:
        """Restore the seed data and forget calls, tokens and faults (a kept sandbox never hands out an id twice)."""
        with self.lock:
            handed_out = self.next_id
            self._seed()
            if self.path is not None:
                # A bridge's identity map may still name the old holder of an id: a new user must never get it.
                self.next_id = {lms: max(number, handed_out.get(lms, number)) for lms, number in self.next_id.items()}
            self.save()

    def save(self) -> None:
        """Write what an LMS keeps to the state file, whole or not at all (no-op without a path)."""
        if self.path is None:
            return
        with self.lock:
            text = json.dumps({name: getattr(self, name) for name in KEPT})
            partial = self.path.with_name(f".{self.path.name}.tmp")
            partial.write_text(text, encoding="utf-8")
            os.replace(partial, self.path)

    def _seed(self) -> None:
        with self.lock:
            self.users = {"coursetoolkit": {u["userid"]: copy.deepcopy(u) for u in SEED_TOOLKIT_USERS},
                          "coursebox": {str(u["id"]): copy.deepcopy(u) for u in SEED_COURSEBOX_USERS}}
            self.courses = {str(c["id"]): dict(c) for c in SEED_COURSES}
            self.activities = {str(a["id"]): dict(a) for a in SEED_ACTIVITIES}
            self.enrollments: dict[str, list[int]] = {course: [] for course in self.courses}
            self.invites: list[dict] = []
            self.tokens: dict[str, float] = {}
            self.passwords = {str(u["id"]): COURSEBOX_PASSWORD for u in SEED_COURSEBOX_USERS}  # Coursebox logins
            self.calls: list[dict] = []
            self.faults: dict = {}
            self.next_id = {"coursetoolkit": 1002, "coursebox": 101}
            self.lookups = lookup_seed()  # HubSpot and BambooHR records for the lookup endpoints

    def new_id(self, lms: str) -> int:
        """Hand out the next user id of an LMS."""
        with self.lock:
            self.next_id[lms] += 1
            return self.next_id[lms] - 1

    def issue_token(self) -> str:
        """Create a Coursebox token valid for token_ttl seconds."""
        token = secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[token] = self.clock() + self.token_ttl
        return token

    def token_valid(self, token: str | None) -> bool:
        """Say whether a token was issued and has not expired."""
        with self.lock:
            return token is not None and self.tokens.get(token, float("-inf")) > self.clock()

    def expire_tokens(self) -> None:
        """Make every token invalid at once."""
        with self.lock:
            self.tokens.clear()

    def set_faults(self, spec: dict, clear: bool = False) -> dict:
        """Add a checked fault spec (after clearing the others if asked); return every pending fault."""
        with self.lock:
            if clear:
                self.faults.clear()
            if spec.get("latency") is not None:
                self.faults["latency"] = float(spec["latency"])
            if spec.get("status") is not None or spec.get("drop") or spec.get("hold"):
                drop = spec.get("drop")
                self.faults["next"] = {"status": spec.get("status"), "drop": drop if drop == "after" else bool(drop),
                                       "hold": spec.get("hold"),
                                       "count": spec.get("count", 1), "path": str(spec.get("path", "")),
                                       "retry_after": spec.get("retry_after"), "body": spec.get("body")}
            return copy.deepcopy(self.faults)

    def take_fault(self, path: str) -> tuple[float, dict | None]:
        """Return the latency to add and the fault (a status or a drop) to answer this call with, using one up."""
        with self.lock:
            latency, fault = self.faults.get("latency", 0.0), self.faults.get("next")
            if fault is None or fault["count"] <= 0 or fault["path"] not in path:
                return latency, None
            fault["count"] -= 1
            return latency, dict(fault)

    def snapshot(self) -> dict:
        """Dump users, courses, enrolments and invitations for assertions."""
        with self.lock:
            return copy.deepcopy({
                "coursetoolkit": {"users": list(self.users["coursetoolkit"].values())},
                "coursebox": {"users": list(self.users["coursebox"].values()), "courses": list(self.courses.values()),
                              "enrollments": self.enrollments, "invites": self.invites},
            })
