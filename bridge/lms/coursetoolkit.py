"""Course Toolkit: one form-encoded POST endpoint, the action chosen by the `api-action` field."""

from __future__ import annotations

from collections.abc import Mapping

from bridge.lms.base import ActionSpec, Connector, connection_schema, find_value
from bridge.lms.errors import LMSAuthError, LMSNeedsAttention, LMSNotFound, LMSRejected
from bridge.lms.identity import normal

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
IF_UNKNOWN = ("skip", "needs-attention")  # what remove_user does for an email the bridge cannot resolve

ACTIONS = {
    "create_user": ActionSpec(required=("email",), optional=("first_name", "last_name"), extra_fields=True,
                              reserved=AUTH_FIELDS),
    "remove_user": ActionSpec(optional=("userid", "email", "if_unknown"), any_of=(("userid", "email"),),
                              choices=(("if_unknown", IF_UNKNOWN),)),
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
        """Remove a user given by `userid`, or by an email the bridge knows; never create one to remove it.

        Course Toolkit removes by id only and looks nobody up by email: its one call that takes an email,
        createuser, creates the account when it is missing (and may send a welcome email). So an email's id
        comes from the identity map alone, checked with getuser first; an email the bridge cannot resolve is
        skipped with the reason, or needs attention when the rule says `if_unknown: needs-attention`.
        """
        if params.get("userid") not in (None, ""):
            user_id = str(params["userid"])
            return {"id": user_id, "removed": True, "reply": self.call("remove_user", {"userid": user_id})}
        email = params["email"]
        user_id = self.identities.get(email)
        if user_id is not None and self.confirms(email, user_id):
            try:
                reply = self.call("remove_user", {"userid": user_id})
            except LMSNotFound:
                reply = None  # removed between the check and now, outside the bridge
            self.identities.forget(email)
            if reply is not None:
                return {"id": user_id, "email": email, "removed": True, "reply": reply}
        if params.get("if_unknown") == "needs-attention":
            raise self.error(LMSNeedsAttention, "remove_user", f"no Course Toolkit user id is known for {email!r}: "
                             "the API looks nobody up by email without creating the account", email=email)
        return {"id": None, "email": email, "removed": False,
                "skipped": f"no Course Toolkit user is known for {email!r}: nothing to remove (the API finds "
                           "users by id only, and the bridge never creates an account to remove it)"}

    def confirms(self, email: str, user_id: str) -> bool:
        """Tell whether the LMS still has this id under this email; forget it when not."""
        try:
            reply = self.call("get_user", {"userid": user_id}, "remove_user: check the id")
        except LMSNotFound:
            self.identities.forget(email)
            return False
        said = find_value(reply, DEFAULTS["email_fields"])
        if said is not None and normal(said) != normal(email):
            self.identities.forget(email)
            self.identities.remember(said, user_id)
            return False
        return True

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
