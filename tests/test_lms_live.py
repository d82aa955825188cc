"""Opt-in: read-only calls to a real LMS, when its credentials are in the environment.

    BRIDGE_LIVE_COURSEBOX_URL, BRIDGE_LIVE_COURSEBOX_EMAIL, BRIDGE_LIVE_COURSEBOX_PASSWORD
    BRIDGE_LIVE_COURSETOOLKIT_URL, BRIDGE_LIVE_COURSETOOLKIT_API_USER, BRIDGE_LIVE_COURSETOOLKIT_API_KEY

Nothing here writes to the LMS: it pings (a login, or a lookup of a userid nobody has) and lists courses.
"""

from __future__ import annotations

import os

import pytest

from bridge.lms import build_connector

LIVE = {
    "coursebox": {"url": "BRIDGE_LIVE_COURSEBOX_URL", "email": "BRIDGE_LIVE_COURSEBOX_EMAIL",
                  "password": "BRIDGE_LIVE_COURSEBOX_PASSWORD"},
    "coursetoolkit": {"url": "BRIDGE_LIVE_COURSETOOLKIT_URL", "api_user": "BRIDGE_LIVE_COURSETOOLKIT_API_USER",
                      "api_key": "BRIDGE_LIVE_COURSETOOLKIT_API_KEY"},
}


def live_connector(lms_type: str):
    """Build a connector from the environment, or skip saying which variables are missing."""
    missing = [variable for variable in LIVE[lms_type].values() if not os.environ.get(variable)]
    if missing:
        pytest.skip(f"live {lms_type} test is opt-in: set {', '.join(missing)}")
    spec = {"type": lms_type, **{key: os.environ[variable] for key, variable in LIVE[lms_type].items()}}
    return build_connector(f"live-{lms_type}", spec, timeouts=(10.0, 30.0))


@pytest.mark.parametrize("lms_type", sorted(LIVE))
def test_ping_accepts_the_credentials(lms_type):
    with live_connector(lms_type) as connector:
        assert connector.ping()["ok"] is True


def test_coursebox_lists_courses():
    with live_connector("coursebox") as connector:
        courses = connector.perform("list_courses", {})["courses"]
    assert isinstance(courses, list)
