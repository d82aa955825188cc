"""Benchmark: worker jobs per second against the LMS sandbox, as a ratio of the same LMS calls made directly.

N distinct signed orders are accepted by the bridge under gunicorn (not timed), then `bridge worker
--burst` performs their N jobs against `bridge sandbox`: a Coursebox createAccount and enrolUser
each, after one login. The rate is N over the span from the first job's start to the last job's
end, from RQ's own job records. The baseline replays exactly the LMS calls the sandbox recorded
in that round (same paths, bodies and order, with a fresh login) from this one process on one
`requests.Session` (the sandbox closes every connection, for both), after resetting the sandbox,
twice: its time is the mean of the two.
Rounds alternate worker and baseline; the ratio of each round is printed, then the median.

    python bench/worker_throughput.py [--jobs 200] [--mode threads|fork] [--concurrency 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import redis
import requests
from rq.job import Job

from harness import PYTHON, Client, Stack, bridge_env, main_of, positive, run_tag, signed_order


class Round:
    """What one worker run did: jobs done, failed and left, their span, and the LMS calls the sandbox recorded."""

    def __init__(self, done: int, failed: int, unfinished: int, span: float, wall: float, calls: list[dict], tail: str):
        self.done, self.failed, self.unfinished, self.span, self.wall, self.calls, self.tail = (
            done, failed, unfinished, span, wall, calls, tail)

    @property
    def rate(self) -> float:
        return self.done / self.span if self.span else 0.0

    def problems(self) -> str:
        parts = [f"{self.failed} failed" if self.failed else "", f"{self.unfinished} not done in time" if self.unfinished else ""]
        return "".join(f"   {part}" for part in parts if part)


def queue_orders(receiver: Client, count: int, run: str, first: int) -> list[str]:
    """Post `count` distinct signed orders to the bridge; return their job ids."""
    return [job for number in range(first, first + count)
            for job in receiver.post("/hooks/shop", *signed_order(number, run))["jobs"]]


def reset(sandbox: str, latency: float = 0.0) -> None:
    """Reset the sandbox (users, ids, calls, tokens) and set its latency, so that every run starts alike."""
    requests.post(f"{sandbox}/sandbox/reset", timeout=10).raise_for_status()
    if latency:
        requests.post(f"{sandbox}/sandbox/faults", json={"latency": latency}, timeout=10).raise_for_status()


def burst(stack: Stack, env: dict, url: str, sandbox: str, job_ids: list[str], workers: int, seconds: float,
          latency: float = 0.0) -> Round:
    """Run `bridge worker --burst` processes over the queued jobs and read back what they did."""
    reset(sandbox, latency)
    connection = redis.Redis.from_url(url)
    stale = list(connection.scan_iter("bridge:lms:*:token*"))
    if stale:
        connection.delete(*stale)  # the reset sandbox forgot its tokens: every run logs in once, as the baseline does
    started = time.monotonic()
    processes = [stack.start(f"bridge worker {index}", [PYTHON, "-m", "bridge", "worker", "--burst"], env)
                 for index in range(workers)]
    for process in processes:
        process.wait(max(0.1, started + seconds - time.monotonic()))
    wall = time.monotonic() - started
    for process in processes:
        process.stop()
    jobs = [job for job in Job.fetch_many(job_ids, connection=connection) if job is not None]
    done = [job for job in jobs if job.get_status(refresh=False) == "finished"]
    failed = [job for job in jobs if job.get_status(refresh=False) == "failed"]
    connection.close()
    calls = requests.get(f"{sandbox}/sandbox/calls", timeout=10).json()["calls"]
    span = (max(job.ended_at for job in done) - min(job.started_at for job in done)).total_seconds() if done else 0.0
    return Round(len(done), len(failed), len(job_ids) - len(done) - len(failed), span, wall, calls, processes[0].tail())


def replay(sandbox: str, calls: list[dict], in_flight: int = 1, latency: float = 0.0) -> tuple[float, int]:
    """Reset the sandbox, log in, and make the same LMS calls from `in_flight` threads, one session each.

    Return the seconds (login included) and the calls that failed.
    """
    from bridge.sandbox_state import COURSEBOX_EMAIL, COURSEBOX_PASSWORD, COURSETOOLKIT_API_KEY

    reset(sandbox, latency)
    work = [call for call in calls if not call["path"].endswith("/auth/login")]
    login = next((call for call in calls if call["path"].endswith("/auth/login")), None)
    failures, token = [0] * in_flight, None

    def send(session: requests.Session, call: dict) -> requests.Response:
        kwargs: dict = {"params": call["query"] or None, "timeout": 30}
        body = call["body"]
        if call["lms"] == "coursetoolkit":
            # The sandbox records secrets as ***: put the real key back so that the call does the same work.
            kwargs["data"] = {**body, "api-key": COURSETOOLKIT_API_KEY} if isinstance(body, dict) else body
        elif isinstance(body, (dict, list)):
            kwargs["json"] = body
        elif body is not None:
            kwargs["data"] = body
        if token and call["lms"] == "coursebox":
            kwargs["headers"] = {"X-Access-Token": token}
        return session.request(call["method"], sandbox + call["path"], **kwargs)

    def lane(index: int) -> None:
        with requests.Session() as session:
            for call in work[index::in_flight]:
                failures[index] += send(session, call).status_code >= 400

    started = time.perf_counter()
    if login is not None:
        with requests.Session() as session:
            response = send(session, {**login, "body": {"email": COURSEBOX_EMAIL, "password": COURSEBOX_PASSWORD}})
            token = response.json()["token"]["id"] if response.ok else None
    lanes = [threading.Thread(target=lane, args=(index,)) for index in range(in_flight)]
    for thread in lanes:
        thread.start()
    for thread in lanes:
        thread.join()
    return time.perf_counter() - started, sum(failures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=positive(int), default=200, help="jobs to perform per round (default 200)")
    parser.add_argument("--workers", type=positive(int), default=1, help="`bridge worker --burst` processes (default 1)")
    parser.add_argument("--mode", choices=("threads", "fork"), default="threads",
                        help="BRIDGE_WORKER_MODE of the workers (default threads, the bridge's default)")
    parser.add_argument("--concurrency", type=positive(int), default=8,
                        help="BRIDGE_WORKER_CONCURRENCY of the workers in threads mode (default 8, the bridge's default)")
    parser.add_argument("--rounds", type=positive(int), default=3, help="rounds of worker then baseline (default 3)")
    parser.add_argument("--seconds", type=positive(float), default=40.0, help="time bound of each worker run (default 40)")
    parser.add_argument("--redis-url", help="a Redis database to use and EMPTY (default: a redis-server of our own)")
    options = parser.parse_args()

    run = run_tag()
    ratios = []
    with Stack() as stack:
        url = stack.redis(options.redis_url)
        sandbox = stack.sandbox()
        env = bridge_env(url, sandbox, BRIDGE_WORKER_MODE=options.mode, BRIDGE_WORKER_CONCURRENCY=options.concurrency)
        receiver = stack.gunicorn("bridge", "bridge:create_app()", env, workers=1, threads=1)
        how = f"{options.concurrency} jobs in flight each" if options.mode == "threads" else "a work horse per job"
        print(f"worker throughput: {options.jobs} jobs per round (one completed order each), {options.workers} "
              f"`bridge worker --burst` in {options.mode} mode ({how}), LMS sandbox {sandbox}, Redis {url}", flush=True)
        for number in range(options.rounds):
            job_ids = queue_orders(Client(receiver), options.jobs, run, number * options.jobs)
            done = burst(stack, env, url, sandbox, job_ids, options.workers, options.seconds)
            if not done.done:
                raise SystemExit(f"bench: no job finished in {done.wall:.1f} s; the worker said:\n{done.tail}")
            # Replayed twice and averaged: this machine's speed drifts within seconds, and the worker ran between.
            replays = [replay(sandbox, done.calls) for _ in range(2)]
            direct_seconds, direct_failures = statistics.mean(r[0] for r in replays), max(r[1] for r in replays)
            direct_rate = done.done / direct_seconds
            ratios.append(done.rate / direct_rate)
            print(f"round {number + 1}: bridge worker {done.done:5d} jobs in {done.span:6.2f} s = {done.rate:7.1f} jobs/s "
                  f"({len(done.calls)} LMS calls){done.problems()}   direct, one session: {direct_seconds:6.2f} s = "
                  f"{direct_rate:7.1f} jobs/s" + (f" ({direct_failures} calls failed)" if direct_failures else "")
                  + f"   ratio {ratios[-1]:.3f}", flush=True)
    print(f"ratio worker/direct: {statistics.median(ratios):.3f} (median of {len(ratios)} rounds: "
          f"{', '.join(f'{ratio:.3f}' for ratio in ratios)})")


if __name__ == "__main__":
    main_of(main)
