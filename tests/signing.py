"""Sign webhook requests the way each sender does, like stripe-python's `generate_header`.

`signed_request(type, options, body)` gives a request any preset accepts, for the receiver's tests;
the `sign_*` functions give one sender's headers, for tests that want to bend one part of them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from bridge.bodies import decode_body
from bridge.signatures import secrets_of
from bridge.sources import Inbound

NOW = 1_700_000_000  # the clock the tests verify at
URL = "https://bridge.example.com/hooks/test"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Request:
    """A webhook request as a sender would send it."""

    url: str
    headers: dict[str, str]
    raw: bytes
    method: str = "POST"
    content_type: str = JSON

    def inbound(self) -> Inbound:
        """Return what the receiver builds from this request (the body decoded as the receiver does)."""
        headers = {"Content-Type": self.content_type, **self.headers}
        return Inbound.of(self.method, self.url, headers, self.raw, decode_body(self.raw, self.content_type))


def mac(secret: str | bytes, message: bytes, algorithm: str = "sha256") -> bytes:
    """Return an HMAC digest."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, message, algorithm).digest()


def b64(raw: bytes) -> str:
    """Return base64 text."""
    return base64.b64encode(raw).decode()


def sign_shopify(body: bytes, secret: str, topic: str = "orders/paid", event_id: str = "evt-1") -> dict:
    """Return Shopify's headers for a body."""
    return {"X-Shopify-Hmac-Sha256": b64(mac(secret, body)), "X-Shopify-Topic": topic,
            "X-Shopify-Event-Id": event_id, "X-Shopify-Webhook-Id": f"wh-{event_id}"}


def sign_woocommerce(body: bytes, secret: str, topic: str = "order.updated", delivery_id: str = "d41d8") -> dict:
    """Return WooCommerce's headers for a body."""
    return {"X-WC-Webhook-Signature": b64(mac(secret, body)), "X-WC-Webhook-Topic": topic,
            "X-WC-Webhook-Delivery-ID": delivery_id, "X-WC-Webhook-Source": "https://shop.example.com/"}


def stripe_header(body: bytes, secrets: str | list[str], timestamp: int = NOW, v0: bool = False) -> str:
    """Return a Stripe-Signature value, with one v1 per secret (as Stripe does during a rotation)."""
    signed = f"{timestamp}.".encode() + body
    parts = [f"t={timestamp}"] + [f"v1={mac(secret, signed).hex()}" for secret in secrets_of(secrets)]
    return ",".join(parts + ([f"v0={mac('test-mode', signed).hex()}"] if v0 else []))


def sign_stripe(body: bytes, secret: str | list[str], timestamp: int = NOW, v0: bool = False) -> dict:
    """Return Stripe's headers for a body."""
    return {"Stripe-Signature": stripe_header(body, secret, timestamp, v0)}


def sign_hubspot_v1(body: bytes, secret: str) -> dict:
    """Return HubSpot's v1 headers: hex sha256 of secret + body."""
    return {"X-HubSpot-Signature": hashlib.sha256(secret.encode() + body).hexdigest(),
            "X-HubSpot-Signature-Version": "v1"}


def sign_hubspot_v2(body: bytes, secret: str, url: str = URL, method: str = "POST") -> dict:
    """Return HubSpot's v2 headers: hex sha256 of secret + method + URI + body."""
    return {"X-HubSpot-Signature": hashlib.sha256((secret + method + url).encode() + body).hexdigest(),
            "X-HubSpot-Signature-Version": "v2"}


def sign_hubspot_v3(body: bytes, secret: str, url: str = URL, timestamp_ms: int = NOW * 1000,
                    method: str = "POST", with_v1: bool = True) -> dict:
    """Return HubSpot's v3 headers (with v1 beside them, as HubSpot sends webhooks)."""
    signed = (method + url).encode() + body + str(timestamp_ms).encode()
    headers = {"X-HubSpot-Signature-v3": b64(mac(secret, signed)), "X-HubSpot-Request-Timestamp": str(timestamp_ms)}
    return {**(sign_hubspot_v1(body, secret) if with_v1 else {}), **headers}


def sign_bamboohr(body: bytes, secret: str, timestamp: int | str = NOW) -> dict:
    """Return BambooHR's headers: hex HMAC of the body followed by the timestamp."""
    return {"X-BambooHR-Signature": mac(secret, body + str(timestamp).encode()).hex(),
            "X-BambooHR-Timestamp": str(timestamp)}


