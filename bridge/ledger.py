"""A running job's bookkeeping (LMS exchanges, call timings, checkpoints) written in one Redis round trip per step.

A completed step's checkpoint goes out just before the next LMS call (or with the job's end), so a rerun
never repeats a step whose checkpoint could have been written: the same promise as writing it at once,
without a round trip of its own.
"""

from __future__ import annotations

from typing import Callable

from rq import get_current_job

Write = Callable[[object], None]  # adds commands to a pipeline


class Ledger:
    """Writes gathered while a job runs, sent together with the next checkpoint or the job's end."""

    def __init__(self, job):
        self.job = job
        self.pending: list[Write] = []
        self.unsaved = False  # a step completed since the job's meta was last written

    def add(self, write: Write) -> None:
        """Gather one write for the next flush."""
        self.pending.append(write)

    def flush(self, *writes: Write) -> None:
        """Send the gathered writes, a pending checkpoint and these in one round trip."""
        job = self.job
        meta = [lambda pipe: pipe.hset(job.key, "meta", job.serializer.dumps(job.meta))] if self.unsaved else []
        batch, self.pending = [*self.pending, *meta, *writes], []
        if not batch:
            return
        with job.connection.pipeline(transaction=False) as pipe:
            for write in batch:
                write(pipe)
            pipe.execute()
        self.unsaved = False

    def checkpoint(self) -> None:
        """Note that a step completed: the job's meta (its completed steps) goes out with the next flush."""
        self.unsaved = True

    def settle(self) -> None:
        """Write a pending checkpoint now: the next LMS call must not start before it is stored."""
        if self.unsaved:
            self.flush()


def open_ledger(job) -> Ledger:
    """Give a job the ledger its LMS calls write into."""
    job.ledger = Ledger(job)
    return job.ledger


def current() -> Ledger | None:
    """Return the ledger of the job running in this thread, if any."""
    job = get_current_job()
    return getattr(job, "ledger", None) if job else None
