"""The shared LMS client: action and spec checks, one HTTP session, status-to-error mapping."""

from __future__ import annotations

import difflib
import email.utils
import hashlib
import importlib.metadata
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlsplit

import jsonschema
import requests
from urllib3.exceptions import ProtocolError

from bridge.lms.errors import (
    LMSAuthError,
    LMSError,
    LMSNotFound,
    LMSRateLimited,
    LMSRejected,
    LMSUnavailable,
)
from bridge.lms.identity import IdentityMap
from bridge.lms.limits import LimitReached, Limits
from bridge.lms.store import make_store
from bridge.redaction import scrub, without_credentials

log = logging.getLogger("bridge.lms")

try:
    VERSION = importlib.metadata.version("bridge")
except importlib.metadata.PackageNotFoundError:  # running from a source tree that was never installed
    VERSION = "0+unknown"
USER_AGENT = f"bridge/{VERSION}"

DEFAULT_TIMEOUTS = (5.0, 30.0)  # (connect, read) seconds when neither the spec nor the caller says


@dataclass(frozen=True)
class ActionSpec:
    """The parameters one LMS action takes; `any_of` groups need at least one member set."""

    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()  # includes every name of the any_of groups
    any_of: tuple[tuple[str, ...], ...] = ()
    extra_fields: bool = False  # unknown parameters are passed on to the LMS instead of refused
    reserved: tuple[str, ...] = ()  # names the connector sets itself and a rule may never override
    choices: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (name, allowed values) of closed-choice parameters

    def problems(self, params: Mapping | Iterable[str]) -> list[str]:
        """List what is wrong with these parameters (names alone are checked for presence only)."""
        values = params if isinstance(params, Mapping) else dict.fromkeys(params, "?")
        present = {name for name, value in values.items() if value not in (None, "")}
        given = params if isinstance(params, Mapping) else {}
        found = [f"parameter {name!r} must be one of {', '.join(map(repr, allowed))}, got {given[name]!r}"
                 for name, allowed in self.choices if given.get(name) not in (None, "")
                 and not is_template(given[name]) and str(given[name]) not in allowed]
        found += [f"missing required parameter {name!r}" for name in self.required if name not in present]
        found += [f"needs one of {', '.join(map(repr, group[:6]))}{f', … ({len(group)} in all)' if group[6:] else ''}"
                  for group in self.any_of if not present.intersection(group)]
        found += [f"parameter {name!r} is set by the connector" for name in values if name in self.reserved]
        if not self.extra_fields:
            known = set(self.required) | set(self.optional)
            found += [f"unknown parameter {name!r}{did_you_mean(name, known)} (known: {', '.join(sorted(known))})"
                      for name in values if name not in known]
        return found


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """Suggest the closest known name to a misspelt one, if any is close."""
    close = difflib.get_close_matches(str(name), list(known), n=1)
    return f", did you mean {close[0]!r}?" if close else ""


