"""Benchmark: the console's pages with 100,000 deliveries stored against the same pages with 100, in the same run.

Every page reads a bounded amount (a page of 50, a filtered search of at most 2,000 records, one delivery),
so the ratio should stay small however long the history grows. Pages are rendered by the app in this process
(Flask's test client: the server's work and its Redis round trips, no HTTP), signed in as an operator.

    python bench/console_pages.py [--deliveries 100000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time

import redis

from harness import RULES, Stack, main_of, positive, run_tag, signed_order

TOKEN = "bench-console-token-0123456789"
CHUNK = 2_000


def sign_in(client) -> None:
    form = client.get("/admin/ui/login").get_data(as_text=True)
    nonce = re.search(r'name="nonce" value="([^"]+)"', form).group(1)
    reply = client.post("/admin/ui/login", data={"nonce": nonce, "token": TOKEN})
    if reply.status_code != 302:
        raise SystemExit(f"bench: sign-in answered {reply.status_code}")


def seed(client, count: int, run: str) -> list[str]:
    """Accept `count` real orders through the receiver (no worker: they stay queued); return their ids."""
    ids = []
    for number in range(count):
        body, headers = signed_order(number, run)
        reply = client.post("/hooks/shop", data=body, headers=headers)
        if reply.status_code != 202:
            raise SystemExit(f"bench: the receiver answered {reply.status_code}: {reply.get_data(as_text=True)[:300]}")
        ids.append(reply.get_json()["delivery_id"])
    return ids


def clone(connection: redis.Redis, template_id: str, count: int, run: str, oldest: float) -> None:
    """Store `count` more deliveries shaped like a real one, older than the seeded ones, each about its own buyer."""
    from bridge.deliveries import INDEX_KEY, RECORD_KEY

    template = {key.decode(): value.decode() for key, value in connection.hgetall(RECORD_KEY.format(template_id)).items()}
    for start in range(0, count, CHUNK):
        with connection.pipeline(transaction=False) as pipe:
            for number in range(start, min(start + CHUNK, count)):
                delivery_id = f"{run}-{number:07d}"
                received = oldest - 1 - number * 0.01
                record = {**{k: v for k, v in template.items() if not k.startswith("job:")}, "id": delivery_id,
                          "received_at": received, "jobs": json.dumps([f"{delivery_id}_0"]),
                          "subjects": json.dumps([f"old-{number}@example.com"]), f"job:{delivery_id}_0": "succeeded"}
                pipe.hset(RECORD_KEY.format(delivery_id), mapping=record)
                pipe.zadd(INDEX_KEY, {delivery_id: received})
            pipe.execute()


def measure(client, pages: dict[str, str], rounds: int) -> dict[str, float]:
    """Return each page's median time in seconds over `rounds` renders (after one warm-up)."""
    times = {}
    for name, path in pages.items():
        client.get(path)
        samples = []
        for _ in range(rounds):
            began = time.perf_counter()
            reply = client.get(path)
            samples.append(time.perf_counter() - began)
            if reply.status_code != 200:
                raise SystemExit(f"bench: {path} answered {reply.status_code}")
        times[name] = statistics.median(samples)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=positive(int), default=100_000, help="the large history (default 100000)")
    parser.add_argument("--small", type=positive(int), default=100, help="the small history (default 100)")
    parser.add_argument("--rounds", type=positive(int), default=15, help="renders per page and size (default 15)")
    parser.add_argument("--redis-url", help="use this Redis database instead of a server of our own (it gets EMPTIED)")
    args = parser.parse_args()

    from bridge import create_app
    from bridge.embedded import demo_env

    with Stack() as stack:
        url = stack.redis(args.redis_url)
        app = create_app({"redis_url": url, "rules_dir": RULES, "admin_token": TOKEN, "log_level": "error"},
                         env=demo_env("http://127.0.0.1:9"))
        client = app.test_client()
        sign_in(client)
        run = run_tag()
        ids = seed(client, args.small, run)
        newest = ids[-1]
        pages = {
            "list": "/admin/ui/deliveries",
            "list, rare filter": "/admin/ui/deliveries?status=failed",
            "list, by email": f"/admin/ui/deliveries?email=buyer-{run}-0@example.com",
            "one delivery": f"/admin/ui/deliveries/{newest}",
            "sources": "/admin/ui/sources",
            "source": "/admin/ui/sources/shop",
            "health": "/admin/ui/health",
        }
        small = measure(client, pages, args.rounds)
        connection = redis.Redis.from_url(url)
        began = time.perf_counter()
        oldest = json.loads(client.get(f"/admin/deliveries/{ids[0]}", headers={"Authorization": f"Bearer {TOKEN}"})
                            .get_data(as_text=True))["received_at"]
        clone(connection, newest, args.deliveries - args.small, run, oldest)
        stored = connection.zcard("bridge:deliveries")
        print(f"stored {stored} deliveries in {time.perf_counter() - began:.1f} s")
        large = measure(client, pages, args.rounds)
        print(f"{'page':20} {args.small:>8} stored {args.deliveries:>8} stored   ratio")
        for name in pages:
            print(f"{name:20} {small[name] * 1000:8.1f} ms {large[name] * 1000:8.1f} ms   {large[name] / small[name]:5.2f}")
        worst = max(pages, key=lambda name: large[name] / small[name])
        print(f"ratio {args.deliveries}/{args.small} stored, median page time: worst {large[worst] / small[worst]:.2f} ({worst}), "
              f"list {large['list'] / small['list']:.2f}, one delivery {large['one delivery'] / small['one delivery']:.2f}")


if __name__ == "__main__":
    main_of(main)
