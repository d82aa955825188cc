"""Benchmark: the full acceptance path under gunicorn as a ratio of a bare Flask endpoint doing one RPUSH.

The bridge side is POST /hooks/shop with the example rules and distinct signed WooCommerce orders:
verify the signature, dedupe, match, store the delivery and enqueue its job in one atomic script (one round trip).
The bare side is bench/baseline.py: the same requests, gunicorn settings and Redis client, and one
RPUSH of the raw body. Both are loaded on keep-alive connections, bounded in count and time,
alternately, best round kept, by `wrk` when it is installed (Debian's package) and else by threads
of this process; the client's own CPU use is printed, since on a small machine it takes CPU from
the servers (more from the faster bare side, which flatters the ratio). On a shared or virtual
machine single rounds jump: the median ratio of each pair of rounds (bare, then bridge) and the CPU
each request took (gunicorn's processes and Redis, from /proc) are printed too.

    python bench/acceptance.py [--requests 2000] [--rounds 5] [--connections 8] [--workers 2] [--threads 4] [--client wrk]
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlsplit

import redis

from harness import BENCH, Stack, bridge_env, child_env, descendants, main_of, positive, run_tag, signed_order

WARMUP = 100  # requests per warm-up round: every gunicorn worker loads its rules and connects to Redis
WARMUP_ROUNDS = 5  # at most; warming up ends with the first round answered 202 throughout


@dataclass
class Round:
    """What one timed round of requests did."""

    statuses: Counter
    seconds: float
    client_cpu: float
    server_cpu: float = 0.0  # seconds of CPU the side's gunicorn processes used in the round
    redis_cpu: float = 0.0  # and its Redis server

    @property
    def done(self) -> int:
        return sum(self.statuses.values())

    @property
    def rate(self) -> float:
        return self.done / self.seconds

    def describe(self) -> str:
        errors = {status: count for status, count in self.statuses.items() if status != 202}
        return (f"{self.done:6d} requests in {self.seconds:6.2f} s = {self.rate:7.0f} req/s"
                f"   client CPU {self.client_cpu / self.seconds:4.0%} of a core"
                + (f"   NOT 202: {errors}" if errors else ""))


def load(base: str, path: str, requests: list[tuple[bytes, dict]], connections: int, seconds: float) -> Round:
    """POST each request once from `connections` threads on keep-alive connections; stop at the end or the time."""
    parts = urlsplit(base)
    numbers = itertools.count()
    deadline = time.monotonic() + seconds
    statuses: Counter = Counter()
    lock = threading.Lock()

    def client() -> None:
        seen: Counter = Counter()
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        while time.monotonic() < deadline:
            number = next(numbers)
            if number >= len(requests):
                break
            body, headers = requests[number]
            try:
                connection.request("POST", path, body, headers)
                response = connection.getresponse()
                response.read()
                seen[response.status] += 1
            except (OSError, http.client.HTTPException) as error:
                seen[type(error).__name__] += 1
                connection.close()
        connection.close()
        with lock:
            statuses.update(seen)

    threads = [threading.Thread(target=client) for _ in range(connections)]
    cpu, started = time.process_time(), time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Round(statuses, time.perf_counter() - started, time.process_time() - cpu)


def lua_string(text: str) -> str:
    """Quote a text for Lua (long brackets would turn its CR LF into LF)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "\\r").replace("\n", "\\n") + '"'


WRK_SCRIPT = """
local ffi = require("ffi")
ffi.cdef[[ typedef struct { long tv_sec; long tv_nsec; } bench_timespec; int clock_gettime(int, bench_timespec *); ]]
local function now() local t = ffi.new("bench_timespec"); ffi.C.clock_gettime(1, t); return tonumber(t.tv_sec) + tonumber(t.tv_nsec) / 1e9 end
local threads = {}
function setup(thread) table.insert(threads, thread) end
sent, replies, accepted, first, last = 0, 0, 0, 0, 0
function request()
  if sent == 0 then first = now() end
  sent = sent + 1
  return requests[math.min(sent, #requests)]
end
function response(status)
  replies = replies + 1
  if status == 202 then accepted = accepted + 1 end
  if replies == COUNT then
    last = now()
    io.write("bench-finished\\n"); io.flush()
    wrk.thread:stop()
  end
end
function done(summary)
  local t = threads[1]
  local elapsed = t:get("last") > 0 and t:get("last") - t:get("first") or summary.duration / 1e6
  io.write(string.format("bench-result %d %d %.6f\\n", t:get("replies"), t:get("accepted"), elapsed))
end
"""