def is_template(value) -> bool:
    """Say whether a value is still an unrendered template (rule files are checked before rendering)."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def connection_schema(lms_type: str, properties: dict, required: Iterable[str]) -> dict:
    """Build the JSON-Schema fragment of one connection type, with the keys every type shares."""
    positive = {"type": "number", "exclusiveMinimum": 0}
    return {
        "type": "object",
        "properties": {
            "type": {"const": lms_type},
            "url": {"type": "string", "pattern": "^https?://"},
            "timeout": {"oneOf": [positive, {"type": "array", "items": positive, "minItems": 2, "maxItems": 2}]},
            "concurrency": {"type": "integer", "minimum": 1, "description": "at most this many requests in flight, all workers together"},
            "rate_limit": {"type": "object", "required": ["requests", "per"], "additionalProperties": False,
                           "description": "at most `requests` requests every `per` seconds, all workers together",
                           "properties": {"requests": {"type": "integer", "minimum": 1}, "per": positive}},
            "retry": {"type": "object", "additionalProperties": False,
                      "description": "retry policy of jobs whose first action uses this connection (a rule's retry wins)",
                      "properties": {"attempts": {"type": "integer", "minimum": 0},
                                     "intervals": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1},
                                     "max_age": {"type": "integer", "minimum": 1}}},
            **properties,
        },
        "required": ["type", *required],
        "additionalProperties": False,
    }


def spec_problems(spec, schema: dict, secret_keys: Iterable[str] = ()) -> list[tuple[str | None, str]]:
    """List (key or None, message) for everything wrong with a connection spec."""
    if not isinstance(spec, Mapping):
        return [(None, f"expected a mapping, got {type(spec).__name__}")]
    known, secret_keys = schema["properties"], set(secret_keys)
    problems: list[tuple[str | None, str]] = [
        (key, f"unknown key {key!r} (known: {', '.join(sorted(known))})") for key in spec if key not in known]
    problems += [(None, f"missing key {key!r}") for key in schema["required"] if key not in spec]
    for error in jsonschema.Draft202012Validator(schema).iter_errors(spec):
        if not error.absolute_path:
            continue  # unknown and missing keys, said above in our own words
        error = jsonschema.exceptions.best_match([error])
        path = list(error.absolute_path)
        if path[0] in secret_keys:
            # jsonschema quotes the offending value, which here is a secret.
            problems.append((path[0], f"{path[0]!r} must be a non-empty string"))
        else:
            problems.append((path[0], f"{'/'.join(map(str, path))}: {error.message}"))
    return problems


def resolve_timeouts(name: str, own, given) -> tuple[float, float]:
    """Pick (connect, read) timeouts: the connection's own, else the caller's, else the defaults."""
    chosen = own if own is not None else given if given is not None else DEFAULT_TIMEOUTS
    pair = (chosen, chosen) if isinstance(chosen, (int, float)) else tuple(chosen)
    if len(pair) != 2 or not all(isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0 for t in pair):
        raise ValueError(f"connection {name!r}: timeouts must be two positive numbers (connect, read), got {chosen!r}")
    return float(pair[0]), float(pair[1])


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Turn a Retry-After header (seconds or an HTTP date) into seconds to wait, None if absent or unreadable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def find_value(reply, paths: Iterable[str]):
    """Return the first non-empty value found at one of these dotted paths of a JSON reply."""
    for path in paths:
        node = reply
        for part in path.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if node not in (None, "") and not isinstance(node, (Mapping, list)):
            return node
    return None


def find_list(reply, paths: Iterable[str]) -> list:
    """Return the first list found at one of these dotted paths ("" is the reply itself), else []."""
    for path in paths:
        node = reply
        for part in filter(None, path.split(".")):
            node = node.get(part) if isinstance(node, Mapping) else None
        if isinstance(node, list):
            return node
    return []


def digest(*parts) -> str:
    """Return a short stable fingerprint of some settings, for store keys that must change with them."""
    return hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()[:12]


def error_class(status: int) -> type[LMSError]:
    """Map an HTTP error status to the error class that says whether to retry."""
    if status == 429:
        return LMSRateLimited
    if status in (401, 403):
        return LMSAuthError
    if status == 404:
        return LMSNotFound
    if status >= 500:
        return LMSUnavailable
    return LMSRejected


def lms_message(response: requests.Response) -> str:
    """Extract the LMS's own words from an error reply, JSON or not."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, Mapping):
        said = find_value(body, ("error.message", "error", "message", "response_description", "detail"))
        if said is not None:
            return str(said)
    text = " ".join(response.text.split())
    return text[:200] + ("…" if len(text) > 200 else "") if text else (response.reason or "no body")


def session_for(url: str) -> requests.Session:
    """Return an HTTP session for one server, the environment's proxy and CA bundle settings read once.

    requests would read them again for every request (walking os.environ and looking for ~/.netrc);
    a worker keeps its connections for hours, and the environment of a process does not change.
    """
    session = requests.Session()
    found = session.merge_environment_settings(url, {}, None, None, None)
    session.proxies.update(found["proxies"])
    session.verify, session.cert = found["verify"], found["cert"]
    session.trust_env = False
    return session


