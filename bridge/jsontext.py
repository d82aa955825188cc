"""JSON text for what the bridge stores and logs on every delivery: orjson's speed, the standard library's reach."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson


def dumps(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    """Return a value as compact JSON text; what orjson refuses (a lone surrogate, an integer past 64 bits) the standard library writes."""
    try:
        return orjson.dumps(value, default=default).decode()
    except TypeError:
        return json.dumps(value, default=default, separators=(",", ":"))
