"""Retry policy as data: how often a failed job is tried again, how long to wait, and when to give up."""

from __future__ import annotations

import random
from dataclasses import dataclass

from rq import Retry

from .settings import Settings


@dataclass(frozen=True)
class RetryPolicy:
    """Retries after the first try, the waits between them, and the oldest a delivery may be to retry."""

    attempts: int
    intervals: tuple[int, ...]
    max_age: int | None = None
    jitter: float = 0.2

    def __post_init__(self):
        if self.attempts < 0:
            raise ValueError(f"attempts must not be negative, got {self.attempts!r}")
        if self.attempts and not self.intervals:
            raise ValueError("intervals must hold at least one wait when attempts is positive")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter!r}")

    @classmethod
    def of(cls, settings: Settings, *overrides: dict | None) -> RetryPolicy:
        """Build the policy from the settings, then a connection's and a rule's `retry:` blocks (later wins)."""
        attempts, intervals, max_age = settings.retry_max, tuple(settings.retry_intervals), settings.retry_max_age or None
        for override in overrides:
            if not override:
                continue
            intervals = tuple(override.get("intervals", intervals))
            attempts = override.get("attempts", len(intervals) if "intervals" in override else attempts)
            max_age = override.get("max_age", max_age)
        return cls(attempts, intervals or (0,), max_age)

    def rq_retry(self) -> Retry | None:
        """Return RQ's Retry for enqueueing, or None when the policy allows no retry."""
        return Retry(max=self.attempts, interval=list(self.intervals)) if self.attempts else None

    def delay(self, retry_number: int, retry_after: float | None = None, rng: random.Random | None = None) -> int:
        """Return the seconds before retry number `retry_number` (0 is the first): backoff, jitter, Retry-After as a floor."""
        base = self.intervals[min(retry_number, len(self.intervals) - 1)]
        # Jitter spreads the retries of a burst that failed together, so they do not return together.
        wait = base * (1 + (rng or random).uniform(-self.jitter, self.jitter))
        if retry_after:
            wait = max(wait, retry_after)
        return max(0, round(wait))