class Connector:
    """One configured LMS connection: validates its spec, performs actions, maps failures to errors."""

    type: str = ""
    actions: dict[str, ActionSpec] = {}
    schema: dict = {}
    defaults: dict = {}
    secret_keys: tuple[str, ...] = ()
    id_param = "user_id"  # the parameter that names a user by the LMS's id
    learns_ids_from = ""  # where else than create_user and get_user the identity map is filled

    @classmethod
    def check_spec(cls, spec) -> list[tuple[str | None, str]]:
        """List (key or None, message) for everything wrong with a spec of this type; empty when it is fine."""
        return spec_problems(spec, cls.schema, cls.secret_keys)

    def __init__(self, name: str, spec: Mapping, redis=None, timeouts=None):
        problems = self.check_spec(spec)
        if problems:
            raise ValueError(f"connection {name!r}: {'; '.join(message for _, message in problems)}")
        self.name, self.spec = name, dict(spec)
        self.url = str(spec.get("url") or self.defaults["url"]).rstrip("/")
        self.timeouts = resolve_timeouts(name, spec.get("timeout"), timeouts)
        self.store = make_store(redis)
        # Keyed by the url too: ids learnt from a staging LMS must never name users of the real one.
        self.identities = IdentityMap(self.store, f"bridge:lms:{name}:{digest(self.url)}:ids")
        self.session = session_for(self.url)
        self.session.headers["User-Agent"] = USER_AGENT
        # A lease longer than any request can take, so a slot held by a killed worker frees itself.
        self.observer = None  # called with (operation, seconds) after each reply, for metrics
        self.limits = Limits(name, spec.get("concurrency"), spec.get("rate_limit"), redis,
                             lease=sum(self.timeouts) + 10)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {without_credentials(self.url)}>"

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Release the pooled HTTP connections."""
        self.session.close()

    def perform(self, action: str, params: Mapping) -> dict:
        """Run one action with its parameters and return a JSON-able result."""
        spec = self.actions.get(action)
        if spec is None:
            raise self.error(LMSRejected, action, f"unknown action (known: {', '.join(sorted(self.actions))})")
        problems = spec.problems(params)
        if problems:
            raise self.error(LMSRejected, action, "; ".join(problems) + "; nothing was sent")
        return getattr(self, f"do_{action}")({key: value for key, value in params.items() if value is not None})

    def ping(self) -> dict:
        """Check that the LMS answers and accepts the credentials; raise the LMSError that says why not."""
        raise NotImplementedError

    def user_id(self, operation: str, params: Mapping) -> str:
        """Return the id a rule gave, or the one the identity map holds for its email."""
        if params.get(self.id_param) not in (None, ""):
            return str(params[self.id_param])
        found = self.identities.get(params["email"])
        if found is None:
            raise self.error(LMSNotFound, operation, f"no {self.type} user id is known for {params['email']!r}: "
                             "the bridge learns ids from create_user and get_user replies"
                             f"{self.learns_ids_from}; or pass {self.id_param}")
        return found

    def secrets(self) -> list[str]:
        """Return every secret that must never appear in an error message."""
        password = urlsplit(self.url).password  # a url setting written as https://user:password@host
        return [str(self.spec[key]) for key in self.secret_keys if self.spec.get(key)] + ([password] if password else [])

    def error(self, cls: type[LMSError], operation: str, detail: str, secrets: Iterable[str] = (),
              **extra) -> LMSError:
        """Build an error of this connection with its secrets (and these others) scrubbed from the detail."""
        return cls(self.name, operation, scrub(detail, [*self.secrets(), *secrets]), **extra)

    def request(self, operation: str, method: str, url: str, secrets: Iterable[str] = (),
                **kwargs) -> requests.Response:
        """Send one request and raise the matching LMSError unless the reply is a success.

        `secrets` are values this request carries (a new user's password) that an error must not repeat.
        """
        # The host alone: a url setting may carry user:password@, which no message repeats.
        host, secrets = urlsplit(url).netloc.rpartition("@")[2], tuple(secrets)
        started = time.monotonic()
        try:
            with self.limits.slot():
                response = self.session.request(method, url, timeout=self.timeouts, **kwargs)
            if self.observer:
                self.observer(operation, time.monotonic() - started)
        except LimitReached as exc:
            # Nothing was sent: the job is retried later instead of getting the bridge throttled or banned.
            raise self.error(LMSRateLimited, operation, f"{exc}; nothing was sent", retry_after=exc.retry_after) from None
        except requests.Timeout as exc:
            detail = (f"no reply from {host} in time ({type(exc).__name__}; timeouts "
                      f"{self.timeouts[0]:g}s connect, {self.timeouts[1]:g}s read)")
            raise self.error(LMSUnavailable, operation, detail, secrets) from exc
        except requests.ConnectionError as exc:
            cause = exc.args[0] if exc.args else exc
            if isinstance(cause, ProtocolError):
                # Connected, sent, and no reply: the LMS may have acted on it before the line went down.
                detail = f"{host} closed the connection without a reply ({cause.args[-1]})"
            else:
                # urllib3 buries the useful part ("Connection refused") behind an object repr.
                detail = f"cannot reach {host}: {str(getattr(cause, 'reason', exc)).split('>: ')[-1]}"
            raise self.error(LMSUnavailable, operation, detail, secrets) from exc
        except requests.RequestException as exc:
            detail = f"request to {host} failed: {type(exc).__name__}"
            raise self.error(LMSUnavailable, operation, detail, secrets) from exc
        log.debug("%s %s %s -> %s", self.name, method, operation, response.status_code)
        if response.status_code < 400:
            return response
        cls, detail = error_class(response.status_code), f"HTTP {response.status_code}: {lms_message(response)}"
        if cls is LMSRateLimited:
            raise self.error(cls, operation, detail, secrets, http_status=response.status_code,
                             retry_after=parse_retry_after(response.headers.get("Retry-After")))
        raise self.error(cls, operation, detail, secrets, http_status=response.status_code)

    def json(self, operation: str, response: requests.Response, secrets: Iterable[str] = ()):
        """Decode a successful reply as JSON.

        A 2xx reply that is not JSON is refused as LMSRejected (not retried): an LMS that is down
        says so with a 5xx, so an HTML page with 200 nearly always means the url setting points
        at a website instead of the API, and no retry will fix that.
        """
        if not response.content.strip():
            return None  # an empty 2xx (a DELETE's reply, say) is a success with nothing to say
        try:
            return response.json()
        except ValueError:
            kind = response.headers.get("Content-Type", "no content type")
            snippet = " ".join(response.text.split())[:120]
            raise self.error(LMSRejected, operation, f"reply is not JSON (HTTP {response.status_code}, {kind}): "
                             f"{snippet!r}; is the url setting the API's address?", secrets,
                             http_status=response.status_code) from None
