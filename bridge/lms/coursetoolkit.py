"""Course Toolkit: one form-encoded POST endpoint, the action chosen by the `api-action` field."""

from __future__ import annotations

from collections.abc import Mapping

from bridge.lms.base import ActionSpec, Connector, connection_schema, find_value
from bridge.lms.errors import LMSAuthError, LMSNotFound, LMSRejected

# Everything the public API document leaves out lives here, so a wrong guess is fixed in one place.
DEFAULTS = {
    # Assumption: the document's "POST request to the following URL" shows no URL.
    "url": "https://www.coursetoolkit.com/api",
    # Assumption: the document describes the actions but omits their api-action names.
    "actions": {"remove_user": "removeuser", "create_user": "createuser", "get_user": "getuser"},
    # Assumption: the field names of replies are undocumented; the first one present wins.
    "user_id_fields": ("userid", "user_id", "id", "user.userid", "user.id"),
    "email_fields": ("email", "user.email"),
    "permissions_fields": ("permissions", "courses", "course_permissions", "user.permissions"),
    # Assumption: error codes are undocumented, so an error reply is classified by words of its description.
    "auth_words": ("authenticat", "api-key", "api key", "api-user", "api user", "api access", "not enabled"),
    "not_found_words": ("not found", "does not exist", "doesn't exist", "no such user", "unknown user"),
    # A userid no account has, for `ping`: an answer other than an authentication error proves the key.
    "ping_userid": "0",
}

AUTH_FIELDS = ("api-user", "api-key", "api-action")

ACTIONS = {
    "create_user": ActionSpec(required=("email",), optional=("first_name", "last_name"), extra_fields=True,
                              reserved=AUTH_FIELDS),
    "remove_user": ActionSpec(optional=("userid", "email"), any_of=(("userid", "email"),)),
    "get_user": ActionSpec(optional=("userid", "email"), any_of=(("userid", "email"),)),
}

SCHEMA = connection_schema(
    "coursetoolkit",
    {
        "api_user": {"type": ["string", "integer"], "minLength": 1},
        "api_key": {"type": "string", "minLength": 1},
        "actions": {
            "type": "object",
            "properties": {action: {"type": "string", "minLength": 1} for action in ACTIONS},
            "additionalProperties": False,
        },
    },
    required=("api_user", "api_key"),
)


def parse_permissions(text: str) -> tuple[dict[str, str | list[str]], list[str]]:
    """Parse "COURSEID PERMISSIONS" lines into {course: "all" | [module ids]} and the unreadable lines."""
    courses: dict[str, str | list[str]] = {}
    unparsed: list[str] = []
    for line in text.splitlines():
        parts = line.split(None, 1)
        if not parts:
            continue
        if len(parts) == 1:
            unparsed.append(line)
            continue
        course, permissions = parts[0], parts[1].strip()
        if permissions.lower() == "all":
            courses[course] = "all"
            continue
        modules = [module.strip() for module in permissions.split(",") if module.strip()]
        if modules:
            courses[course] = modules
        else:
            unparsed.append(line)
    return courses, unparsed


def classify(description: str) -> type[LMSRejected | LMSAuthError | LMSNotFound]:
    """Classify an error reply by its description: authentication, not found, or else rejected."""
    said = description.lower()
    if any(word in said for word in DEFAULTS["auth_words"]):
        return LMSAuthError
    if any(word in said for word in DEFAULTS["not_found_words"]):
        return LMSNotFound
    return LMSRejected


