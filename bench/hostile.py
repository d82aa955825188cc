"""Benchmark: what a maximal hostile body costs the receiver, as a ratio of a benign body of the same size.

Every body is --size bytes (default: the 1 MiB limit). The benign baselines are a signed WooCommerce
order (JSON) and a ThriveCart order (form data), each matched and queued. The hostile bodies are the
shapes that cost most to decode or match: form keys that append (`tags[]=`, once quadratic), deep
and long keys, as many values as the caps allow, deep JSON nesting, long numbers, escapes, and a text
built to make a backtracking regular expression run for ever (`^(a+)+$` on "aaa…!"). Form bodies go to
ThriveCart, whose secret sits inside the body, so they are decoded before the sender is known; JSON
bodies are sent both unsigned and signed (decoded only once the signature holds). Each request runs
in-process through the whole receiver (Flask test client, a real Redis); the median of --rounds
runs is taken. The aim is a worst ratio of at most 3.

    python bench/hostile.py [--size 1048576] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from harness import Stack, main_of, positive, run_tag

from bridge.bodies import BodyLimits

SECRET = "bench-hostile-secret"
RULES = """
sources:
  shop:
    type: woocommerce
    secret: %(secret)s
  cart:
    type: thrivecart
    secret: %(secret)s
connections:
  lms:
    type: coursebox
    url: http://127.0.0.1:9/coursebox
    email: bench@example.com
    password: bench-password
rules:
  - name: shop-order
    source: shop
    when:
      - path: body.status
        equals: completed
      - path: body.note
        matches: '^(a+)+$'
    actions:
      - connection: lms
        action: get_user
        with: {user_id: "{{ body.id }}"}
  - name: cart-order
    source: cart
    event: order.success
    when:
      - path: body.note
        matches: '^(a+)+$'
    actions:
      - connection: lms
        action: get_user
        with: {user_id: "{{ body.order_id }}"}
