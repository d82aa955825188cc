"""The `http` connection: GET or POST JSON on an API (a CRM, an HR system) and hand the reply to later steps."""

from __future__ import annotations

import re
from collections.abc import Mapping

from bridge.lms.base import ActionSpec, Connector, connection_schema
from bridge.lms.errors import LMSError, LMSRateLimited, LMSRejected

AUTH_KINDS = ("none", "bearer", "header", "query", "basic")
# Which keys each kind of auth needs; the others are refused, so a half-written auth is an error at load time.
AUTH_KEYS = {"none": (), "bearer": ("token",), "header": ("header", "token"), "query": ("query", "token"),
             "basic": ("username", "password")}

_TEXT = {"type": "string", "minLength": 1}
_HEADERS = {"type": "object", "additionalProperties": {"type": "string"},
            "description": "headers sent with every request (Accept: application/json is always sent)",
            "examples": [{"X-Api-Version": "2"}]}

ACTIONS = {
    "get": ActionSpec(required=("path",), optional=("query", "headers")),
    "post": ActionSpec(required=("path",), optional=("query", "headers", "json")),
}

SCHEMA = connection_schema(
    "http",
    {
        "auth": {"enum": list(AUTH_KINDS), "description": "how requests prove who sends them: none, bearer (Authorization: "
                 "Bearer <token>), header (<header>: <token>), query (?<query>=<token>) or basic (username, password)"},
        "token": {**_TEXT, "description": "the API token for bearer, header and query auth; write it as ${VARIABLE}"},
        "header": {**_TEXT, "description": "header auth: the header that carries the token", "examples": ["X-Api-Key"]},
        "query": {**_TEXT, "description": "query auth: the query parameter that carries the token", "examples": ["api_key"]},
        "username": {**_TEXT, "description": "basic auth: the user name (BambooHR: the API key)"},
        "password": {**_TEXT, "description": "basic auth: the password (BambooHR: any text, such as x)"},
        "headers": _HEADERS,
    },
    required=("url", "auth"),
)

# A path is one request on the connection's host: no way out of the base URL, no query smuggled in it.
_BAD_PATH = re.compile(r"(^|/)\.\.?(/|$)|[?#\s\\]|//|^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


class HttpLookup(Connector):
    """A JSON API reached with a token, a header, a query parameter or Basic auth; actions `get` and `post`."""

    type = "http"
    actions = ACTIONS
    schema = SCHEMA
    defaults = {"url": ""}
    secret_keys = ("token", "password")
    learns_ids_from = ""

    @classmethod
    def check_spec(cls, spec) -> list[tuple[str | None, str]]:
        """List what is wrong with a spec, including auth keys that are missing or do not apply."""
        problems = super().check_spec(spec)
        auth = spec.get("auth") if isinstance(spec, Mapping) else None
        if problems or auth not in AUTH_KEYS:
            return problems
        every = {key for keys in AUTH_KEYS.values() for key in keys}
        problems += [(None, f"missing key {key!r} (auth {auth} needs it)") for key in AUTH_KEYS[auth] if key not in spec]
        problems += [(key, f"key {key!r} does not apply to auth {auth}") for key in sorted(every - set(AUTH_KEYS[auth]))
                     if key in spec]
        return problems

    def __init__(self, name: str, spec: Mapping, redis=None, timeouts=None):
        super().__init__(name, spec, redis=redis, timeouts=timeouts)
        self.session.headers.update({"Accept": "application/json", **self.spec.get("headers", {})})
        auth = self.spec["auth"]
        if auth == "bearer":
            self.session.headers["Authorization"] = f"Bearer {self.spec['token']}"
        elif auth == "header":
            self.session.headers[self.spec["header"]] = self.spec["token"]
        elif auth == "query":
            self.session.params = {self.spec["query"]: self.spec["token"]}
        elif auth == "basic":
            self.session.auth = (str(self.spec["username"]), self.spec["password"])

    def secrets(self) -> list[str]:
        """Return the token and password, and a Basic auth user name (BambooHR's is its API key)."""
        found = super().secrets()
        return found + [str(self.spec["username"])] if self.spec.get("username") else found

    def ping(self) -> dict:
        """GET the base URL: any reply but a refusal of the credentials shows the API is reachable."""
        try:
            response = self.request("ping", "GET", self.url)
        except LMSRejected as exc:
            return {"ok": True, "said": exc.detail}
        return {"ok": True, "said": f"HTTP {response.status_code}"}

    def do_get(self, params: Mapping):
        """GET a path of the API and return its JSON reply."""
        return self._call("get", "GET", params)

    def do_post(self, params: Mapping):
        """POST JSON to a path of the API and return its JSON reply."""
        return self._call("post", "POST", params)

    def _call(self, operation: str, method: str, params: Mapping):
        path = params["path"]
        if not isinstance(path, str) or not path.startswith("/") or _BAD_PATH.search(path):
            raise self.error(LMSRejected, operation, f"path must start with / and stay on {self.url} (no '..', '//', "
                             f"'?', '#' or spaces; give query parameters in query:), got {path!r}; nothing was sent")
        for key in ("query", "headers"):
            if key in params and not isinstance(params[key], Mapping):
                raise self.error(LMSRejected, operation, f"{key} must be a mapping, got {type(params[key]).__name__}; "
                                 "nothing was sent")
        headers = {str(key): str(value) for key, value in params.get("headers", {}).items()}
        query = {str(key): value if isinstance(value, list) else str(value) for key, value in params.get("query", {}).items()}
        kwargs = {"json": params["json"]} if "json" in params else {}
        try:
            # The operation stays "get" or "post": it labels metrics, where an id in the path would never repeat.
            return self.json(operation, self.request(operation, method, self.url + path, params=query, headers=headers,
                                                     **kwargs))
        except LMSError as error:
            extra = {"retry_after": error.retry_after} if isinstance(error, LMSRateLimited) else {}
            raise self.error(type(error), operation, f"{path}: {error.detail}", http_status=error.http_status,
                             **extra) from error

    def error(self, cls, operation: str, detail: str, secrets=(), **extra) -> LMSError:
        """Build an error of the LMS error classes (so retries work alike), worded for a lookup."""
        found = super().error(cls, operation, detail, secrets, **extra)
        found.message = found.message.replace("LMS connection", "lookup connection", 1)
        found.args = (found.message,)
        return found
