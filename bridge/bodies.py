"""Decode a webhook's raw body into data, the way senders actually encode it."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl

from .errors import BadRequest

_BRACKETS = re.compile(r"\[([^\[\]]*)\]")
# Deeper nesting than any real sender uses; a cap keeps a hostile body from building huge trees.
_MAX_DEPTH = 32
_MAX_INDEX = 10_000


def decode_body(raw: bytes, content_type: str | None) -> dict | list:
    """Decode a JSON or form-encoded body, or raise BadRequest saying why not."""
    mimetype = (content_type or "").split(";", 1)[0].strip().lower()
    if not raw.strip():
        return {}
    if mimetype == "application/json" or mimetype.endswith("+json"):
        return _decode_json(raw)
    if mimetype == "application/x-www-form-urlencoded":
        return decode_form(_text(raw))
    if mimetype in ("", "text/plain", "application/octet-stream"):
        # Senders without a content type still send JSON or form data; tell them apart by shape.
        text = _text(raw).lstrip()
        if text[:1] in ("{", "["):
            return _decode_json(raw)
        if "=" in text:
            return decode_form(text)
        raise BadRequest("body is neither JSON nor form data")
    raise BadRequest(f"unsupported content type {mimetype!r}: send application/json or application/x-www-form-urlencoded")


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadRequest(f"body is not UTF-8 text (byte {error.start})") from None


def _decode_json(raw: bytes) -> dict | list:
    try:
        data = json.loads(_text(raw))
    except json.JSONDecodeError as error:
        raise BadRequest(f"body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    except RecursionError:
        raise BadRequest("body is not valid JSON: nested too deeply") from None
    if not isinstance(data, (dict, list)):
        raise BadRequest(f"JSON body must be an object or an array, got {type(data).__name__}")
    return data


def decode_form(text: str) -> dict:
    """Decode form data, turning PHP-style keys such as customer[email] into nested objects."""
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False, errors="strict")
    except (UnicodeDecodeError, ValueError) as error:
        raise BadRequest(f"form body cannot be decoded: {error}") from None
    root: dict = {}
    for key, value in pairs:
        _assign(root, _split_key(key), value)
    return {key: _listify(value) for key, value in root.items()}


def _split_key(key: str) -> list[str]:
    head, bracket, _ = key.partition("[")
    if not bracket or not head:
        return [key]
    tail = key[len(head):]
    parts = _BRACKETS.findall(tail)
    # Keep a key literal when its brackets are not well formed, as PHP does for the remainder.
    if "".join(f"[{part}]" for part in parts) != tail:
        return [key]
    if len(parts) > _MAX_DEPTH:
        raise BadRequest(f"form key {key[:60]!r} is nested deeper than {_MAX_DEPTH} levels")
    return [head, *parts]


def _assign(node: dict, parts: list[str], value: str) -> None:
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "":
            # An empty bracket appends, like tags[]=a&tags[]=b.
            part = str(sum(1 for name in node if _is_index(name)))
        if last:
            node[part] = value
            return
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child


def _listify(node):
    """Turn objects whose keys are exactly 0..n-1 into lists."""
    if not isinstance(node, dict):
        return node
    items = {key: _listify(value) for key, value in node.items()}
    keys = list(items)
    if keys and all(_is_index(key) for key in keys) and len(keys) <= _MAX_INDEX:
        if sorted(int(key) for key in keys) == list(range(len(keys))):
            return [items[str(index)] for index in range(len(keys))]
    return items


def _is_index(key: str) -> bool:
    return key.isascii() and key.isdigit()
