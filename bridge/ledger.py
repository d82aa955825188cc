"""A running job's bookkeeping (LMS exchanges, call timings, checkpoints) written in one Redis round trip per step."""

from __future__ import annotations

from typing import Callable

from rq import get_current_job

Write = Callable[[object], None]  # adds commands to a pipeline


class Ledger:
    """Writes gathered while a job runs, sent together with the next checkpoint or the job's end."""

    def __init__(self, job):
        self.job = job
        self.pending: list[Write] = []

    def add(self, write: Write) -> None:
        """Gather one write for the next flush."""
        self.pending.append(write)

    def flush(self, *writes: Write) -> None:
        """Send the gathered writes and these in one round trip."""
        batch, self.pending = [*self.pending, *writes], []
        if not batch:
            return
        with self.job.connection.pipeline(transaction=False) as pipe:
            for write in batch:
                write(pipe)
            pipe.execute()

    def checkpoint(self) -> None:
        """Save the job's meta (its completed steps) with everything gathered before it."""
        job = self.job
        self.flush(lambda pipe: pipe.hset(job.key, "meta", job.serializer.dumps(job.meta)))


def open_ledger(job) -> Ledger:
    """Give a job the ledger its LMS calls write into."""
    job.ledger = Ledger(job)
    return job.ledger


def current() -> Ledger | None:
    """Return the ledger of the job running in this thread, if any."""
    job = get_current_job()
    return getattr(job, "ledger", None) if job else None
