"""A login token shared by every worker through the store, fetched by one worker at a time.

While logins fail, the connection backs off: at most one login attempt per backoff period, for
all workers together (the period doubles with each failure, up to a cap). Callers that find the
connection backing off get LoginBackoff instead of a login, so a failing LMS, or a wrong password
that could get the account locked, never sees a storm of logins.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from bridge.lms.store import locked

Login = Callable[[], tuple[str, float]]  # logs in; returns the token and the seconds to keep it

FIRST_BACKOFF = 2.0  # seconds without a login after the first failure
MAX_BACKOFF = 300.0  # the longest wait between two login attempts
HOLD = 5.0  # seconds a connector reuses the token it last saw before reading the shared one again


class LoginBackoff(Exception):
    """No login is tried now: the last ones failed; `retry_after` seconds until the next may be."""

    def __init__(self, failures: int, retry_after: float, last_error: str):
        super().__init__(f"{failures} login(s) failed in a row, the last with: {last_error}; "
                         f"next login attempt in {retry_after:.0f}s")
        self.failures, self.retry_after, self.last_error = failures, retry_after, last_error


class SharedToken:
    """One cached login per connection: read by all, renewed under a short lock so workers never stampede."""

    def __init__(self, store, key: str, lock_ttl: float, poll: float = 0.05, sleep=time.sleep,
                 first_backoff: float = FIRST_BACKOFF, max_backoff: float = MAX_BACKOFF, clock=time.time,
                 failures: tuple[type[BaseException], ...] = (Exception,), hold: float = HOLD):
        # lock_ttl must outlast one login, timeouts included.
        if not 0 < first_backoff <= max_backoff:
            raise ValueError(f"login backoff must be 0 < first <= max, got {first_backoff!r} and {max_backoff!r}")
        self.store, self.key, self.lock_key, self.backoff_key = store, key, f"{key}:lock", f"{key}:backoff"
        self.lock_ttl, self.poll, self.sleep, self.clock = lock_ttl, poll, sleep, clock
        self.first_backoff, self.max_backoff = first_backoff, max_backoff
        self.failures = failures  # the errors that count as a failed login (not, say, Redis going away)
        # The token this connector last saw, reused for `hold` seconds without a round trip to the store:
        # a token the LMS refuses is never reused, and a new one from another worker is seen within `hold`.
        self.hold, self._held = hold, ("", 0.0)

    def get(self, login: Login, refused: str | None = None) -> str:
        """Return the shared token; log in only when there is none, or only the one the LMS just refused.

        Raise LoginBackoff while the connection waits after failed logins; a login that fails here
        starts or lengthens that wait, and its error propagates.
        """
        token, until = self._held
        if token and token != refused and time.monotonic() < until:
            return token
        token = self.store.get(self.key)
        if token and token != refused:
            return self._keep(token)
        self.check_backoff()
        with locked(self.store, self.lock_key, self.lock_ttl, self.poll, self.sleep):
            token = self.store.get(self.key)  # the worker that held the lock before us may have logged in
            if token and token != refused:
                return self._keep(token)
            self.check_backoff()  # ... or failed to, and started a wait
            try:
                return self.renew(login)
            except self.failures as error:
                self.failed(error)
                raise

    def renew(self, login: Login) -> str:
        """Log in now, whatever is cached or however the last logins went, and share the new token."""
        token, ttl = login()
        self.store.set(self.key, token, ttl)
        self.store.delete(self.backoff_key)
        return self._keep(token, min(ttl, self.hold))

    def _keep(self, token: str, hold: float | None = None) -> str:
        """Remember the token for a while, so the next calls need no read of the store."""
        self._held = (token, time.monotonic() + (self.hold if hold is None else hold))
        return token

    def backoff(self) -> dict | None:
        """Return the current wait after failed logins ({failures, until, error}), None when logins may go."""
        raw = self.store.get(self.backoff_key)
        return json.loads(raw) if raw else None

    def check_backoff(self) -> None:
        """Raise LoginBackoff while the connection waits after failed logins."""
        state = self.backoff()
        if state and state["until"] > self.clock():
            raise LoginBackoff(state["failures"], state["until"] - self.clock(), state["error"])

    def failed(self, error: Exception) -> None:
        """Note a failed login: no other login for a period twice as long as the last one, up to the cap."""
        state = self.backoff() or {"failures": 0}
        failures = state["failures"] + 1
        wait = min(self.max_backoff, self.first_backoff * 2 ** (failures - 1))
        state = {"failures": failures, "until": self.clock() + wait, "error": str(error)[:300]}
        # Kept a while past the wait, so the next failure doubles it; a long quiet time starts afresh.
        self.store.set(self.backoff_key, json.dumps(state), wait + self.max_backoff)
