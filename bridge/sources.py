"""Per-sender presets: prove a webhook comes from its sender, then read its events.

The receiver calls, for a source of type T with options O (its rule-file block without `type`):

    inbound = Inbound.of(request.method, url, request.headers, raw, limits=settings.body_limits)
    preset = PRESETS[T]
    if preset.ping(inbound, O):      # a sender checking the URL: answer exactly 200, queue nothing
        ...
    signed = preset.verify(inbound, O, time.time())  # raises Unauthorized; returns bytes a replay would repeat
    for event in preset.events(inbound, O):  # HubSpot and legacy BambooHR batches give several; [] is possible
        ...

`url` is the URL as the sender called it: host_url + the raw request URI (gunicorn's RAW_URI), since
werkzeug's `request.url` decodes some escapes of the query. Behind a proxy that terminates TLS the
receiver sees http://internal-host/...; the HubSpot preset, whose signature covers the URL, also tries
the URL rebuilt from X-Forwarded-Proto/Host (safe: a forged header cannot forge the HMAC), and takes a
`public_url` option for other setups. `SOURCE_SCHEMAS` (and `source_options.validate_source_spec`) check a source
block at load time.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from .bodies import BodyLimits, decode_body, form_value, looks_like_json
from .conditions import MISSING, lookup
from .errors import Unauthorized
from .signatures import (
    basic_credentials,
    check_window,
    digest,
    matches,
    require_secrets,
    same_text,
    secrets_of,
    tolerance_of,
    utf8,
    whsec_key,
)
from .source_options import generic_schema, preset_schema

# The characters HubSpot decodes in the request URI before it signs v3.
_HUBSPOT_DECODED = re.compile(r"%(3A|2F|3F|40|21|24|27|28|29|2A|2C|3B)", re.IGNORECASE)


_UNREAD = object()


@dataclass(frozen=True)
class Inbound:
    """One webhook request as it arrived: lower-cased header names and the raw body, decoded only when read.

    Presets that sign the raw body verify it without touching `body`, so a hostile body costs no
    decoding until its signature holds; a decoding error raises BadRequest where `body` is first read.
    """

    method: str
    url: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    raw: bytes
    decoded: Any = _UNREAD
    content_type: str | None = None
    limits: BodyLimits = BodyLimits()

    @classmethod
    def of(cls, method: str, url: str, headers, raw: bytes, body: Any = _UNREAD,
           limits: BodyLimits = BodyLimits()) -> Inbound:
        """Build an Inbound from what the receiver has; the query is read from the URL."""
        query: dict[str, str] = {}
        for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
            query.setdefault(name, value)
        lowered = {str(name).lower(): str(value) for name, value in dict(headers).items()}
        return cls(method.upper(), url, lowered, query, raw, body, lowered.get("content-type"), limits)

    @cached_property
    def body(self) -> Any:
        """Return the decoded body (decoding it on first use, within the limits)."""
        if self.decoded is not _UNREAD:
            return self.decoded
        return decode_body(self.raw, self.content_type, self.limits)

    @property
    def path(self) -> str:
        """Return the path of the URL."""
        return urlsplit(self.url).path

    def header(self, name: str) -> str | None:
        """Return a header's value, None when absent."""
        return self.headers.get(name.lower())

    def forwarded_url(self) -> str | None:
        """Return the URL rebuilt from X-Forwarded-Proto/Host, None when no proxy header changes it."""
        proto = (self.header("x-forwarded-proto") or "").split(",")[0].strip().lower()
        host = (self.header("x-forwarded-host") or "").split(",")[0].strip()
        parts = urlsplit(self.url)
        rebuilt = urlunsplit((proto if proto in ("http", "https") else parts.scheme, host or parts.netloc,
                              parts.path, parts.query, ""))
        return rebuilt if rebuilt != self.url else None


def environ_headers(environ: Mapping) -> dict[str, str]:
    """Return a WSGI request's headers with lower-cased names, read from the environ as werkzeug reads them."""
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items()
               if key.startswith("HTTP_") and key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH")}
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = environ[key]
    return headers


@dataclass(frozen=True)
class Event:
    """One event of a delivery: its name, the sender's stable id (None if it has none) and its data."""

    name: str
    delivery_id: str | None
    body: Any