def sign_github(body: bytes, secret: str, event: str = "push", delivery: str = "72d3162e-cc78-11e3") -> dict:
    """Return GitHub's headers for a body."""
    return {"X-Hub-Signature-256": "sha256=" + mac(secret, body).hex(), "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery}


def whsec_key(secret: str) -> bytes:
    """Return the HMAC key of a whsec_ secret."""
    return base64.b64decode(secret.removeprefix("whsec_"))


def sign_standard_webhooks(body: bytes, secrets: str | list[str], msg_id: str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
                           timestamp: int = NOW, extra: tuple[str, ...] = ()) -> dict:
    """Return Standard Webhooks headers, one v1 signature per secret, space-separated."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    signatures = [f"v1,{b64(mac(whsec_key(secret), signed))}" for secret in secrets_of(secrets)]
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": " ".join([*extra, *signatures])}


def sign_typeform(body: bytes, secret: str) -> dict:
    """Return Typeform's header for a body."""
    return {"Typeform-Signature": "sha256=" + b64(mac(secret, body))}


def form_encode(fields: dict) -> bytes:
    """Encode nested fields as PHP-style form data (customer[email]=…), as ThriveCart and Gumroad send it."""
    pairs: list[tuple[str, str]] = []

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}[{key}]" if prefix else str(key), item)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(f"{prefix}[{index}]", item)
        else:
            pairs.append((prefix, str(value)))

    walk("", fields)
    return urlencode(pairs).encode()


def thrivecart_body(fields: dict, secret: str) -> bytes:
    """Return a ThriveCart form body carrying the secret word."""
    return form_encode({**fields, "thrivecart_secret": secret})


def with_query(url: str, **params: str) -> str:
    """Return a URL with query parameters added."""
    return url + ("&" if urlsplit(url).query else "?") + urlencode(params)


def basic_auth(username: str, password: str) -> dict:
    """Return an Authorization header for Basic credentials."""
    return {"Authorization": "Basic " + b64(f"{username}:{password}".encode())}


def sign_generic_hmac(body: bytes, secret: str, header: str, algorithm: str = "sha256", encoding: str = "hex",
                      prefix: str = "") -> dict:
    """Return a configurable HMAC header, as a generic sender computes it."""
    raw = mac(secret, body, algorithm)
    return {header: prefix + (raw.hex() if encoding == "hex" else b64(raw))}


def signed_request(source_type: str, options: dict, body, *, url: str = URL, now: int = NOW) -> Request:
    """Return a request that the preset of `source_type` configured with `options` accepts."""
    secret = (secrets_of(options.get("secret")) or secrets_of(options.get("password")) or [""])[0]
    form = source_type in ("thrivecart", "gumroad")
    if source_type == "thrivecart":
        raw = thrivecart_body(body, secret)
    elif isinstance(body, bytes):
        raw = body
    else:
        raw = form_encode(body) if form else json.dumps(body).encode()
    headers: dict[str, str] = {}
    if source_type == "shopify":
        headers = sign_shopify(raw, secret)
    elif source_type == "woocommerce":
        headers = sign_woocommerce(raw, secret)
    elif source_type == "stripe":
        headers = sign_stripe(raw, secret, now)
    elif source_type == "hubspot":
        headers = sign_hubspot_v3(raw, secret, options.get("public_url") or url, now * 1000)
    elif source_type == "bamboohr":
        headers = sign_bamboohr(raw, secret, now)
    elif source_type == "github":
        headers = sign_github(raw, secret)
    elif source_type == "standard-webhooks":
        headers = sign_standard_webhooks(raw, secret, timestamp=now)
    elif source_type == "typeform":
        headers = sign_typeform(raw, secret)
    elif source_type == "gumroad":
        url = with_query(url, **{options.get("query", "token"): secret})
    elif source_type == "generic":
        auth = options.get("auth")
        if auth == "token" and options.get("header"):
            headers = {options["header"]: secret}
        elif auth == "token":
            url = with_query(url, **{options["query"]: secret})
        elif auth == "basic":
            headers = basic_auth(options["username"], secret)
        elif auth == "hmac":
            headers = sign_generic_hmac(raw, secret, options["header"], options.get("algorithm", "sha256"),
                                        options.get("encoding", "hex"), options.get("prefix", ""))
    return Request(url, headers, raw, content_type=FORM if form else JSON)


def woo_post(body, topic: str = "order.updated", secret: str | None = None, delivery_id: str | None = None) -> dict:
    """Return keyword arguments for posting a body as the example `shop` (WooCommerce) source's sender."""
    from bridge.embedded import DEMO_SECRETS

    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = sign_woocommerce(raw, secret or DEMO_SECRETS["WOOCOMMERCE_SECRET"], topic, delivery_id or hashlib.sha1(raw).hexdigest()[:10])
    return {"data": raw, "headers": headers, "content_type": JSON}


def as_requests(post: dict) -> dict:
    """Turn test-client keyword arguments (woo_post's) into those of requests.post."""
    return {"data": post["data"], "headers": {**post["headers"], "Content-Type": post["content_type"]}}


def hr_post(body) -> dict:
    """Return keyword arguments for posting a body as the example `hr` (generic, token) source's sender."""
    from bridge.embedded import DEMO_SECRETS

    return {"data": json.dumps(body).encode(), "headers": {"X-Bridge-Token": DEMO_SECRETS["HR_WEBHOOK_TOKEN"]}, "content_type": JSON}
