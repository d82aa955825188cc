"""JSON text for what the bridge stores and logs on every delivery: orjson's speed, the standard library's reach."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson


def dumps(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    """Return a value as compact JSON text; what orjson refuses (a lone surrogate, an integer past 64 bits) the standard library writes."""
    try:
        # With a `default`, dataclasses and dates go to it as with the standard library: orjson would write
        # every field of a dataclass, those kept out of its repr (secrets) too.
        options = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME if default else 0
        return orjson.dumps(value, default=default, option=options).decode()
    except TypeError:
        return json.dumps(value, default=default, separators=(",", ":"))
