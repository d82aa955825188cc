"""Pure hints for refused webhooks: from the reason and the shape of what arrived, say what is probably wrong.

A hint never repeats a secret or a signature: it speaks of shapes (hex, base64, length) and header names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..signatures import decode

# type -> (signature header, encoding, prefix, algorithm) of the presets that sign the body with an HMAC.
SIGNED = {
    "woocommerce": ("x-wc-webhook-signature", "base64", "", "sha256"),
    "shopify": ("x-shopify-hmac-sha256", "base64", "", "sha256"),
    "github": ("x-hub-signature-256", "hex", "sha256=", "sha256"),
    "typeform": ("typeform-signature", "base64", "sha256=", "sha256"),
    "bamboohr": ("x-bamboohr-signature", "hex", "", "sha256"),
    "stripe": ("stripe-signature", "hex", "v1=", "sha256"),
    "standard-webhooks": ("webhook-signature", "base64", "v1,", "sha256"),
}
# A header that tells which sender signed a request, whatever type the source was declared with.
SENDERS = {
    "x-wc-webhook-signature": "woocommerce", "x-shopify-hmac-sha256": "shopify", "stripe-signature": "stripe",
    "x-hubspot-signature": "hubspot", "x-hubspot-signature-v3": "hubspot", "x-bamboohr-signature": "bamboohr",
    "x-hub-signature-256": "github", "webhook-signature": "standard-webhooks", "svix-signature": "standard-webhooks",
    "typeform-signature": "typeform",
}
DIGEST_BYTES = {"sha1": 20, "sha256": 32, "sha512": 64}
_HEX = re.compile(r"[0-9a-fA-F]+")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")


def shape(value: str) -> str:
    """Describe a secret-bearing value without revealing it: its length and what it looks like."""
    text = value.strip()
    kind = "empty"
    if text:
        kind = "hex" if _HEX.fullmatch(text) and len(text) % 2 == 0 else "base64" if _BASE64.fullmatch(text) else "text"
    return f"[{len(text)} characters, looks like {kind}]" if text else "[empty]"


def expected_signature(source_type: str, options: Mapping) -> tuple[str, str, str, str] | None:
    """Return (header, encoding, prefix, algorithm) of a source that signs its body, None for other schemes."""
    if source_type == "hubspot":
        # v3 (base64 over method, URL, body and timestamp) when the request carries it or the source takes nothing else.
        return ("x-hubspot-signature-v3", "base64", "", "sha256")
    if source_type == "generic":
        if options.get("auth") != "hmac" or not options.get("header"):
            return None
        return (str(options["header"]).lower(), options.get("encoding", "hex"), options.get("prefix", ""),
                options.get("algorithm", "sha256"))
    return SIGNED.get(source_type)


def _signature_of(value: str, prefix: str) -> str:
    """Return the signature part of a header value (Stripe's v1=…, Standard Webhooks' v1,…)."""
    if prefix == "v1=":
        parts = [item.strip()[3:] for item in value.split(",") if item.strip().startswith("v1=")]
        return parts[0] if parts else ""
    if prefix == "v1,":
        parts = [item[3:] for item in value.split() if item.startswith("v1,")]
        return parts[0] if parts else ""
    return value[len(prefix):] if prefix and value.startswith(prefix) else value


def _signature_hint(value: str, encoding: str, prefix: str, algorithm: str, header: str) -> str:
    signature = _signature_of(value.strip(), prefix)
    other = "hex" if encoding == "base64" else "base64"
    as_expected, as_other = decode(signature, encoding), decode(signature, other)
    size = DIGEST_BYTES.get(algorithm, 32)
    looks_hex = bool(_HEX.fullmatch(signature)) and len(signature) % 2 == 0
    if encoding == "base64" and looks_hex and as_other is not None and len(as_other) in DIGEST_BYTES.values():
        return (f"{header} looks like hex; this preset expects base64. Is the source's type right? "
                "(GitHub, BambooHR, Stripe and HubSpot v1/v2 sign in hex; WooCommerce, Shopify and Typeform in base64)")
    if encoding == "hex" and not looks_hex and as_other is not None:
        return (f"{header} looks like base64; this preset expects hex. Is the source's type right? "
                "(WooCommerce, Shopify and Typeform sign in base64)")
    if as_expected is None:
        return f"{header} is neither hex nor base64 {shape(signature)}: something between the sender and the bridge changed it"
    if len(as_expected) != size:
        named = {length: name.upper().replace("SHA", "SHA-") for name, length in DIGEST_BYTES.items()}
        guess = named.get(len(as_expected), "another algorithm")
        return (f"the signature is {len(as_expected)} bytes ({guess}?); this source expects {algorithm.upper()} "
                f"({size} bytes)")
    return ("the signature has the expected form, so it was made with another secret: compare the secret set at the "
            "sender with the variable the source's `secret:` names (spaces and quotes count), or a proxy changed the "
            "body on the way (re-encoded JSON)")


def hint(source_type: str, options: Mapping, reason: str, status: int, headers: Mapping[str, str],
         content_type: str = "", max_body_bytes: int | None = None) -> str:
    """Say what probably went wrong with a refused webhook, in one or two sentences; empty when nothing useful."""
    headers = {name.lower(): value for name, value in headers.items()}
    if status == 413:
        return (f"the body is over BRIDGE_MAX_BODY_BYTES ({max_body_bytes} bytes); raise it if this sender's webhooks "
                "are really that large")
    if status == 400:
        return (f"the body could not be read as {content_type or 'no declared content type'}: the bridge takes JSON "
                "(Content-Type: application/json) or form data (application/x-www-form-urlencoded), in UTF-8")
    if status != 401:
        return ""
    signature = expected_signature(source_type, options)
    found = sorted({SENDERS[name] for name in headers if name in SENDERS} - {source_type})
    if source_type == "hubspot" and "x-hubspot-signature" in headers and "x-hubspot-signature-v3" not in headers:
        return ("this request carries HubSpot's older X-HubSpot-Signature (v1/v2) and no v3 signature: switch the app "
                "to v3 at HubSpot, or list the older versions in the source's `versions:` (see docs/rules.md)")
    if reason.startswith("missing") and "header" in reason:
        if found:
            return (f"this request carries a {' or '.join(found)} signature, but the source is declared as type "
                    f"{source_type!r}: is the type right?")
        return (f"the request has no such header: is signing switched on at the sender, with a secret? "
                f"Headers that came: {', '.join(sorted(headers)) or 'none'}")
    if "does not start with" in reason and signature:
        value = headers.get(signature[0], "")
        return f"expected {signature[0]} to start with {signature[2]!r}; it is {shape(value)}"
    if reason == "signature does not match" and signature:
        if found:
            return (f"this request carries a {' or '.join(found)} signature, but the source is declared as type "
                    f"{source_type!r}: is the type right?")
        value = headers.get(signature[0])
        if value is not None:
            return _signature_hint(value, signature[1], signature[2], signature[3], signature[0])
    if reason == "signature does not match":
        return ("the signature was made with another secret than the one set for this source, or over other bytes "
                "(a proxy re-encoding the body)")
    if "outside the" in reason and "window" in reason:
        return ("the request's timestamp is too far from this server's clock: check both clocks (NTP), or this is "
                "an old request sent again; `tolerance:` widens the window")
    if "timestamp" in reason:
        return "the timestamp header must be Unix seconds (or milliseconds, or ISO 8601)"
    if reason.startswith("source has no"):
        return "the source has no secret: set the environment variable its `secret:` names, then reload"
    if "query parameter" in reason:
        return "the URL pasted into the sender must end with the token as a query parameter (see Sources)"
    if reason.endswith("does not match"):
        return ("a value arrived but it is not the configured one: look for spaces, quotes or an old value after a "
                "rotation (during one, `secret:` may list both)")
    if "Basic credentials" in reason:
        return "the sender must send HTTP Basic credentials (user:password in the URL or its auth settings)"
    return ""
