"""Benchmark: webhook-to-LMS-call latency when idle, p50 and p99, against the same path without the bridge.

One signed order at a time is posted to the bridge under gunicorn; a real `bridge worker` (its default
threads mode, or `--mode fork`) on a real Redis performs the job against the LMS sandbox (`bridge sandbox`). The latency runs from just
before the POST to the time the sandbox recorded the LMS call, both read from this machine's clock.

The baseline is the same trip without the bridge's work: a POST to a bare Flask app under the same
gunicorn settings that enqueues an RQ job, run by a stock RQ worker (RQ's default: a fork per job),
which makes one LMS call to the sandbox on a new HTTP session. That same call made from here is
printed too, for scale. Samples of both alternate, and each waits until the previous job has finished.

    python bench/latency.py [--samples 100]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime

import redis
import requests

from baseline import call_lms
from harness import (BENCH, PYTHON, Client, Stack, bridge_env, child_env, main_of, percentile, positive, run_tag,
                     signed_order, wait_for)

WARMUP = 5  # samples of each side first: the Coursebox login, imports and connections happen once
IDLE_GAP = 0.05  # seconds between samples, for the worker to finish its bookkeeping after the job
JOB_TIMEOUT = 30.0  # seconds one job may take before the benchmark gives up
JOB_DONE = {b"finished", b"failed", b"stopped", b"canceled"}


def recorded_at(call: dict) -> float:
    """Return when the sandbox recorded a call, as seconds since the epoch."""
    return datetime.fromisoformat(call["time"].replace("Z", "+00:00")).timestamp()


class Trip:
    """Post, wait for the job to finish, and read the LMS calls it made from the sandbox."""

    def __init__(self, connection: redis.Redis, sandbox: str):
        self.redis, self.sandbox = connection, sandbox
        self.session = requests.Session()

    def run(self, post) -> tuple[float, float, list[dict]]:
        """Call post() (which returns the job id); return its start, its answer's time and the LMS calls that followed."""
        started = time.time()
        job_id = post()
        answered = time.time()
        status = wait_for(lambda: self._status(job_id), f"job {job_id} to finish", timeout=JOB_TIMEOUT, every=0.002)
        if status != b"finished":
            raise SystemExit(f"bench: job {job_id} ended {status.decode()}")
        calls = self.session.get(f"{self.sandbox}/sandbox/calls", timeout=10).json()["calls"]
        self.session.delete(f"{self.sandbox}/sandbox/calls", timeout=10)
        time.sleep(IDLE_GAP)
        return started, answered, [call for call in calls if not call["path"].endswith("/auth/login")]

    def _status(self, job_id: str):
        status = self.redis.hget(f"rq:job:{job_id}", "status")
        return status if status in JOB_DONE else None


def line(label: str, values: list[float]) -> str:
    return f"{label:<46} p50 {percentile(values, 0.5) * 1000:7.1f} ms   p99 {percentile(values, 0.99) * 1000:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=positive(int), default=100,
                        help="orders (and baseline jobs) timed (default 100)")
    parser.add_argument("--seconds", type=positive(float), default=40.0, help="time bound of the timed samples (default 40)")
    parser.add_argument("--workers", type=positive(int), default=2, help="gunicorn workers of both receivers (default 2)")
    parser.add_argument("--threads", type=positive(int), default=4, help="gunicorn threads per worker (default 4)")
    parser.add_argument("--mode", choices=("threads", "fork"), default="threads",
                        help="BRIDGE_WORKER_MODE of the bridge's worker (default threads, the bridge's default)")
    parser.add_argument("--redis-url", help="a Redis database to use and EMPTY (default: a redis-server of our own)")
    options = parser.parse_args()

    run = run_tag()
    with Stack() as stack:
        url = stack.redis(options.redis_url)
        sandbox = stack.sandbox()
        toolkit = f"{sandbox}/sandbox/coursetoolkit/api"
        settings = dict(workers=options.workers, threads=options.threads)
        bare = stack.gunicorn("bare app", "baseline:create_app()", child_env(REDIS_URL=url), pythonpath=BENCH, **settings)
        bridge = stack.gunicorn("bridge", "bridge:create_app()", bridge_env(url, sandbox), **settings)
        workers = [stack.start("bridge worker", [PYTHON, "-m", "bridge", "worker"],
                               bridge_env(url, sandbox, BRIDGE_WORKER_MODE=options.mode)),
                   stack.start("rq worker", [PYTHON, str(BENCH / "baseline.py"), "worker", url, "bench-baseline"], child_env())]
        connection = redis.Redis.from_url(url)
        wait_for(lambda: connection.scard("rq:workers") >= 2, "both workers to register", watch=workers)
        print(f"latency: {options.samples} orders one at a time when idle; gunicorn {options.workers} worker(s) x "
              f"{options.threads} thread(s) each side, one RQ worker each side (the bridge's in {options.mode} mode), Redis {url}", flush=True)

        bridge_client, bare_client = Client(bridge), Client(bare)
        payload = json.dumps({"url": toolkit}).encode()
        numbers = iter(range(10**9))

        def post_order() -> str:
            body, headers = signed_order(next(numbers), run)
            return bridge_client.post("/hooks/shop", body, headers)["jobs"][0]

        def post_baseline() -> str:
            return bare_client.post("/enqueue", payload, {"Content-Type": "application/json"})["jobs"][0]

        trip = Trip(connection, sandbox)
        for _ in range(WARMUP):
            trip.run(post_order)
            trip.run(post_baseline)
        first, last, baseline, direct, answers, bare_answers = [], [], [], [], [], []
        deadline = time.monotonic() + options.seconds
        while len(first) < options.samples and (not first or time.monotonic() < deadline):
            started, answered, calls = trip.run(post_order)
            answers.append(answered - started)
            first.append(min(recorded_at(call) for call in calls) - started)
            last.append(max(recorded_at(call) for call in calls if call["path"].endswith("/enrolUser")) - started)
            started, answered, calls = trip.run(post_baseline)
            bare_answers.append(answered - started)
            baseline.append(recorded_at(calls[0]) - started)
        for _ in range(len(first)):
            started = time.perf_counter()
            call_lms(toolkit)
            direct.append(time.perf_counter() - started)
        connection.close()

    note = "" if len(first) == options.samples else f"  (time bound reached after {len(first)} samples)"
    print(line("one LMS call from here, new connection:", direct) + note)
    print(line("baseline: POST answered (job enqueued):", bare_answers))
    print(line("baseline: POST -> RQ job -> its LMS call:", baseline))
    print(line("bridge: webhook answered 202:", answers))
    print(line("bridge: webhook -> first LMS call:", first))
    print(line("bridge: webhook -> last LMS call (enrolment):", last))
    print(f"ratio bridge/baseline, first LMS call: p50 {percentile(first, 0.5) / percentile(baseline, 0.5):.2f}"
          f"   p99 {percentile(first, 0.99) / percentile(baseline, 0.99):.2f}")


if __name__ == "__main__":
    main_of(main)