@dataclass(frozen=True)
class Preset:
    """How one sender signs and labels its webhooks."""

    type: str
    schema: dict
    check: Callable[[Inbound, Mapping, float], bytes | None]
    read: Callable[[Inbound, Mapping], list[Event]]
    is_ping: Callable[[Inbound, Mapping], bool] = lambda inbound, options: False

    def verify(self, inbound: Inbound, options: Mapping | None, now: float) -> bytes | None:
        """Raise Unauthorized with a short reason unless the request proves it comes from the sender.

        Returns the bytes the signature covers when the scheme signs no timestamp (a captured copy stays
        valid forever, so the receiver remembers them); None when a timestamp or nothing at all is signed.
        """
        return self.check(inbound, options or {}, now)

    def events(self, inbound: Inbound, options: Mapping | None = None) -> list[Event]:
        """Return the events of a verified request, in order."""
        return self.read(inbound, options or {})

    def ping(self, inbound: Inbound, options: Mapping | None = None) -> bool:
        """Tell whether the request is the sender checking the URL (answer 200, queue nothing)."""
        return self.is_ping(inbound, options or {})


def _text(value) -> str | None:
    if value is MISSING or value is None or isinstance(value, (dict, list)) or value == "":
        return None
    return str(value)


def _field(inbound: Inbound, name: str):
    return inbound.body.get(name) if isinstance(inbound.body, dict) else None


def _header(inbound: Inbound, header: str) -> str:
    value = inbound.header(header)
    if not value:
        raise Unauthorized(f"missing {header} header")
    return value


def _body_hmac(inbound: Inbound, secrets: list[str], header: str, encoding: str,
               algorithm: str = "sha256", prefix: str = "") -> bytes:
    given = _header(inbound, header)
    if prefix:
        if not given.startswith(prefix):
            raise Unauthorized(f"{header} header does not start with {prefix}")
        given = given[len(prefix):]
    if not matches(given, [digest(utf8(s), inbound.raw, algorithm) for s in secrets], encoding):
        raise Unauthorized("signature does not match")
    return inbound.raw


def _signed_by_header(header: str, encoding: str, prefix: str = "") -> Callable[[Inbound, Mapping, float], bytes]:
    def check(inbound: Inbound, options: Mapping, now: float) -> bytes:
        return _body_hmac(inbound, require_secrets(options), header, encoding, prefix=prefix)
    return check


def _single(name: Callable[[Inbound], str | None], delivery_id: Callable[[Inbound], str | None]):
    return lambda inbound, options: [Event(name(inbound) or "", delivery_id(inbound), inbound.body)]


def _from_header(header: str) -> Callable[[Inbound], str | None]:
    return lambda inbound: inbound.header(header) or None


def _from_body(name: str) -> Callable[[Inbound], str | None]:
    return lambda inbound: _text(_field(inbound, name))


# --- WooCommerce ------------------------------------------------------------------------------

def _woo_check(inbound: Inbound, options: Mapping, now: float) -> bytes:
    secrets = require_secrets(options)
    # WooCommerce signs with the secret HTML-entity-decoded (wp_specialchars_decode); its admin may show it encoded.
    secrets += [decoded for decoded in map(html.unescape, secrets) if decoded not in secrets]
    return _body_hmac(inbound, secrets, "X-WC-Webhook-Signature", "base64")


def _woo_id(inbound: Inbound) -> str | None:
    header = inbound.header("x-wc-webhook-delivery-id")
    # The header is a hash of the webhook id and the current second, so two deliveries in one second share it.
    return f"{header}:{hashlib.sha256(inbound.raw).hexdigest()[:16]}" if header else None


def _woo_ping(inbound: Inbound, options: Mapping) -> bool:
    # The ping is unsigned: only a tiny body without WooCommerce headers is worth decoding to tell.
    if len(inbound.raw) > 64 or any(name.startswith("x-wc-webhook-") for name in inbound.headers):
        return False
    body = inbound.body
    return isinstance(body, dict) and list(body) == ["webhook_id"] and str(body["webhook_id"]).isdigit()


# --- Stripe -----------------------------------------------------------------------------------

