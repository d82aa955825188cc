"""Logging: one JSON line per event for log drains, or readable lines on a terminal; never a secret."""

from __future__ import annotations

import functools
import logging
import sys
import time

from . import jsontext
from .redaction import REDACTED, is_secret_name

# Attributes every LogRecord has; anything else was passed with `extra=` and belongs in the JSON line.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
# RQ attaches a failed job's whole arguments to its error line: the webhook body, people's data; the job id is enough.
_STANDARD |= {"arguments", "kwargs"}

# Field names come from the code, not from requests: a small cache holds them all.
_secret_field = functools.lru_cache(maxsize=256)(is_secret_name)


def _fields(record: logging.LogRecord) -> dict:
    return {key: (REDACTED if _secret_field(key) else value)
            for key, value in vars(record).items() if key not in _STANDARD and not key.startswith("_")}


@functools.lru_cache(maxsize=4)
def utc_second(seconds: int) -> str:
    """Return a whole second as ISO 8601 in UTC (logs and RQ's job times write many within each second)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


class JSONFormatter(logging.Formatter):
    """Format a record as one JSON object per line, with its `extra=` fields (delivery_id, rule, ...)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": f"{utc_second(int(record.created))}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return jsontext.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """Format a record for people: time, level, message, then the fields as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{key}={value}" for key, value in _fields(record).items())
        text = f"{time.strftime('%H:%M:%S', time.localtime(record.created))} {record.levelname:<7} {record.getMessage()}"
        text = f"{text}  {fields}" if fields else text
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _StderrHandler(logging.StreamHandler):
    """Write to whatever sys.stderr is at the time, as Python's last-resort handler does (test runners swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def configure_logging(level: str = "INFO", fmt: str = "auto", stream=None) -> None:
    """Send every log line (the bridge's, RQ's, gunicorn's errors) through one handler, on stderr unless told."""
    if fmt == "auto":
        fmt = "text" if (stream or sys.stderr).isatty() else "json"
    if fmt not in ("json", "text"):
        raise ValueError(f"log format must be json, text or auto, got {fmt!r}")
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(JSONFormatter() if fmt == "json" else TextFormatter())
    handler._bridge = True
    # No format here or in gunicorn shows where a line was logged from: skip finding it out for each line
    # (the logging HOWTO's "Optimization" section; a receiver logs every delivery).
    logging._srcfile = None
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not getattr(h, "_bridge", False)] + [handler]
    root.setLevel(level.upper())