""" % {"secret": SECRET}


def pad_json(prefix: str, item: str, size: int, suffix: str = "]}") -> str:
    """Repeat `item` (comma-separated) between prefix and suffix until the text is about `size` bytes."""
    count = max(1, (size - len(prefix) - len(suffix)) // (len(item) + 1))
    return prefix + ",".join([item] * count) + suffix


def benign_json(size: int, tag: str) -> bytes:
    """A completed order with as many line items as fit: what a large real webhook looks like."""
    item = json.dumps({"sku": "COURSE-42", "name": "Food safety, level 2", "quantity": 1, "price": "19.90",
                       "meta": {"seat": "online", "cohort": "2026-12"}})
    head = json.dumps({"id": tag, "status": "completed", "note": "aaaa", "billing": {"email": "jo@example.com"}})[:-1]
    return pad_json(head + ', "line_items": [', item, size).encode()


def benign_form(size: int, tag: str, secret: str = SECRET) -> bytes:
    """A ThriveCart order with as many order lines as fit."""
    head = f"event=order.success&order_id={tag}&note=aaaa&customer[email]=jo%40example.com&thrivecart_secret={secret}"
    line = "&order[items][{i}][sku]=COURSE-42&order[items][{i}][name]=Food+safety&order[items][{i}][price]=19.90"
    parts, length, index = [head], len(head), 0
    while length < size - 120:
        text = line.format(i=index)
        parts.append(text)
        length += len(text)
        index += 1
    return "".join(parts).encode()


def hostile_forms(size: int) -> dict[str, bytes]:
    """Form bodies shaped to cost the most to decode, sent with a wrong secret."""
    tail = "&event=order.success&thrivecart_secret=wrong"
    filler = "x" * max(0, size // (BodyLimits().fields - 10) - 4)
    return {
        "form: tags[]= appended to the byte limit": (("tags[]=1&" * (size // 9))[: size - len(tail)] + tail).encode(),
        "form: t[]= up to the value cap": _repeat_to(size, "t[]=" + filler + "&", tail),
        "form: keys 31 deep, repeated": _repeat_to(size, "a" + "[b]" * 30 + "[{i}]=1&", tail),
        "form: keys of 512 characters": _repeat_to(size, "{i}" + "k" * 500 + "=1&", tail),
    }


def redos_form(size: int, tag: str) -> bytes:
    """A ThriveCart order with the right secret whose note makes a backtracking `^(a+)+$` run for ever."""
    head = f"event=order.success&thrivecart_secret={SECRET}&order_id={tag}&note="
    return (head + "a" * (size - len(head) - 1) + "!").encode()


def _repeat_to(size: int, pattern: str, tail: str) -> bytes:
    parts, length, index = [], len(tail), 0
    while True:
        text = pattern.format(i=index)
        if length + len(text) > size:
            break
        parts.append(text)
        length += len(text)
        index += 1
    return ("".join(parts) + tail).encode()


def hostile_jsons(size: int) -> dict[str, bytes]:
    """JSON bodies shaped to cost the most to decode or match."""
    return {
        "json: [[[[… to the byte limit": b"[" * size,
        "json: nested 950 deep, padded": (b"[" * 950 + b"]" * 950 + b" " * (size - 1900)),
        "json: values up to the cap": pad_json('{"status": "completed", "v": [',
                                               '"' + "x" * max(0, size // (BodyLimits().fields - 10) - 2) + '"', size).encode(),
        "json: [0,0,0,… past the cap": pad_json("[", "0", size, "]").encode(),
        "json: 100-digit numbers": pad_json('{"status": "completed", "n": [', "9" * 100, size).encode(),
        "json: \\u00e9 escapes in one text": ('{"status": "completed", "note": "' + "\\u00e9" * ((size - 40) // 6)
                                             + '"}').encode(),
        "json: 'aaa…!' for ^(a+)+$": ('{"status": "completed", "note": "' + "a" * (size - 40) + '!"}').encode(),
    }


def timed(client, path: str, make, rounds: int) -> tuple[float, int]:
    """Return the median seconds of `rounds` requests, `make(number)` giving each (body, headers), and the status."""
    seconds, statuses = [], set()
    for number in range(rounds):
        data, headers = make(number)
        started = time.perf_counter()
        response = client.post(path, data=data, headers=headers)
        seconds.append(time.perf_counter() - started)
        statuses.add(response.status_code)
        if response.status_code >= 500:
            raise SystemExit(f"bench: {path} answered {response.status_code}: {response.get_data()[:300]!r}")
    return statistics.median(seconds), min(statuses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=positive(int), default=1024 * 1024, help="bytes of every body (default 1 MiB)")
    parser.add_argument("--rounds", type=positive(int), default=5, help="requests per body, median taken (default 5)")
    args = parser.parse_args()

    from bridge import create_app
    from bridge.embedded import woocommerce_signature

    with Stack() as stack:
        rules = Path(stack.folder) / "rules"
        rules.mkdir()
        (rules / "hostile.yaml").write_text(RULES)
        # No replay window: a signed body sent again each round is then processed in full, not a duplicate.
        app = create_app({"redis_url": stack.redis(), "rules_dir": rules, "max_body_bytes": args.size,
                          "replay_window": 0, "log_level": "error"}, env={})
        client = app.test_client()
        run = run_tag()
        woo = {"Content-Type": "application/json", "X-WC-Webhook-Topic": "order.updated"}
        form = {"Content-Type": "application/x-www-form-urlencoded"}

        def signed(body: bytes, number: int = 0) -> dict:
            # A delivery id of its own each round: every accepted copy is processed in full, none a duplicate.
            return {**woo, "X-WC-Webhook-Signature": woocommerce_signature(body.decode("latin-1"), SECRET),
                    "X-WC-Webhook-Delivery-ID": f"{run}-{number}-{len(body)}-{body[:40].hex()}"}

        def fresh_json(number: int):
            body = benign_json(args.size, f"{run}-{number}")
            return body, signed(body, number)

        json_base, status = timed(client, "/hooks/shop", fresh_json, args.rounds)
        print(f"benign json order, signed, {args.size} B: {json_base * 1000:.1f} ms (status {status})")
        form_base, status = timed(client, "/hooks/cart", lambda n: (benign_form(args.size, f"{run}-{n}"), form), args.rounds)
        print(f"benign form order, ThriveCart, {args.size} B: {form_base * 1000:.1f} ms (status {status})")

        results = []
        forms = {name: (lambda n, body=body: (body, form)) for name, body in hostile_forms(args.size).items()}
        forms["form: 'aaa…!' for ^(a+)+$ (right secret)"] = lambda n: (redos_form(args.size, f"{run}-redos-{n}"), form)
        for name, make in forms.items():
            cost, status = timed(client, "/hooks/cart", make, args.rounds)
            results.append((cost / form_base, name, len(make(0)[0]), status, cost))
        for name, body in hostile_jsons(args.size).items():
            for how, make in (("unsigned", lambda n, body=body: (body, woo)),
                              ("signed", lambda n, body=body: (body, signed(body, n)))):
                cost, status = timed(client, "/hooks/shop", make, args.rounds)
                results.append((cost / json_base, f"{name} ({how})", len(body), status, cost))
        for ratio, name, length, status, cost in results:
            print(f"hostile {name}, {length} B: {cost * 1000:.1f} ms, status {status}, ratio {ratio:.2f}")
        ratio, name, *_ = max(results)
        print(f"ratio hostile/benign, worst: {ratio:.2f} ({name}; aim: at most 3)")


if __name__ == "__main__":
    main_of(main)
