"""Fixtures of the LMS tests: the sandbox over loopback HTTP, the tests' Redis, connectors that get closed."""

from __future__ import annotations

import secrets
import socket
import threading

import pytest
import redis
import requests
from werkzeug.serving import make_server

from bridge.lms import build_connector
from bridge.sandbox import SandboxState, create_sandbox_app

class LiveSandbox:
    """The sandbox served from a thread, read and steered over HTTP like any outside client would."""

    def __init__(self):
        self.state = SandboxState()
        self.server = make_server("127.0.0.1", 0, create_sandbox_app(self.state), threaded=True)
        self.base = f"http://127.0.0.1:{self.server.server_port}/sandbox"
        self.coursetoolkit_url = f"{self.base}/coursetoolkit/api"
        self.coursebox_url = f"{self.base}/coursebox"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def control(self, method: str, path: str, **kwargs) -> requests.Response:
        """Call a control endpoint and insist that it worked."""
        response = requests.request(method, f"{self.base}{path}", timeout=5, **kwargs)
        response.raise_for_status()
        return response

    def reset(self) -> None:
        """Restore the seed data; forget calls, tokens and faults."""
        self.control("POST", "/reset")

    def calls(self, path_contains: str = "") -> list[dict]:
        """Return the LMS calls received, oldest first, optionally only those whose path contains a text."""
        return [call for call in self.control("GET", "/calls").json()["calls"] if path_contains in call["path"]]

    def fault(self, **spec) -> None:
        """Inject a fault: status/count/retry_after/path/body, or latency."""
        self.control("POST", "/faults", json=spec)

    def snapshot(self) -> dict:
        """Return users, courses, enrolments and invitations of both LMSs."""
        return self.control("GET", "/state").json()


@pytest.fixture(scope="module")
def live_sandbox():
    """Serve one sandbox for a test module."""
    sandbox = LiveSandbox()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def lms_sandbox(live_sandbox):
    """Return the module's sandbox, reset for this test."""
    live_sandbox.reset()
    return live_sandbox


@pytest.fixture
def redis_name():
    """Return a connection name no other test (or concurrent test run) uses, so Redis keys never collide."""
    return f"t-{secrets.token_hex(4)}"


@pytest.fixture
def redis14(redis_name, redis_url):
    """Return a client on the tests' Redis; the keys of connections named `redis_name` go at the end."""
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=1)
    yield client
    for key in client.scan_iter(f"bridge:lms:{redis_name}:*"):
        client.delete(key)
    client.close()


@pytest.fixture
def connectors():
    """Return a function that builds connectors, all closed when the test ends."""
    built = []

    def build(name: str, spec: dict, redis=None, timeouts=(2.0, 5.0)):
        connector = build_connector(name, spec, redis=redis, timeouts=timeouts)
        built.append(connector)
        return connector

    yield build
    for connector in built:
        connector.close()


def closed_port_url(path: str = "") -> str:
    """Return a loopback URL on a port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def coursebox_spec(url: str, **overrides) -> dict:
    """Return a Coursebox connection spec for the sandbox's admin login."""
    from bridge.sandbox import COURSEBOX_EMAIL, COURSEBOX_PASSWORD

    return {"type": "coursebox", "url": url, "email": COURSEBOX_EMAIL, "password": COURSEBOX_PASSWORD, **overrides}


@pytest.fixture
def coursebox(lms_sandbox, connectors):
    """Return a Coursebox connector on the sandbox."""
    return connectors("coursebox", coursebox_spec(lms_sandbox.coursebox_url))

