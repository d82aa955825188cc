"""Benchmark: worker jobs per second against the LMS sandbox, as a ratio of the same LMS calls made directly.

N distinct signed orders are accepted by the bridge under gunicorn (not timed), then `bridge worker
--burst` performs their N jobs against `bridge sandbox`: a Coursebox createAccount and enrolUser
each, after one login. The rate is N over the span from the first job's start to the last job's
end, from RQ's own job records. The baseline replays exactly the LMS calls the sandbox recorded
(same paths, bodies and order, with a fresh login) from this one process on one keep-alive
`requests.Session`, after resetting the sandbox; best of three.

    python bench/worker_throughput.py [--jobs 200] [--workers 1]
"""

from __future__ import annotations

import argparse
import time

import redis
import requests
from rq.job import Job

from harness import PYTHON, Client, Stack, bridge_env, main_of, positive, run_tag, signed_order

REPLAYS = 3


def replay(sandbox: str, calls: list[dict]) -> tuple[float, int]:
    """Reset the sandbox and make the same LMS calls from one session; return the seconds and the failures."""
    from bridge.sandbox_state import COURSEBOX_EMAIL, COURSEBOX_PASSWORD, COURSETOOLKIT_API_KEY

    requests.post(f"{sandbox}/sandbox/reset", timeout=10).raise_for_status()
    failures, token = 0, None
    with requests.Session() as session:
        started = time.perf_counter()
        for call in calls:
            url, body = sandbox + call["path"], call["body"]
            if call["path"].endswith("/auth/login"):
                body = {"email": COURSEBOX_EMAIL, "password": COURSEBOX_PASSWORD}
            kwargs: dict = {"params": call["query"] or None, "timeout": 10}
            if call["lms"] == "coursetoolkit":
                # The sandbox records secrets as ***: put the real key back so that the call does the same work.
                kwargs["data"] = {**body, "api-key": COURSETOOLKIT_API_KEY} if isinstance(body, dict) else body
            elif isinstance(body, (dict, list)):
                kwargs["json"] = body
            elif body is not None:
                kwargs["data"] = body
            if token and call["lms"] == "coursebox":
                kwargs["headers"] = {"X-Access-Token": token}
            response = session.request(call["method"], url, **kwargs)
            if call["path"].endswith("/auth/login") and response.ok:
                token = response.json()["token"]["id"]
            failures += response.status_code >= 400
        return time.perf_counter() - started, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=positive(int), default=200, help="jobs to perform (default 200)")
    parser.add_argument("--workers", type=positive(int), default=1, help="`bridge worker --burst` processes (default 1)")
    parser.add_argument("--mode", choices=("fork", "inline"), default="fork",
                        help="BRIDGE_WORKER_MODE of the workers: a work horse per job, or jobs in the worker (default fork)")
    parser.add_argument("--seconds", type=positive(float), default=40.0,
                        help="time bound of the workers' run (default 40)")
    parser.add_argument("--redis-url", help="a Redis database to use and EMPTY (default: a redis-server of our own)")
    options = parser.parse_args()

    run = run_tag()
    with Stack() as stack:
        url = stack.redis(options.redis_url)
        sandbox = stack.sandbox()
        env = bridge_env(url, sandbox, BRIDGE_WORKER_MODE=options.mode)
        receiver = Client(stack.gunicorn("bridge", "bridge:create_app()", env, workers=1, threads=1))
        job_ids = [job for number in range(options.jobs)
                   for job in receiver.post("/hooks/shop", *signed_order(number, run))["jobs"]]
        print(f"worker throughput: {len(job_ids)} jobs queued (one completed order each), {options.workers} "
              f"`bridge worker --burst` (fork per job), LMS sandbox {sandbox}, Redis {url}", flush=True)

        started = time.monotonic()
        workers = [stack.start(f"bridge worker {index}", [PYTHON, "-m", "bridge", "worker", "--burst"], env)
                   for index in range(options.workers)]
        for worker in workers:
            worker.wait(max(0.1, started + options.seconds - time.monotonic()))
        wall = time.monotonic() - started
        for worker in workers:
            worker.stop()

        connection = redis.Redis.from_url(url)
        jobs = [job for job in Job.fetch_many(job_ids, connection=connection) if job is not None]
        done = [job for job in jobs if job.get_status(refresh=False) == "finished"]
        failed = [job for job in jobs if job.get_status(refresh=False) == "failed"]
        connection.close()
        calls = requests.get(f"{sandbox}/sandbox/calls", timeout=10).json()["calls"]
        if not done:
            raise SystemExit(f"bench: no job finished in {wall:.1f} s; the worker said:\n{workers[0].tail()}")
        span = (max(job.ended_at for job in done) - min(job.started_at for job in done)).total_seconds()
        replays = [replay(sandbox, calls) for _ in range(REPLAYS)]

    rate = len(done) / span
    direct_seconds, direct_failures = min(replays)
    direct_rate = len(done) / direct_seconds
    unfinished = len(job_ids) - len(done) - len(failed)
    problems = [f"{len(failed)} failed" if failed else "", f"{unfinished} not done in time" if unfinished else ""]
    print(f"bridge worker: {len(done):5d} jobs in {span:6.2f} s = {rate:7.1f} jobs/s   ({len(calls)} LMS calls; "
          f"the workers ran {wall:.1f} s from start to exit)" + "".join(f"   {text}" for text in problems if text))
    print(f"direct calls:  the same {len(calls)} LMS calls from one process, best of {REPLAYS}: {direct_seconds:6.2f} s "
          f"= {direct_rate:7.1f} jobs/s" + (f"   {direct_failures} calls failed" if direct_failures else ""))
    print(f"ratio worker/direct: {rate / direct_rate:.3f}")


if __name__ == "__main__":
    main_of(main)