def _stripe_check(inbound: Inbound, options: Mapping, now: float) -> None:
    header = _header(inbound, "Stripe-Signature")
    timestamp, signatures = None, []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and timestamp is None:
            timestamp = value
        elif key == "v1":
            signatures.append(value)  # v0 (test mode) and unknown schemes are ignored, as Stripe advises
    if not timestamp:
        raise Unauthorized("no timestamp in Stripe-Signature header")
    if not signatures:
        raise Unauthorized("no v1 signature in Stripe-Signature header")
    message = utf8(timestamp) + b"." + inbound.raw
    expected = [digest(utf8(secret), message) for secret in require_secrets(options)]
    if not any(matches(signature, expected, "hex") for signature in signatures):
        raise Unauthorized("signature does not match")
    check_window(timestamp, now, tolerance_of(options), "Stripe-Signature")


# --- HubSpot ----------------------------------------------------------------------------------

def _hubspot_urls(inbound: Inbound, options: Mapping) -> list[str]:
    if options.get("public_url"):
        return [options["public_url"]]
    return list(dict.fromkeys(url for url in (inbound.url, inbound.forwarded_url()) if url))


def _hubspot_check(inbound: Inbound, options: Mapping, now: float) -> bytes | None:
    secrets = require_secrets(options)
    # Only v3 signs a timestamp; v1 and v2 stay valid forever once captured, so they are opt-in.
    versions = options.get("versions") or ["v3"]
    urls = _hubspot_urls(inbound, options)
    if "v3" in versions and inbound.header("x-hubspot-signature-v3"):
        # v3 wins when present: accepting v1 beside it would let a replay skip the timestamp check.
        timestamp = _header(inbound, "X-HubSpot-Request-Timestamp")
        expected = [digest(utf8(secret), utf8(inbound.method + _HUBSPOT_DECODED.sub(
            lambda m: bytes.fromhex(m.group(1)).decode(), url)) + inbound.raw + utf8(timestamp))
            for secret in secrets for url in urls]
        if not matches(inbound.header("x-hubspot-signature-v3"), expected, "base64"):
            raise Unauthorized("signature does not match")
        check_window(timestamp, now, tolerance_of(options), "X-HubSpot-Request-Timestamp")
        return None
    signature = inbound.header("x-hubspot-signature")
    if not signature:
        raise Unauthorized(f"missing X-HubSpot-Signature{'-v3' if versions == ['v3'] else ''} header")
    version = (inbound.header("x-hubspot-signature-version") or "v1").strip().lower()
    if version not in ("v1", "v2") or version not in versions:
        raise Unauthorized(f"signature version {version[:8]!r} not accepted (this source takes {', '.join(versions)})")
    if version == "v1":
        expected = [hashlib.sha256(utf8(secret) + inbound.raw).digest() for secret in secrets]
    else:
        expected = [hashlib.sha256(utf8(secret + inbound.method + url) + inbound.raw).digest()
                    for secret in secrets for url in urls]
    if not matches(signature, expected, "hex"):
        raise Unauthorized("signature does not match")
    # v1 and v2 sign no timestamp; the method and URL v2 adds are the same for every request to this source.
    return inbound.raw


def _hubspot_events(inbound: Inbound, options: Mapping) -> list[Event]:
    items = inbound.body if isinstance(inbound.body, list) else [inbound.body]
    return [Event(_text(item.get("subscriptionType")) or "", _text(item.get("eventId")), item)
            if isinstance(item, dict) else Event("", None, item) for item in items]


# --- BambooHR ---------------------------------------------------------------------------------

def _bamboohr_check(inbound: Inbound, options: Mapping, now: float) -> None:
    signature = _header(inbound, "X-BambooHR-Signature")
    timestamp = _header(inbound, "X-BambooHR-Timestamp")
    expected = [digest(utf8(secret), inbound.raw + utf8(timestamp)) for secret in require_secrets(options)]
    if not matches(signature, expected, "hex"):
        raise Unauthorized("signature does not match")
    check_window(timestamp, now, tolerance_of(options), "X-BambooHR-Timestamp")


def _bamboohr_events(inbound: Inbound, options: Mapping) -> list[Event]:
    employees = _field(inbound, "employees")
    if isinstance(employees, list):
        # Legacy body: one element per employee; "Created" becomes employee.created like the newer events.
        return [Event(f"employee.{str(item.get('action', '')).lower()}".rstrip("."), None, item)
                if isinstance(item, dict) else Event("", None, item) for item in employees]
    return [Event(_text(_field(inbound, "type")) or "", None, inbound.body)]


