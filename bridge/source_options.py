"""What a source block of a rule file may say, per sender type: its JSON Schema, checks and secrets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema

from .signatures import ALGORITHMS, DEFAULT_TOLERANCE, ENCODINGS

_SECRET = {"description": "the shared secret; a list accepts each of them, for a rotation",
           "oneOf": [{"type": "string", "minLength": 1},
                     {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1}]}
_SECRET_KEYS = ("secret", "password")
SHORTEST_TOKEN = 16
# Which generic keys each auth takes; the others are refused, so that a half-configured check is an error.
_GENERIC_AUTH = {"none": (), "token": ("secret", "header", "query"), "basic": ("username", "password"),
                 "hmac": ("secret", "header", "algorithm", "encoding", "prefix")}


def preset_schema(kind: str, signature: str, *, tolerance: bool = False, hubspot: bool = False,
                  gumroad: bool = False, whsec: bool = False) -> dict:
    """Build the JSON-Schema fragment of one signed source type."""
    properties: dict[str, Any] = {"type": {"const": kind, "description": f"verified by {signature}"},
                                  "description": {"type": "string"}, "secret": _SECRET}
    if whsec:
        key = {"type": "string", "pattern": r"^(whsec_)?[A-Za-z0-9+/]+={0,2}$"}
        properties["secret"] = {**_SECRET, "oneOf": [key, {"type": "array", "items": key, "minItems": 1}]}
    if tolerance:
        properties["tolerance"] = {"type": "integer", "minimum": 1,
                                   "description": f"replay window in seconds (default {DEFAULT_TOLERANCE})"}
    if hubspot:
        properties["public_url"] = {"type": "string", "pattern": "^https?://",
                                    "description": "the URL exactly as configured at HubSpot, when a proxy changes it"}
        properties["versions"] = {"type": "array", "items": {"enum": ["v1", "v2", "v3"]}, "minItems": 1,
                                  "uniqueItems": True,
                                  "description": "signature versions accepted (default [v3]; v1 and v2 sign no timestamp)"}
    if gumroad:
        properties["query"] = {"type": "string", "minLength": 1,
                               "description": "the query parameter that carries the token (default token)"}
    return {"type": "object", "properties": properties, "required": ["type", "secret"], "additionalProperties": False}


def generic_schema() -> dict:
    """Build the JSON-Schema fragment of a generic source: no auth, a token, Basic auth or an HMAC."""
    text = {"type": "string", "minLength": 1}
    every = sorted({key for keys in _GENERIC_AUTH.values() for key in keys})
    return {
        "type": "object",
        "properties": {
            "type": {"const": "generic"}, "description": {"type": "string"},
            "auth": {"enum": list(_GENERIC_AUTH), "description": "none (say so explicitly), token, basic or hmac"},
            "secret": _SECRET,
            "header": {**text, "description": "token: the header carrying it; hmac: the signature header"},
            "query": {**text, "description": "token: the query parameter carrying it"},
            "username": text, "password": _SECRET,
            "algorithm": {"enum": list(ALGORITHMS)}, "encoding": {"enum": list(ENCODINGS)},
            "prefix": {"type": "string", "description": "text before the signature, such as sha256="},
            "event": {**text, "description": "where the event name is: body.event, header:X-Event or query:name"},
            "id": {**text, "description": "where the sender's delivery id is, written like event"},
        },
        "required": ["type", "auth"],
        "additionalProperties": False,
        "allOf": [{"if": {"properties": {"auth": {"const": auth}}, "required": ["auth"]},
                   "then": {"required": [key for key in keys if key in ("secret", "username", "password")]
                            + (["header"] if auth == "hmac" else []),
                            "properties": {key: {"not": {}} for key in every if key not in keys},
                            **({"oneOf": [{"required": ["header"]}, {"required": ["query"]}]}
                               if auth == "token" else {})}}
                  for auth, keys in _GENERIC_AUTH.items()],
    }


def validate_source_spec(spec) -> list[tuple[str | None, str]]:
    """List (key or None, message) for everything wrong with a source block; empty when it is fine."""
    if not isinstance(spec, Mapping):
        return [(None, f"expected a mapping, got {type(spec).__name__}")]
    from .sources import SOURCE_SCHEMAS

    if spec.get("type") not in SOURCE_SCHEMAS:
        return [("type" if "type" in spec else None,
                 f"unknown or missing type {spec.get('type')!r} (known: {', '.join(sorted(SOURCE_SCHEMAS))})")]
    schema, auth = SOURCE_SCHEMAS[spec["type"]], spec.get("auth")
    known = schema["properties"]
    problems: list[tuple[str | None, str]] = [
        (key, f"unknown key {key!r} (known: {', '.join(sorted(known))})") for key in spec if key not in known]
    for error in jsonschema.Draft202012Validator(schema).iter_errors(spec):
        path = list(error.absolute_path)
        key = path[0] if path else None
        if error.validator == "additionalProperties":
            continue  # said above, with the known keys
        if error.validator == "required":
            why = f" (auth {auth} needs it)" if "then" in error.schema_path else ""
            problems += [(None, f"missing key {name!r}{why}") for name in error.validator_value if name not in spec]
        elif error.validator == "oneOf" and key is None:
            problems.append((None, "auth token needs exactly one of 'header' or 'query'"))
        elif key is not None and error.validator == "not":
            problems.append((key, f"key {key!r} does not apply to auth {auth}"))
        elif key in _SECRET_KEYS:
            # jsonschema quotes the offending value, which here is a secret.
            problems.append((key, f"{key!r} must be a non-empty string or a list of them"))
        else:
            problems.append((key, f"{'/'.join(map(str, path)) or 'source'}: {error.message}"))
    return problems or _short_tokens(spec)


def _short_tokens(spec: Mapping) -> list[tuple[str | None, str]]:
    """Refuse a shared token that could be guessed: it is all that guards a public URL (never quoting it)."""
    key = "password" if spec.get("auth") == "basic" else "secret"
    if not (spec["type"] == "gumroad" or spec.get("auth") in ("token", "basic")):
        return []
    values = spec.get(key) if isinstance(spec.get(key), list) else [spec.get(key)]
    if any(isinstance(value, str) and len(value) < SHORTEST_TOKEN for value in values):
        return [(key, f"{key!r} must be at least {SHORTEST_TOKEN} characters: a shared token is all that guards "
                      "this URL (try `openssl rand -hex 16`)")]
    return []
