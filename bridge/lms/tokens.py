"""A login token shared by every worker through the store, fetched by one worker at a time."""

from __future__ import annotations

import time
from collections.abc import Callable

from bridge.lms.store import locked

Login = Callable[[], tuple[str, float]]  # logs in; returns the token and the seconds to keep it


class SharedToken:
    """One cached login per connection: read by all, renewed under a short lock so workers never stampede."""

    def __init__(self, store, key: str, lock_ttl: float, poll: float = 0.05, sleep=time.sleep):
        # lock_ttl must outlast one login, timeouts included.
        self.store, self.key, self.lock_key = store, key, f"{key}:lock"
        self.lock_ttl, self.poll, self.sleep = lock_ttl, poll, sleep

    def get(self, login: Login, refused: str | None = None) -> str:
        """Return the shared token; log in only when there is none, or only the one the LMS just refused."""
        token = self.store.get(self.key)
        if token and token != refused:
            return token
        with locked(self.store, self.lock_key, self.lock_ttl, self.poll, self.sleep):
            token = self.store.get(self.key)  # the worker that held the lock before us may have logged in
            return token if token and token != refused else self.renew(login)

    def renew(self, login: Login) -> str:
        """Log in now, whatever is cached, and share the new token."""
        token, ttl = login()
        self.store.set(self.key, token, ttl)
        return token
