"""Job timeouts for jobs run in threads: one watchdog thread for all of them, not a timer thread per job."""

from __future__ import annotations

import ctypes
import threading
import time
from functools import lru_cache

from rq.timeouts import BaseDeathPenalty, JobTimeoutException

CHECK_EVERY = 1.0  # seconds between the watchdog's looks: a timeout fires up to this late

_lock = threading.Lock()
_deadlines: dict[object, tuple[float, int, type[BaseException]]] = {}  # token -> (deadline, thread id, exception)
_watchdog: threading.Thread | None = None


class WatchdogDeathPenalty(BaseDeathPenalty):
    """RQ's job timeout in a thread: the job's thread gets the timeout exception once its deadline passes.

    RQ's TimerDeathPenalty starts (and ends) a thread per job, a cost paid on every job; this one
    registers a deadline that a single watchdog thread checks every second.
    """

    def __init__(self, timeout, exception=JobTimeoutException, **kwargs):
        super().__init__(timeout, exception, **kwargs)
        self._token = object()

    def setup_death_penalty(self):
        """Register this thread's deadline."""
        if self._timeout <= 0:
            return
        global _watchdog
        with _lock:
            _deadlines[self._token] = (time.monotonic() + self._timeout, threading.get_ident(),
                                       _with_message(self._exception, self._timeout))
            if _watchdog is None:
                _watchdog = threading.Thread(target=_watch, name="job timeouts", daemon=True)
                _watchdog.start()

    def cancel_death_penalty(self):
        """Drop the deadline: the job ended in time."""
        with _lock:
            _deadlines.pop(self._token, None)


@lru_cache(maxsize=64)
def _with_message(exception: type[BaseException], timeout) -> type[BaseException]:
    """Return a subclass of the exception that says the timeout (an asynchronous exception is raised from its class)."""
    message = f"Task exceeded maximum timeout value ({timeout} seconds)"
    return type(exception.__name__, (exception,), {"__init__": lambda self, *args: exception.__init__(self, message)})


def _watch() -> None:
    while True:
        time.sleep(CHECK_EVERY)
        now = time.monotonic()
        with _lock:  # held while raising, so a job that cancels its deadline first never gets the exception
            for token, (deadline, thread, exception) in list(_deadlines.items()):
                if deadline <= now:
                    del _deadlines[token]
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread), ctypes.py_object(exception))
