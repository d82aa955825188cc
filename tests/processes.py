"""Helpers for tests that start real processes: wait for them, stop them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import redis
import requests


def wait_for(check, timeout: float = 60.0, every: float = 0.1, what: str = "condition"):
    """Poll until check() returns a truthy value; fail after a generous, bounded time."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (requests.RequestException, redis.RedisError, OSError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def start(args: list[str], env: dict, cwd=None) -> subprocess.Popen:
    """Start a process in its own group, so that stopping it stops its children too."""
    return subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def stop(process: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 30.0) -> str:
    """Stop a process group and return everything it printed."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
    return output or ""


def child_env(**values) -> dict:
    """Return this environment without REDIS_URL, plus the given values (None removes one)."""
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    env["PYTHONUNBUFFERED"] = "1"
    for key, value in values.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


PYTHON = sys.executable


def descendants(pid: int) -> list[int]:
    """Return the pids of a process's children, grandchildren and so on (RQ's work horses start their own session)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(process: subprocess.Popen) -> str:
    """SIGKILL a process and every process under it at once, as a PaaS does to a dyno that will not stop."""
    for pid in [process.pid, *descendants(process.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return stop(process, sig=signal.SIGKILL)
