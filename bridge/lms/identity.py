"""The identity map: which LMS user id an email belongs to, per connection, shared through the store.

Neither API looks a user up by email, so the bridge remembers every (email, id) pair it sees: in replies
to create_user and get_user, in Coursebox's course learner and administrator lists (directory.py), and
in ids an operator links by hand. That is what lets a second purchase reuse the account and a leave find
the user to remove. An entry the LMS contradicts (a 404, a reply naming another email) is forgotten.
"""

from __future__ import annotations

from collections.abc import Iterable


def normal(email) -> str:
    """Return the form an email is keyed by: trimmed and lowercased."""
    return str(email).strip().lower()


class IdentityMap:
    """Map emails to user ids of one LMS connection, in one hash of the store."""

    def __init__(self, store, key: str):
        self.store, self.key = store, key

    def on(self, store) -> IdentityMap:
        """Return this map read and written through another store (a lock's deferred writes, say)."""
        return IdentityMap(store, self.key)

    def get(self, email) -> str | None:
        """Return the user id remembered for an email, if any."""
        return self.store.hget(self.key, normal(email))

    def read_of(self, email) -> tuple:
        """Return `get` as a read a lock makes while it is taken (store.locked's `read`)."""
        return ("hget", self.key, normal(email))

    def remember(self, email, user_id) -> None:
        """Record that an email belongs to a user id (nothing when either is missing)."""
        if email not in (None, "") and user_id not in (None, ""):
            self.store.hset(self.key, {normal(email): str(user_id)})

    def remember_all(self, pairs: Iterable[tuple]) -> int:
        """Record many (email, user id) pairs at once, skipping incomplete ones; return how many were kept."""
        kept = {normal(email): str(user_id) for email, user_id in pairs
                if email not in (None, "") and user_id not in (None, "")}
        self.store.hset(self.key, kept)
        return len(kept)

    def all(self) -> dict[str, str]:
        """Return every remembered email with its user id."""
        return self.store.hgetall(self.key)

    def forget(self, email) -> None:
        """Drop an email whose user no longer exists."""
        self.store.hdel(self.key, normal(email))
