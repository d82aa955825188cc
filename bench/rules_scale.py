"""Benchmark: matching one event against 10 rules and against 10,000, in the same run.

Rules are spread over events (10 per event name), as a real rule set is; the index by
(source, event) should make the ratio close to 1. The same events are also matched by a
plain scan of every rule of the source, to show what the index saves. Loading is timed too:
each rule has a template of its own and one shared with the others; the 10 rules are the
process's first load, as when a receiver or worker starts.

    python bench/rules_scale.py [--rounds 2000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bridge.engine import decide, decide_all
from bridge.rules import load_rules

ENV = {"CB_URL": "http://127.0.0.1:9/cb"}
HEADER = """sources:
  shop:
    type: woocommerce
    secret: bench-secret
connections:
  cb:
    type: coursebox
    url: ${CB_URL}
    email: a@b.test
    password: x
rules:
"""
RULE = """  - name: rule-{i}
    source: shop
    event: order.e{event}
    when:
      - path: body.status
        equals: completed
      - path: body.line_items
        any_item:
          - path: sku
            equals: SKU-{i}
    actions:
      - connection: cb
        action: enroll
        with: {{course_id: "{{{{ body.course_id | default({i}) }}}}", email: "{{{{ body.billing.email | lower }}}}"}}
"""


def ruleset_of(count: int, folder: Path):
    """Write and load a rule file with `count` rules, ten per event name."""
    folder.mkdir()
    (folder / "rules.yaml").write_text(HEADER + "".join(RULE.format(i=i, event=i // 10) for i in range(count)))
    started = time.perf_counter()
    ruleset = load_rules(folder, ENV)
    return ruleset, time.perf_counter() - started


def per_match(function, rounds: int) -> float:
    """Return the best-of-three mean seconds of one call."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(rounds):
            function()
        best = min(best, (time.perf_counter() - started) / rounds)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000, help="matches per timing (default 2000)")
    parser.add_argument("--rules", type=int, default=10_000, help="rules in the large set (default 10000)")
    options = parser.parse_args()
    rounds, count = options.rounds, options.rules
    event = {"source": "shop", "event": "order.e0", "delivery_id": "b", "headers": {}, "query": {},
             "body": {"status": "completed", "billing": {"email": "a@b.test"}, "line_items": [{"sku": "SKU-3"}]}}
    with tempfile.TemporaryDirectory() as folder:
        small, small_load = ruleset_of(10, Path(folder) / "small")
        large, large_load = ruleset_of(count, Path(folder) / "large")
    assert [d.rule.name for d in decide_all(small, event) if d.matched] == ["rule-3"]
    assert [d.rule.name for d in decide_all(large, event) if d.matched] == ["rule-3"]
    indexed_small = per_match(lambda: decide_all(small, event), rounds)
    indexed_large = per_match(lambda: decide_all(large, event), rounds)
    scan_small = per_match(lambda: [decide(rule, event) for rule in small.rules_for("shop")], rounds)
    scan_large = per_match(lambda: [decide(rule, event) for rule in large.rules_for("shop")], max(1, rounds // 500))
    print(f"load:     10 rules {small_load * 1000:8.1f} ms   {count:,} rules {large_load * 1000:8.1f} ms   ratio {large_load / small_load:6.1f}")
    print(f"indexed:  10 rules {indexed_small * 1e6:8.1f} us   {count:,} rules {indexed_large * 1e6:8.1f} us   ratio {indexed_large / indexed_small:6.2f}")
    print(f"scan:     10 rules {scan_small * 1e6:8.1f} us   {count:,} rules {scan_large * 1e6:8.1f} us   ratio {scan_large / scan_small:6.0f}")


if __name__ == "__main__":
    main()