# --- Standard Webhooks -------------------------------------------------------------------------

def _standard_header(inbound: Inbound, name: str) -> str:
    # Svix, the reference implementation, sends the same headers branded svix-*.
    value = inbound.header(f"webhook-{name}") or inbound.header(f"svix-{name}")
    if not value:
        raise Unauthorized(f"missing webhook-{name} header")
    return value


def _standard_check(inbound: Inbound, options: Mapping, now: float) -> None:
    message_id = _standard_header(inbound, "id")
    timestamp = _standard_header(inbound, "timestamp")
    header = _standard_header(inbound, "signature")
    signatures = [value for version, _, value in (item.partition(",") for item in header.split()) if version == "v1"]
    if not signatures:
        raise Unauthorized("no v1 signature in webhook-signature header")
    message = utf8(f"{message_id}.{timestamp}.") + inbound.raw
    expected = [digest(whsec_key(secret), message) for secret in require_secrets(options)]
    if not any(matches(signature, expected, "base64") for signature in signatures):
        raise Unauthorized("signature does not match")
    check_window(timestamp, now, tolerance_of(options), "webhook-timestamp")


# --- ThriveCart and Gumroad: a shared secret, no signature -----------------------------------

_THRIVECART_RECURRING = ("order.subscription_payment", "order.rebill")


def _form_field(inbound: Inbound, name: str):
    # ThriveCart posts form data: its proof is read from the raw bytes, so nothing is decoded before it holds.
    return _field(inbound, name) if looks_like_json(inbound.raw) else form_value(inbound.raw, name)


def _thrivecart_check(inbound: Inbound, options: Mapping, now: float) -> None:
    given = _form_field(inbound, "thrivecart_secret")
    if not isinstance(given, str) or not given:
        raise Unauthorized("missing thrivecart_secret field")
    if not same_text(given, require_secrets(options)):
        raise Unauthorized("secret does not match")


def _thrivecart_events(inbound: Inbound, options: Mapping) -> list[Event]:
    body = inbound.body
    if isinstance(body, dict):
        # The secret must not reach rule templates or stored events.
        body = {key: value for key, value in body.items() if key != "thrivecart_secret"}
    name, order = _text(_field(inbound, "event")) or "", _text(_field(inbound, "order_id"))
    # Each renewal repeats the order id and the event; leave those to the body hash, which differs.
    recurring = name.startswith(_THRIVECART_RECURRING)
    return [Event(name, f"{order}:{name}" if order and not recurring else None, body)]


def _thrivecart_ping(inbound: Inbound, options: Mapping) -> bool:
    # ThriveCart POSTs to the URL when it is saved; that check carries neither an event nor the secret.
    if not inbound.raw.strip():
        return True
    if looks_like_json(inbound.raw):
        body = inbound.body
        return isinstance(body, dict) and "event" not in body and "thrivecart_secret" not in body
    return _form_field(inbound, "event") is None and _form_field(inbound, "thrivecart_secret") is None


def _gumroad_check(inbound: Inbound, options: Mapping, now: float) -> None:
    name = options.get("query") or "token"
    given = inbound.query.get(name)
    if not given:
        raise Unauthorized(f"missing {name} query parameter")
    if not same_text(given, require_secrets(options)):
        raise Unauthorized("token does not match")


def _gumroad_events(inbound: Inbound, options: Mapping) -> list[Event]:
    # The classic Ping has no resource_name: it is always a sale.
    name = _text(_field(inbound, "resource_name")) or "sale"
    sale = _text(_field(inbound, "sale_id")) or _text(_field(inbound, "subscription_id"))
    # A refund carries its sale's sale_id; the event name keeps it from looking like a retry of the sale.
    return [Event(name, f"{name}:{sale}" if sale else None, inbound.body)]


# --- generic ----------------------------------------------------------------------------------

