"""Decode a webhook's raw body into data the way senders encode it, in time linear in its size and within caps."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote_plus

import orjson

from .errors import BadRequest

_BRACKETS = re.compile(r"\[([^\[\]]*)\]")


@dataclass(frozen=True)
class BodyLimits:
    """Caps on a decoded body; each one broken is a 400 that names it."""

    # Values in the whole body, objects and lists included: 1 MiB of real JSON holds 30,000 to 70,000.
    fields: int = 100_000
    # Containers inside containers; real senders stay under 10.
    depth: int = 32
    key_length: int = 512
    # Digits of one whole number: 64-bit ids have 20; Python's int() refuses past 4,300.
    number_length: int = 100


def decode_body(raw: bytes, content_type: str | None, limits: BodyLimits = BodyLimits()) -> dict | list:
    """Decode a JSON or form-encoded body, or raise BadRequest saying why not."""
    mimetype = (content_type or "").split(";", 1)[0].strip().lower()
    if not raw.strip():
        return {}
    if mimetype == "application/json" or mimetype.endswith("+json"):
        return _decode_json(raw, limits)
    if mimetype == "application/x-www-form-urlencoded":
        return decode_form(_text(raw), limits)
    if mimetype in ("", "text/plain", "application/octet-stream"):
        # Senders without a content type still send JSON or form data; tell them apart by shape.
        text = _text(raw).lstrip()
        if text[:1] in ("{", "["):
            return _decode_json(raw, limits)
        if "=" in text:
            return decode_form(text, limits)
        raise BadRequest("body is neither JSON nor form data")
    raise BadRequest(f"unsupported content type {mimetype[:60]!r}: send application/json or application/x-www-form-urlencoded")


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadRequest(f"body is not UTF-8 text (byte {error.start})") from None


_LONG_INTEGER = re.compile(r"-\d{19}|\d{20}")


def _decode_json(raw: bytes, limits: BodyLimits) -> dict | list:
    text = _text(raw)
    try:
        # orjson takes strict JSON within 64-bit integers, fast; anything else (an error, a huge number,
        # a lone surrogate escape) the standard library decodes or explains, exactly as before. (orjson
        # would read an integer past 64 bits as a float: a body with such a long number takes the slow road.)
        data = orjson.loads(text) if not _LONG_INTEGER.search(text) else _decode_json_slowly(text, limits)
    except orjson.JSONDecodeError:
        data = _decode_json_slowly(text, limits)
    if not isinstance(data, (dict, list)):
        raise BadRequest(f"JSON body must be an object or an array, got {type(data).__name__}")
    _check_tree(data, limits)
    return data


def _decode_json_slowly(text: str, limits: BodyLimits):
    def constant(name: str):
        raise BadRequest(f"body is not valid JSON: {name} is not a JSON value")

    try:
        # No per-number hook: numbers are parsed in C and checked in the walk, so `[0,0,0,…` stays cheap.
        return json.loads(text, parse_constant=constant)
    except json.JSONDecodeError as error:
        raise BadRequest(f"body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    except RecursionError:
        raise BadRequest(f"body is nested deeper than {limits.depth} levels") from None
    except ValueError:  # Python's own cap on the digits of an int (4,300)
        raise BadRequest(f"body has a number longer than {limits.number_length} characters") from None


def _check_tree(data, limits: BodyLimits) -> None:
    """Refuse a decoded JSON body past the caps, or holding text that cannot be stored (lone surrogates)."""
    stack, count, largest = [(data, 1)], 1, 10 ** limits.number_length
    while stack:  # a loop, not recursion; containers are counted before they are walked, so a huge one costs nothing
        node, depth = stack.pop()
        if isinstance(node, str):
            _storable(node)
            continue
        if isinstance(node, float) and not math.isfinite(node):
            raise BadRequest("body has a number too large to store")
        if isinstance(node, int) and not isinstance(node, bool) and abs(node) >= largest:
            raise BadRequest(f"body has a number longer than {limits.number_length} characters")
        if not isinstance(node, (dict, list)):
            continue
        if depth > limits.depth:
            raise BadRequest(f"body is nested deeper than {limits.depth} levels")
        count += len(node)
        if count > limits.fields:
            raise BadRequest(f"body has more than {limits.fields} values")
        if isinstance(node, list):
            stack.extend((item, depth + 1) for item in node)
            continue
        for key, value in node.items():
            if len(key) > limits.key_length:
                raise BadRequest(f"body has a key longer than {limits.key_length} characters")
            _storable(key)
            stack.append((value, depth + 1))


def _storable(text: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # JSON can escape half of a surrogate pair (\\ud800); no store or LMS could take it.
            raise BadRequest("body has text that is not valid Unicode (a lone surrogate escape)") from None


def form_value(raw: bytes, name: str) -> str | None:
    """Return the first value of a top-level form field, found without decoding the rest of the body.

    For a sender whose proof is a field of its body (ThriveCart): a hostile body is refused for
    the price of one split, before any of it is decoded into objects.
    """
    prefix = name.encode() + b"="
    for pair in raw.split(b"&"):
        if pair.startswith(prefix):
            try:
                return unquote_plus(pair[len(prefix):].decode("utf-8"), errors="strict")
            except UnicodeDecodeError:
                return None
    return None


def looks_like_json(raw: bytes) -> bool:
    """Tell whether a body is JSON by its first character, as `decode_body` does without a content type."""
    return raw.lstrip()[:1] in (b"{", b"[")


class _Node(dict):
    """An object being built from form keys; remembers where the next `[]` appends, as PHP does."""

    __slots__ = ("next_index",)

    def __init__(self):
        super().__init__()
        self.next_index = 0


def decode_form(text: str, limits: BodyLimits = BodyLimits()) -> dict:
    """Decode form data, turning PHP-style keys such as customer[email] into nested objects."""
    try:
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=limits.fields)
    except UnicodeDecodeError as error:
        raise BadRequest(f"form body is not UTF-8 once unescaped: {error.reason}") from None
    except ValueError:
        raise BadRequest(f"form body has more than {limits.fields} fields") from None
    root, count = _Node(), 1
    for key, value in pairs:
        if len(key) > limits.key_length:
            raise BadRequest(f"form key {key[:40]!r}… is longer than {limits.key_length} characters")
        # Values counted as in JSON: each object built and each value, so both kinds of body get the same cap.
        count += 1 + _assign(root, _split_key(key, limits), value)
        if count > limits.fields:
            raise BadRequest(f"form body has more than {limits.fields} values")
    return {key: _listify(value) for key, value in root.items()}


def _split_key(key: str, limits: BodyLimits) -> list[str]:
    head, bracket, _ = key.partition("[")
    if not bracket or not head:
        return [key]
    tail = key[len(head):]
    parts = _BRACKETS.findall(tail)
    # Keep a key literal when its brackets are not well formed, as PHP does for the remainder.
    if "".join(f"[{part}]" for part in parts) != tail:
        return [key]
    if len(parts) >= limits.depth:  # objects: the body, the head's, one per bracket but the last
        raise BadRequest(f"form key {key[:40]!r} is nested deeper than {limits.depth} levels")
    return [head, *parts]


def _assign(node: _Node, parts: list[str], value: str) -> int:
    """Set a value at its key's place, building the objects on the way; return how many were built."""
    built = 0
    for index, part in enumerate(parts):
        if part == "":
            # An empty bracket appends, like tags[]=a&tags[]=b: one counter a node keeps this linear.
            part = str(node.next_index)
        if _is_index(part):
            node.next_index = max(node.next_index, int(part) + 1)
        if index == len(parts) - 1:
            node[part] = value
            return built
        child = node.get(part)
        if not isinstance(child, _Node):
            child = node[part] = _Node()
            built += 1
        node = child
    return built


def _listify(node):
    """Turn objects whose keys are exactly 0..n-1 into lists (depth is capped, so recursion is safe)."""
    if not isinstance(node, dict):
        return node
    items = {key: _listify(value) for key, value in node.items()}
    if items and items.keys() == {str(index) for index in range(len(items))}:
        return [items[str(index)] for index in range(len(items))]
    return items


def _is_index(key: str) -> bool:
    return key.isascii() and key.isdigit()
