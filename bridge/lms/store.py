"""Where connectors keep tokens, login locks and identity maps: Redis when given, else process memory."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from redis.exceptions import RedisError

from bridge.errors import QueueUnavailable

# Delete a lock only if it still holds our value: an expired lock may already belong to another worker.
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class MemoryStore:
    """Keep values for as long as the connector lives (no Redis given)."""

    def __init__(self, clock=time.monotonic):
        self._clock, self._lock = clock, threading.Lock()
        self._values: dict[str, tuple[str, float]] = {}
        self._hashes: dict[str, dict[str, str]] = {}

    def _live(self, key: str) -> str | None:
        value, expires = self._values.get(key, (None, 0.0))
        return value if value is not None and self._clock() < expires else None

    def get(self, key: str) -> str | None:
        """Return a value unless it has expired."""
        with self._lock:
            return self._live(key)

    def set(self, key: str, value: str, ttl: float) -> None:
        """Store a value for `ttl` seconds."""
        with self._lock:
            self._values[key] = (value, self._clock() + ttl)

    def swap(self, key: str, value: str, ttl: float) -> str | None:
        """Store a value for `ttl` seconds; return the one it replaced."""
        with self._lock:
            old, self._values[key] = self._live(key), (value, self._clock() + ttl)
            return old

    def add(self, key: str, value: str, ttl: float) -> bool:
        """Store a value for `ttl` seconds unless the key holds one; say whether it was stored."""
        with self._lock:
            if self._live(key) is not None:
                return False
            self._values[key] = (value, self._clock() + ttl)
            return True

    def add_then_read(self, key: str, value: str, ttl: float, read: tuple) -> tuple[bool, object]:
        """Add (as `add`) and, if that stored it, make one read: ("hget", name, field), say; return both."""
        if not self.add(key, value, ttl):
            return False, None
        name, *args = read
        return True, getattr(self, name)(*args)

    def release(self, key: str, value: str, writes: Iterable[tuple] = ()) -> None:
        """Make these writes (("hset", name, values), say), then delete a key if it still holds this value."""
        for name, *args in writes:
            getattr(self, name)(*args)
        with self._lock:
            if self._live(key) == value:
                del self._values[key]

    def delete(self, key: str) -> None:
        """Forget a value."""
        with self._lock:
            self._values.pop(key, None)

    def hget(self, name: str, field: str) -> str | None:
        """Read one field of a hash."""
        with self._lock:
            return self._hashes.get(name, {}).get(field)

    def hgetall(self, name: str) -> dict[str, str]:
        """Read a whole hash."""
        with self._lock:
            return dict(self._hashes.get(name, {}))

    def hset(self, name: str, values: Mapping[str, str]) -> None:
        """Write fields of a hash."""
        with self._lock:
            self._hashes.setdefault(name, {}).update(values)

    def hdel(self, name: str, field: str) -> None:
        """Delete one field of a hash."""
        with self._lock:
            self._hashes.get(name, {}).pop(field, None)


class RedisStore:
    """Keep values in Redis so every RQ work horse (and `bridge lms`) shares them."""

    def __init__(self, client):
        self._client = client

    def _run(self, what: str, call, *args, **kwargs):
        try:
            value = call(*args, **kwargs)
        except RedisError as exc:
            raise QueueUnavailable(f"Redis failed while the LMS connector {what}: {type(exc).__name__}") from exc
        return _text(value)

    def get(self, key: str) -> str | None:
        """Return a value unless it has expired."""
        return self._run("read a cache key", self._client.get, key)

    def set(self, key: str, value: str, ttl: float) -> None:
        """Store a value for `ttl` seconds."""
        self._run("wrote a cache key", self._client.set, key, value, px=_ms(ttl))

    def swap(self, key: str, value: str, ttl: float) -> str | None:
        """Store a value for `ttl` seconds; return the one it replaced."""
        return self._run("wrote a cache key", self._client.set, key, value, px=_ms(ttl), get=True)

    def add(self, key: str, value: str, ttl: float) -> bool:
        """Store a value for `ttl` seconds unless the key holds one; say whether it was stored."""
        return bool(self._run("took a lock", self._client.set, key, value, nx=True, px=_ms(ttl)))

    def add_then_read(self, key: str, value: str, ttl: float, read: tuple) -> tuple[bool, object]:
        """Add (as `add`) and, in the same round trip, make one read: ("hget", name, field), say; return both."""
        with self._client.pipeline(transaction=False) as pipe:
            queued, (name, *args) = RedisStore(pipe), read
            queued.add(key, value, ttl)
            getattr(queued, name)(*args)
            taken, found = self._run("took a lock", pipe.execute)
        return (True, _text(found)) if taken else (False, None)

    def release(self, key: str, value: str, writes: Iterable[tuple] = ()) -> None:
        """Make these writes (("hset", name, values), say), then delete a key if it still holds this value: one round trip."""
        with self._client.pipeline(transaction=bool(writes)) as pipe:
            queued = RedisStore(pipe)
            for name, *args in writes:
                getattr(queued, name)(*args)
            pipe.eval(_RELEASE, 1, key, value)
            self._run("released a lock", pipe.execute)

    def delete(self, key: str) -> None:
        """Forget a value."""
        self._run("deleted a key", self._client.delete, key)

    def hget(self, name: str, field: str) -> str | None:
        """Read one field of a hash."""
        return self._run("read the identity map", self._client.hget, name, field)

    def hgetall(self, name: str) -> dict[str, str]:
        """Read a whole hash."""
        found = self._run("read the identity map", self._client.hgetall, name)
        return {key.decode(): value.decode() for key, value in found.items()}

    def hset(self, name: str, values: Mapping[str, str]) -> None:
        """Write fields of a hash."""
        if values:
            self._run("wrote the identity map", self._client.hset, name, mapping=dict(values))

    def hdel(self, name: str, field: str) -> None:
        """Delete one field of a hash."""
        self._run("wrote the identity map", self._client.hdel, name, field)


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def _ms(ttl: float) -> int:
    return max(1, int(ttl * 1000))


def make_store(redis=None) -> MemoryStore | RedisStore:
    """Return a store on this Redis client, or one in memory when there is none."""
    return RedisStore(redis) if redis is not None else MemoryStore()


class Held:
    """A lock in hand: what was read as it was taken, and the writes to make as it is released."""

    def __init__(self, read):
        self.read, self.writes = read, []
        # The store's write methods (set, delete, hset, ...), recorded to be made with the release.
        self.later = _Recorder(self.writes)


class _Recorder:
    WRITES = frozenset({"set", "delete", "hset", "hdel"})  # one command each, so they queue on a pipeline

    def __init__(self, writes: list):
        self._writes = writes

    def __getattr__(self, name: str):
        if name not in self.WRITES:
            raise AttributeError(f"{name!r} is not a write a lock's release can make (one of {sorted(self.WRITES)})")
        return lambda *args: self._writes.append((name, *args))


@contextmanager
def locked(store, key: str, ttl: float, poll: float = 0.05, sleep=time.sleep, read: tuple | None = None) -> Iterator[Held]:
    """Hold a lock of the store, waiting while another worker holds it; it ends after `ttl` seconds regardless.

    `read` (("hget", name, field), say) is made in the round trip that takes the lock, and the writes
    recorded on `held.later` are made in the one that releases it: they happen even if the body raises.
    `ttl` must outlast the work done under the lock: a worker that dies holding it blocks the others that long.
    """
    if ttl <= 0:
        raise ValueError(f"lock ttl must be positive, got {ttl!r}")
    nonce = secrets.token_hex(8)
    while True:
        taken, found = store.add_then_read(key, nonce, ttl, read) if read else (store.add(key, nonce, ttl), None)
        if taken:
            break
        sleep(poll)
    held = Held(found)
    try:
        yield held
    finally:
        store.release(key, nonce, held.writes)