def load_wrk(base: str, path: str, requests: list[tuple[bytes, dict]], count: int, connections: int, seconds: float,
             folder) -> Round:
    """POST `count` of the requests with wrk (one thread, `connections` connections).

    The requests beyond `count` cover those in flight when wrk stops, so that no order is sent twice.
    """
    parts = urlsplit(base)
    raw = [f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: {len(body)}\r\n"
           + "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n" + body.decode()
           for body, headers in requests]
    script = folder / "requests.lua"
    script.write_text("requests = {\n" + ",\n".join(map(lua_string, raw)) + "\n}\n" + WRK_SCRIPT.replace("COUNT", str(count)))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = subprocess.Popen(["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
                                "-s", str(script), base + path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    for text in process.stdout:
        output.append(text)
        if text.startswith("bench-finished"):
            # wrk's main thread sleeps out its whole duration; SIGINT ends that sleep once the count is reached.
            process.send_signal(signal.SIGINT)
    process.wait(timeout=60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = re.search(r"^bench-result (\d+) (\d+) ([\d.]+)$", "".join(output), re.MULTILINE)
    if process.returncode != 0 or result is None:
        raise SystemExit(f"bench: wrk failed ({process.returncode}):\n{''.join(output)}")
    replies, accepted, elapsed = int(result.group(1)), int(result.group(2)), float(result.group(3))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", "".join(output))
    statuses = Counter({202: accepted, "not 202": replies - accepted,
                        "socket errors": sum(map(int, errors.groups())) if errors else 0})
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return Round(+statuses, elapsed, cpu)


def cpu_seconds(pids: list[int]) -> float:
    """Return the CPU time (user and system) some processes have used so far; 0 where /proc cannot tell."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def per_request_cpu(rounds: list[Round], requests: int) -> tuple[float, float]:
    """Return the median CPU microseconds per request of a side's gunicorn processes and of Redis."""
    return (statistics.median(r.server_cpu for r in rounds) / requests * 1e6,
            statistics.median(r.redis_cpu for r in rounds) / requests * 1e6)


def warm_up(base: str, orders: list[tuple[bytes, dict]], connections: int, seconds: float) -> tuple[int, Counter]:
    """Send warm-up rounds until one is all 202; return how many requests were sent and the other answers."""
    sent, others = 0, Counter()
    for index in range(WARMUP_ROUNDS):
        result = load(base, "/hooks/shop", orders[index * WARMUP:(index + 1) * WARMUP], connections, seconds)
        sent += result.done
        others.update({status: count for status, count in result.statuses.items() if status != 202})
        if result.statuses[202] == result.done:
            break
    return sent, others


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=positive(int), default=2000, help="requests per side and round (default 2000)")
    parser.add_argument("--seconds", type=positive(float), default=12.0, help="time bound of one round (default 12)")
    parser.add_argument("--rounds", type=positive(int), default=5,
                        help="alternating rounds; the best of each side is kept (default 5)")
    parser.add_argument("--connections", type=positive(int), default=8, help="concurrent client connections (default 8)")
    parser.add_argument("--workers", type=positive(int), default=2, help="gunicorn workers of both servers (default 2)")
    parser.add_argument("--threads", type=positive(int), default=4, help="gunicorn threads per worker (default 4)")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto",
                        help="load generator: wrk, threads of this process, or wrk if it is installed (default auto)")
    parser.add_argument("--redis-url", help="a Redis database to use and EMPTY (default: a redis-server of our own)")
    options = parser.parse_args()
    client = ("wrk" if shutil.which("wrk") else "python") if options.client == "auto" else options.client
    if client == "wrk" and not shutil.which("wrk"):
        parser.error("--client wrk: no wrk on PATH (apt-get install wrk)")

    run = run_tag()
    warm, size = WARMUP * WARMUP_ROUNDS, options.requests + options.connections
    orders = [signed_order(number, run) for number in range(warm + size * options.rounds)]
    with Stack() as stack:
        url = stack.redis(options.redis_url)
        settings = dict(workers=options.workers, threads=options.threads)
        redis_pids = [stack.processes[-1].popen.pid] if not options.redis_url else []
        bare = stack.gunicorn("bare app", "baseline:create_app()", child_env(REDIS_URL=url), pythonpath=BENCH, **settings)
        servers = {bare: stack.processes[-1].popen.pid}
        bridge = stack.gunicorn("bridge", "bridge:create_app()", bridge_env(url), **settings)
        servers[bridge] = stack.processes[-1].popen.pid
        print(f"acceptance: {options.requests} distinct signed orders per side and round, {options.connections} connections "
              f"from {'wrk' if client == 'wrk' else 'threads of this process'}, gunicorn {options.workers} worker(s) x "
              f"{options.threads} thread(s) each side, Redis {url}", flush=True)

        def timed(base: str, batch: list) -> Round:
            pids = [servers[base], *descendants(servers[base])]
            before = cpu_seconds(pids), cpu_seconds(redis_pids)
            if client == "wrk":
                done = load_wrk(base, "/hooks/shop", batch, options.requests, options.connections, options.seconds,
                                stack.folder)
            else:
                done = load(base, "/hooks/shop", batch[:options.requests], options.connections, options.seconds)
            done.server_cpu, done.redis_cpu = cpu_seconds(pids) - before[0], cpu_seconds(redis_pids) - before[1]
            return done

        warm_up(bare, orders[:warm], options.connections, options.seconds)
        warm_sent, warm_others = warm_up(bridge, orders[:warm], options.connections, options.seconds)
        rounds: dict[str, list[Round]] = {"bare": [], "bridge": []}
        for index in range(options.rounds):
            batch = orders[warm + index * size:warm + (index + 1) * size]
            rounds["bare"].append(timed(bare, batch))
            rounds["bridge"].append(timed(bridge, batch))

        connection = redis.Redis.from_url(url)
        queued, pushed = connection.llen("rq:queue:bridge"), connection.llen("bench:bare")
        accepted = sum(r.statuses[202] for r in rounds["bridge"]) + warm_sent - sum(warm_others.values())
        connection.close()

    best = {side: max(found, key=lambda r: r.rate) for side, found in rounds.items()}
    if warm_others:
        print(f"WARNING: while the bridge warmed up, {sum(warm_others.values())} of {warm_sent} requests were not "
              f"answered 202 but {dict(warm_others)}; the timed rounds below came after that")
    print(f"bare RPUSH endpoint (best of {options.rounds}):  {best['bare'].describe()}")
    print(f"bridge POST /hooks/shop (best of {options.rounds}): {best['bridge'].describe()}")
    if queued < accepted:
        print(f"WARNING: {accepted} orders answered 202 but only {queued} jobs are queued")
    print(f"jobs queued by the bridge: {queued}; bodies pushed by the bare app: {pushed}")
    cpu = {side: per_request_cpu(found, options.requests) for side, found in rounds.items()}
    if all(sum(values) for values in cpu.values()):
        # On a shared or virtual machine the rates of single rounds jump; the CPU each request took varies less.
        print("CPU per request (median of rounds): "
              + "; ".join(f"{side} {server:.0f} us gunicorn + {redis:.0f} us Redis" for side, (server, redis) in cpu.items())
              + f"; ratio bare/bridge {sum(cpu['bare']) / sum(cpu['bridge']):.2f}")
    paired = statistics.median(bridge.rate / bare.rate for bare, bridge in zip(rounds["bare"], rounds["bridge"]))
    print(f"ratio bridge/bare, median of the rounds' pairs: {paired:.2f}")
    print(f"ratio bridge/bare: {best['bridge'].rate / best['bare'].rate:.2f}  (aim: at least 0.6)")


if __name__ == "__main__":
    main_of(main)
