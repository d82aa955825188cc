"""Hints for refused webhooks (pure): what the shape of a refused request says is wrong, without repeating a secret."""

import base64
import hashlib
import hmac

import pytest

from bridge.console.hints import hint, shape
from bridge.console.refused import entry

BODY = b'{"id": 1}'
DIGEST = hmac.new(b"secret", BODY, hashlib.sha256).digest()


def refused_hint(source_type, headers, reason="signature does not match", options=None, status=401):
    return hint(source_type, options or {}, reason, status, headers)


def test_a_hex_signature_where_base64_is_expected_and_back():
    assert "looks like hex; this preset expects base64" in refused_hint("woocommerce", {"X-WC-Webhook-Signature": DIGEST.hex()})
    said = refused_hint("bamboohr", {"X-BambooHR-Signature": base64.b64encode(DIGEST).decode()})
    assert "looks like base64; this preset expects hex" in said


def test_a_signature_of_another_length_names_the_algorithm():
    sha1 = hmac.new(b"secret", BODY, hashlib.sha1).hexdigest()
    assert "20 bytes (SHA-1?)" in refused_hint("github", {"X-Hub-Signature-256": f"sha256={sha1}"})


def test_a_well_formed_signature_points_at_the_secret():
    said = refused_hint("woocommerce", {"X-WC-Webhook-Signature": base64.b64encode(DIGEST).decode()})
    assert "made with another secret" in said


def test_another_senders_signature_points_at_the_type():
    said = refused_hint("woocommerce", {"Stripe-Signature": "t=1,v1=ab"}, reason="missing X-WC-Webhook-Signature header")
    assert "carries a stripe signature" in said and "'woocommerce'" in said
    assert "Headers that came: content-type" in refused_hint("shopify", {"Content-Type": "application/json"},
                                                              reason="missing X-Shopify-Hmac-Sha256 header")


@pytest.mark.parametrize("reason, status, words", [
    ("timestamp outside the 300 s window", 401, "clock"),
    ("token does not match", 401, "rotation"),
    ("missing token query parameter", 401, "query parameter"),
    ("source has no secret configured", 401, "environment variable"),
    ("bad JSON", 400, "application/json"),
    ("too large", 413, "BRIDGE_MAX_BODY_BYTES"),
])
def test_other_refusals(reason, status, words):
    assert words in hint("generic", {"auth": "token"}, reason, status, {}, max_body_bytes=10)


def test_a_generic_hmac_source_is_checked_against_its_own_settings():
    options = {"auth": "hmac", "header": "X-Sig", "encoding": "base64", "prefix": "sha256="}
    assert "looks like hex" in hint("generic", options, "signature does not match", 401, {"x-sig": f"sha256={DIGEST.hex()}"})


def test_shapes_never_show_the_value():
    assert shape(DIGEST.hex()) == "[64 characters, looks like hex]"
    assert shape("Bearer a.b") == "[10 characters, looks like text]" and shape("") == "[empty]"


def test_an_entry_keeps_no_signature_no_secret_and_no_raw_body():
    item = entry("shop", "woocommerce", {}, 401, "Unauthorized", "signature does not match", "POST", "/hooks/shop",
                 {"X-WC-Webhook-Signature": DIGEST.hex(), "Authorization": "Bearer s3cret-value", "User-Agent": "WooCommerce"},
                 {"token": "s3cret-value", "page": "1"}, b'{"password": "pw-1234", "note": "s3cret-value here"}',
                 ["s3cret-value"], now=5.0)
    text = repr(item)
    assert DIGEST.hex() not in text and "s3cret-value" not in text and "pw-1234" not in text
    assert item["headers"]["user-agent"] == "WooCommerce" and item["query"]["page"] == "1"
    assert item["body"] == '{"password": "[redacted]", "note": "[redacted] here"}'
    assert item["at"] == 5.0 and "looks like hex" in item["hint"]


def test_hubspot_v1_where_only_v3_is_taken():
    said = refused_hint("hubspot", {"X-HubSpot-Signature": DIGEST.hex()}, reason="missing X-HubSpot-Signature-v3 header")
    assert "older X-HubSpot-Signature (v1/v2)" in said and "versions:" in said
    v3 = refused_hint("hubspot", {"X-HubSpot-Signature-v3": DIGEST.hex(), "X-HubSpot-Request-Timestamp": "1"})
    assert "looks like hex; this preset expects base64" in v3
