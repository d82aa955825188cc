"""Course Toolkit: one form-encoded POST endpoint, the action chosen by the `api-action` field."""

from __future__ import annotations

from collections.abc import Mapping

from bridge.lms.base import ActionSpec, Connector, connection_schema, find_value
from bridge.lms.errors import LMSRejected

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
}

AUTH_FIELDS = ("api-user", "api-key", "api-action")

ACTIONS = {
    "create_user": ActionSpec(required=("email",), optional=("first_name", "last_name"), extra_fields=True,
                              reserved=AUTH_FIELDS),
    "remove_user": ActionSpec(required=("userid",)),
    "get_user": ActionSpec(required=("userid",)),
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


class CourseToolkit(Connector):
    """A Course Toolkit account reached with its API user and key."""

    type = "coursetoolkit"
    actions = ACTIONS
    schema = SCHEMA
    defaults = DEFAULTS
    secret_keys = ("api_key",)

    def __init__(self, name: str, spec: Mapping, redis=None, timeouts=None):
        super().__init__(name, spec, redis=redis, timeouts=timeouts)
        self.action_names = {**DEFAULTS["actions"], **self.spec.get("actions", {})}

    def call(self, action: str, fields: Mapping) -> dict:
        """POST one api-action and return its reply, refusing any reply whose `response` is not 0."""
        form = {
            **{key: str(value) for key, value in fields.items()},
            "api-user": str(self.spec["api_user"]),
            "api-key": self.spec["api_key"],
            "api-action": self.action_names[action],
        }
        reply = self.json(action, self.request(action, "POST", self.url, data=form))
        if not isinstance(reply, Mapping) or "response" not in reply:
            raise self.error(LMSRejected, action, f"reply has no 'response' field: {str(reply)[:120]!r}")
        if str(reply["response"]).strip() != "0":
            said = reply.get("response_description") or "no description"
            raise self.error(LMSRejected, action, f"response {reply['response']}: {said}")
        return {key: value for key, value in reply.items() if key not in ("response", "response_description")}

    def do_create_user(self, params: Mapping) -> dict:
        """Create the user unless the email exists; the API itself does the "if not exists"."""
        reply = self.call("create_user", params)
        user_id = find_value(reply, DEFAULTS["user_id_fields"])
        if user_id is None:
            raise self.error(LMSRejected, "create_user", "reply carries no user id (looked for "
                             f"{', '.join(DEFAULTS['user_id_fields'])}); got fields {sorted(reply)}")
        email = find_value(reply, DEFAULTS["email_fields"]) or params["email"]
        return {"id": str(user_id), "email": email, "reply": reply}

    def do_remove_user(self, params: Mapping) -> dict:
        """Remove a user by id."""
        reply = self.call("remove_user", params)
        return {"id": str(params["userid"]), "removed": True, "reply": reply}

    def do_get_user(self, params: Mapping) -> dict:
        """Fetch a user with their course permissions parsed."""
        reply = self.call("get_user", params)
        raw = find_value(reply, DEFAULTS["permissions_fields"])
        courses, unparsed = parse_permissions(str(raw)) if raw is not None else ({}, [])
        return {
            "id": str(find_value(reply, DEFAULTS["user_id_fields"]) or params["userid"]),
            "email": find_value(reply, DEFAULTS["email_fields"]),
            "courses": courses,
            "permissions_raw": raw,
            "unparsed_permissions": unparsed,
            "user": reply,
        }