class CourseToolkit(Connector):
    """A Course Toolkit account reached with its API user and key."""

    type = "coursetoolkit"
    actions = ACTIONS
    schema = SCHEMA
    defaults = DEFAULTS
    secret_keys = ("api_key",)
    id_param = "userid"

    def __init__(self, name: str, spec: Mapping, redis=None, timeouts=None):
        super().__init__(name, spec, redis=redis, timeouts=timeouts)
        self.action_names = {**DEFAULTS["actions"], **self.spec.get("actions", {})}

    def call(self, action: str, fields: Mapping, operation: str | None = None) -> dict:
        """POST one api-action and return its reply, refusing any reply whose `response` is not 0."""
        operation = operation or action
        form = {
            **{key: str(value) for key, value in fields.items()},
            "api-user": str(self.spec["api_user"]),
            "api-key": self.spec["api_key"],
            "api-action": self.action_names[action],
        }
        reply = self.json(operation, self.request(operation, "POST", self.url, data=form))
        if not isinstance(reply, Mapping) or "response" not in reply:
            raise self.error(LMSRejected, operation, f"reply has no 'response' field: {str(reply)[:120]!r}")
        if str(reply["response"]).strip() != "0":
            said = str(reply.get("response_description") or "no description")
            raise self.error(classify(said), operation, f"response {reply['response']}: {said}")
        return {key: value for key, value in reply.items() if key not in ("response", "response_description")}

    def ping(self) -> dict:
        """Ask for a user no account has: any answer but an authentication error proves the api-user and key."""
        try:
            self.call("get_user", {"userid": DEFAULTS["ping_userid"]}, "ping")
        except (LMSNotFound, LMSRejected) as exc:
            return {"ok": True, "said": exc.detail}
        return {"ok": True, "said": "response 0"}

    def do_create_user(self, params: Mapping) -> dict:
        """Create the user unless the email exists; the API itself does the "if not exists"."""
        reply = self.call("create_user", params)
        user_id = find_value(reply, DEFAULTS["user_id_fields"])
        if user_id is None:
            raise self.error(LMSRejected, "create_user", "reply carries no user id (looked for "
                             f"{', '.join(DEFAULTS['user_id_fields'])}); got fields {sorted(reply)}")
        email = find_value(reply, DEFAULTS["email_fields"]) or params["email"]
        self.identities.remember(email, user_id)
        return {"id": str(user_id), "email": email, "reply": reply}

    def do_remove_user(self, params: Mapping) -> dict:
        """Remove a user given by `userid`, or by `email`.

        Course Toolkit removes by id only. An email is looked up in the identity map (filled by create_user
        and get_user); when the map does not know it, or the LMS no longer knows the id it holds, the id comes
        from Course Toolkit's create-if-not-exists call, the only one that takes an email. That call creates
        the user if there was none, who is then removed at once: either way nobody with the email is left.
        """
        if params.get("userid") not in (None, ""):
            user_id = str(params["userid"])
            return {"id": user_id, "removed": True, "reply": self.call("remove_user", {"userid": user_id})}
        email, reply = params["email"], None
        user_id = self.identities.get(email)
        if user_id is not None:
            try:
                reply = self.call("remove_user", {"userid": user_id})
            except LMSNotFound:
                pass  # a stale id: the user was removed, maybe re-created, outside the bridge
        if reply is None:
            user_id = self.do_create_user({"email": email})["id"]
            reply = self.call("remove_user", {"userid": user_id})
        self.identities.forget(email)
        return {"id": user_id, "email": email, "removed": True, "reply": reply}

    def do_get_user(self, params: Mapping) -> dict:
        """Fetch a user, given by `userid` or by an email the identity map knows, with course permissions parsed."""
        user_id = self.user_id("get_user", params)
        reply = self.call("get_user", {"userid": user_id})
        raw = find_value(reply, DEFAULTS["permissions_fields"])
        courses, unparsed = parse_permissions(str(raw)) if raw is not None else ({}, [])
        email = find_value(reply, DEFAULTS["email_fields"])
        self.identities.remember(email, user_id)
        return {
            "id": str(find_value(reply, DEFAULTS["user_id_fields"]) or user_id),
            "email": email,
            "courses": courses,
            "permissions_raw": raw,
            "unparsed_permissions": unparsed,
            "user": reply,
        }