def _generic_check(inbound: Inbound, options: Mapping, now: float) -> bytes | None:
    auth = options.get("auth")
    if auth == "none":
        return None
    if auth == "token":
        if options.get("header"):
            given = _header(inbound, options["header"])
            if given[:7].lower() == "bearer ":
                given = given[7:]
        else:
            given = inbound.query.get(options.get("query") or "")
            if not given:
                raise Unauthorized(f"missing {options.get('query')} query parameter")
        if not same_text(given, require_secrets(options)):
            raise Unauthorized("token does not match")
    elif auth == "basic":
        username, password = basic_credentials(inbound.header("authorization"))
        user_ok = same_text(username, secrets_of(options.get("username")))
        if not (same_text(password, require_secrets(options, "password")) & user_ok):
            raise Unauthorized("credentials do not match")
    elif auth == "hmac":
        return _body_hmac(inbound, require_secrets(options), options.get("header") or "", options.get("encoding", "hex"),
                   options.get("algorithm", "sha256"), options.get("prefix", ""))
    else:
        raise Unauthorized("source has no auth configured")
    return None


def read_path(inbound: Inbound, where: str | None) -> str | None:
    """Read a value from header:Name, query:name or a dotted path (body.x, headers.x, query.x, or x in the body)."""
    if not where:
        return None
    kind, colon, name = where.partition(":")
    if colon and kind.strip().lower() in ("header", "query"):
        source = inbound.headers if kind.strip().lower() == "header" else inbound.query
        return source.get(name.strip().lower() if kind.strip().lower() == "header" else name.strip()) or None
    data = {"body": inbound.body, "headers": inbound.headers, "query": inbound.query}
    if where.split(".", 1)[0] not in data:
        where = f"body.{where}"
    return _text(lookup(data, where))


def _generic_events(inbound: Inbound, options: Mapping) -> list[Event]:
    return [Event(read_path(inbound, options.get("event")) or "", read_path(inbound, options.get("id")), inbound.body)]


PRESETS: dict[str, Preset] = {preset.type: preset for preset in (
    Preset("shopify", preset_schema("shopify", "X-Shopify-Hmac-Sha256: base64 HMAC-SHA256 of the body"),
           _signed_by_header("X-Shopify-Hmac-Sha256", "base64"),
           _single(_from_header("x-shopify-topic"),
                   lambda i: i.header("x-shopify-event-id") or i.header("x-shopify-webhook-id") or None)),
    Preset("woocommerce", preset_schema("woocommerce", "X-WC-Webhook-Signature: base64 HMAC-SHA256 of the body"),
           _woo_check, _single(_from_header("x-wc-webhook-topic"), _woo_id), _woo_ping),
    Preset("stripe", preset_schema("stripe", "Stripe-Signature: t=…,v1=… over \"{t}.{body}\"", tolerance=True),
           _stripe_check, _single(_from_body("type"), _from_body("id"))),
    Preset("hubspot", preset_schema("hubspot", "X-HubSpot-Signature-v3 (or v1/v2); a batch is split into events",
                                    tolerance=True, hubspot=True),
           _hubspot_check, _hubspot_events),
    Preset("bamboohr", preset_schema("bamboohr", "X-BambooHR-Signature: hex HMAC-SHA256 of body + timestamp",
                                     tolerance=True),
           _bamboohr_check, _bamboohr_events),
    Preset("github", preset_schema("github", "X-Hub-Signature-256: sha256=hex HMAC of the body"),
           _signed_by_header("X-Hub-Signature-256", "hex", "sha256="),
           _single(_from_header("x-github-event"), _from_header("x-github-delivery"))),
    Preset("standard-webhooks", preset_schema("standard-webhooks", "webhook-signature: v1,base64 with a whsec_ key",
                                              tolerance=True, whsec=True),
           _standard_check,
           _single(_from_body("type"), lambda i: i.header("webhook-id") or i.header("svix-id") or None)),
    Preset("typeform", preset_schema("typeform", "Typeform-Signature: sha256=base64 HMAC of the body"),
           _signed_by_header("Typeform-Signature", "base64", "sha256="),
           _single(_from_body("event_type"), _from_body("event_id"))),
    Preset("thrivecart", preset_schema("thrivecart", "the thrivecart_secret field of the form body"),
           _thrivecart_check, _thrivecart_events, _thrivecart_ping),
    Preset("gumroad", preset_schema("gumroad", "a secret token in the URL query (?token=…)", gumroad=True),
           _gumroad_check, _gumroad_events),
    Preset("generic", generic_schema(), _generic_check, _generic_events),
)}

# type -> JSON-Schema fragment of one source block (additionalProperties false), for the rule-file schema.
SOURCE_SCHEMAS: dict[str, dict] = {name: preset.schema for name, preset in PRESETS.items()}
