"""LMS connectors: build one from a connection spec, then `perform(action, params)`.

    base.py           action and spec checks, one HTTP session, HTTP status -> error class
    coursetoolkit.py  Course Toolkit (form POSTs, `response` 0 or an error)
    coursebox.py      Coursebox (JSON behind a login token)
    tokens.py         the login token every worker shares, renewed under a short lock
    identity.py       email -> LMS user id, per connection
    store.py          Redis (shared by workers) or memory, under tokens and identities
    cli.py            `bridge lms`: ping, courses, user, learners
    (bridge/lookups/  the `http` lookup connection, built on the same base and registered here)

Nothing here imports Flask: RQ work horses import this package.
"""

from collections.abc import Mapping

from bridge.lms.base import ActionSpec, Connector
from bridge.lms.coursebox import Coursebox
from bridge.lms.coursetoolkit import CourseToolkit
from bridge.lms.errors import (
    LMSAuthError,
    LMSError,
    LMSNotFound,
    LMSRateLimited,
    LMSRejected,
    LMSUnavailable,
)
from bridge.lookups.http import HttpLookup  # noqa: E402 - after the base it builds on; see bridge/lookups

# Every connection type a rule file can declare: the two LMSs and the `http` lookup connection.
CONNECTORS: dict[str, type[Connector]] = {cls.type: cls for cls in (CourseToolkit, Coursebox, HttpLookup)}

# type -> action -> ActionSpec(required, optional, any_of, extra_fields, reserved), to check rules at load time.
ACTIONS: dict[str, dict[str, ActionSpec]] = {name: cls.actions for name, cls in CONNECTORS.items()}

# type -> JSON-Schema fragment of one connection (additionalProperties false), for the rule-file schema.
CONNECTION_SCHEMAS: dict[str, dict] = {name: cls.schema for name, cls in CONNECTORS.items()}


def validate_connection_spec(spec) -> list[tuple[str | None, str]]:
    """List (key or None, message) for everything wrong with a connection spec; empty when it is fine."""
    lms_type = spec.get("type") if isinstance(spec, Mapping) else None
    if lms_type not in CONNECTORS:
        return [("type" if isinstance(spec, Mapping) and "type" in spec else None,
                 f"unknown or missing type {lms_type!r} (known: {', '.join(sorted(CONNECTORS))})")]
    return CONNECTORS[lms_type].check_spec(spec)


def build_connector(name: str, spec: Mapping, redis=None, timeouts: tuple[float, float] | None = None) -> Connector:
    """Build the connector a spec describes; raise ValueError naming the connection when it is wrong."""
    lms_type = spec.get("type") if isinstance(spec, Mapping) else None
    if lms_type not in CONNECTORS:
        raise ValueError(f"connection {name!r}: unknown or missing type {lms_type!r} "
                         f"(known: {', '.join(sorted(CONNECTORS))})")
    return CONNECTORS[lms_type](name, spec, redis=redis, timeouts=timeouts)


__all__ = [
    "ACTIONS", "CONNECTION_SCHEMAS", "CONNECTORS", "ActionSpec", "Connector", "CourseToolkit", "Coursebox", "HttpLookup",
    "LMSAuthError", "LMSError", "LMSNotFound", "LMSRateLimited", "LMSRejected", "LMSUnavailable",
    "build_connector", "validate_connection_spec",
]
