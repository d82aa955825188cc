"""Benchmark: worker throughput against a slow LMS (every call 200 ms) as the jobs in flight grow.

For each in-flight count K (BRIDGE_WORKER_CONCURRENCY), orders are queued (not timed) and one
`bridge worker --burst` in threads mode performs them against `bridge sandbox` with a latency fault
on every call: a Coursebox createAccount and enrolUser each, after one login. The baseline, in the
same round, replays exactly those LMS calls from this process with K threads (one keep-alive
session each) against the same slow sandbox: the most K calls in flight can give. Each line prints
the worker's rate, the baseline's, their ratio, and the worker's speed-up over K = 1; rounds
alternate worker and baseline at every K.

    python bench/slow_lms.py [--latency 0.2] [--in-flight 1,2,4,8] [--jobs-per-slot 5] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics

from harness import Client, Stack, bridge_env, main_of, positive, run_tag
from worker_throughput import burst, queue_orders, replay


def counts(text: str) -> list[int]:
    """Parse a comma-separated list of positive in-flight counts."""
    values = [int(part) for part in text.split(",")]
    if not values or min(values) < 1:
        raise ValueError(f"in-flight counts must be positive whole numbers, got {text!r}")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=positive(float), default=0.2, help="seconds the sandbox adds to every call (default 0.2)")
    parser.add_argument("--in-flight", type=counts, default=[1, 2, 4, 8], help="in-flight counts to measure (default 1,2,4,8)")
    parser.add_argument("--jobs-per-slot", type=positive(int), default=5, help="jobs per round: this times K, plus K (default 5)")
    parser.add_argument("--rounds", type=positive(int), default=2, help="rounds at each K (default 2)")
    parser.add_argument("--seconds", type=positive(float), default=60.0, help="time bound of each worker run (default 60)")
    parser.add_argument("--redis-url", help="a Redis database to use and EMPTY (default: a redis-server of our own)")
    options = parser.parse_args()

    run = run_tag()
    results: dict[int, list[tuple[float, float]]] = {k: [] for k in options.in_flight}
    with Stack() as stack:
        url = stack.redis(options.redis_url)
        sandbox = stack.sandbox()
        receiver = stack.gunicorn("bridge", "bridge:create_app()", bridge_env(url, sandbox), workers=1, threads=1)
        print(f"slow LMS: every sandbox call takes {options.latency * 1000:.0f} ms more; one `bridge worker --burst` "
              f"(threads mode) per round; in flight: {', '.join(map(str, options.in_flight))}; Redis {url}", flush=True)
        first = 0
        for number in range(options.rounds):
            for k in options.in_flight:
                jobs = options.jobs_per_slot * k + k
                job_ids = queue_orders(Client(receiver), jobs, run, first)
                first += jobs
                env = bridge_env(url, sandbox, BRIDGE_WORKER_MODE="threads", BRIDGE_WORKER_CONCURRENCY=k)
                done = burst(stack, env, url, sandbox, job_ids, 1, options.seconds, latency=options.latency)
                if not done.done:
                    raise SystemExit(f"bench: no job finished in {done.wall:.1f} s; the worker said:\n{done.tail}")
                seconds, failures = replay(sandbox, done.calls, in_flight=k, latency=options.latency)
                direct = done.done / seconds
                results[k].append((done.rate, direct))
                print(f"round {number + 1}, {k:2d} in flight: worker {done.done:4d} jobs = {done.rate:6.2f} jobs/s{done.problems()}"
                      f"   direct, {k} threads: {direct:6.2f} jobs/s" + (f" ({failures} calls failed)" if failures else "")
                      + f"   ratio {done.rate / direct:.3f}", flush=True)
    base = statistics.median(rate for rate, _ in results[options.in_flight[0]])
    for k, pairs in results.items():
        rate = statistics.median(rate for rate, _ in pairs)
        ratio = statistics.median(worker / direct for worker, direct in pairs)
        print(f"in flight {k:2d}: worker {rate:6.2f} jobs/s, {rate / base:4.1f}x the rate at {options.in_flight[0]} in flight;"
              f"   ratio worker/direct {ratio:.3f}")


if __name__ == "__main__":
    main_of(main)
