"""Per-connection LMS limits shared by every worker: at most N requests in flight, at most R per period."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

# GCRA ("generic cell rate"): one key per connection holds when the next request is due.
# Returns 0 when a request may go now (and books it), else the milliseconds to wait.
_RATE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local emission, tolerance = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - tolerance > now then return tat - tolerance - now end
redis.call('SET', KEYS[1], tat + emission, 'PX', math.max(1, tat + emission - now))
return 0
"""
# A semaphore whose holders expire: a worker killed mid-request frees its slot when its lease ends.
_ACQUIRE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
  return 1
end
return 0
"""


class LimitReached(Exception):
    """A limit stayed full for longer than the caller may wait; `retry_after` says when to try again."""

    def __init__(self, what: str, retry_after: float):
        super().__init__(what)
        self.retry_after = retry_after


class Limits:
    """The concurrency cap and request rate of one connection, kept in Redis (or in memory without it)."""

    def __init__(self, name: str, concurrency: int | None = None, rate: dict | None = None, redis=None,
                 lease: float = 60.0, max_wait: float = 2.0):
        if concurrency is not None and concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency!r}")
        self.name, self.concurrency, self.lease, self.max_wait = name, concurrency, lease, max_wait
        self.emission_ms = self.tolerance_ms = None
        if rate:
            # N requests per T seconds: one every T/N, and a burst of N after a quiet period.
            self.emission_ms = rate["per"] * 1000 / rate["requests"]
            self.tolerance_ms = rate["per"] * 1000 - self.emission_ms
        self.redis = redis
        self._local = threading.Lock()
        self._local_slots: dict[str, float] = {}
        self._local_tat = 0.0
        if redis is not None:
            self._rate_script = redis.register_script(_RATE)
            self._acquire_script = redis.register_script(_ACQUIRE)

    @property
    def active(self) -> bool:
        """Tell whether this connection has any limit."""
        return self.concurrency is not None or self.emission_ms is not None

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Wait (briefly) for a free slot and a due time; raise LimitReached when they do not come."""
        if not self.active:
            yield
            return
        deadline = time.monotonic() + self.max_wait
        holder = uuid.uuid4().hex
        if self.concurrency is not None:
            self._wait(lambda: 0 if self._take(holder) else 50, deadline, "concurrency")
        try:
            if self.emission_ms is not None:
                self._wait(self._due_in, deadline, "request rate")
            yield
        finally:
            if self.concurrency is not None:
                self._give(holder)

    def _wait(self, check, deadline: float, what: str) -> None:
        while True:
            wait_ms = check()
            if wait_ms <= 0:
                return
            if time.monotonic() + wait_ms / 1000 > deadline:
                raise LimitReached(f"the bridge's {what} limit for connection {self.name!r} is reached",
                                   max(wait_ms / 1000, 1.0))
            time.sleep(min(wait_ms / 1000, 0.25))

    def _due_in(self) -> float:
        if self.redis is not None:
            return float(self._rate_script(keys=[f"bridge:lms:{self.name}:rate"], args=[self.emission_ms, self.tolerance_ms]))
        with self._local:
            now = time.monotonic() * 1000
            tat = max(self._local_tat, now)
            if tat - self.tolerance_ms > now:
                return tat - self.tolerance_ms - now
            self._local_tat = tat + self.emission_ms
            return 0.0

    def _take(self, holder: str) -> bool:
        if self.redis is not None:
            key = f"bridge:lms:{self.name}:inflight"
            return bool(self._acquire_script(keys=[key], args=[self.concurrency, holder, int(self.lease * 1000)]))
        with self._local:
            now = time.monotonic()
            self._local_slots = {h: end for h, end in self._local_slots.items() if end > now}
            if len(self._local_slots) >= self.concurrency:
                return False
            self._local_slots[holder] = now + self.lease
            return True

    def _give(self, holder: str) -> None:
        if self.redis is not None:
            self.redis.zrem(f"bridge:lms:{self.name}:inflight", holder)
        else:
            with self._local:
                self._local_slots.pop(holder, None)
