"""Fuzzing the receiver with bodies up to (and past) the size limit, for every preset and content type.

Whatever arrives, signed or not: never a 5xx, and nothing is queued unless the request carried the
sender's valid proof. Bodies are built by repeating generated pieces, so that hypothesis reaches the
size limit without generating a megabyte byte by byte; the limit is lowered to keep the suite quick.
"""

import json
import time
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bridge import create_app
from bridge.deliveries import INDEX_KEY
from tests.rule_files import CONNECTIONS, write_rules
from tests.signing import signed_request

LIMIT = 24 * 1024
SECRET = "fuzz-secret-0123456789abcdef"
WHSEC = "whsec_ZnV6ei1zZWNyZXQtMDEyMzQ1Njc4OWFiY2RlZg=="
SOURCES = {f"s-{kind}": {"type": kind, "secret": WHSEC if kind == "standard-webhooks" else SECRET}
           for kind in ("shopify", "woocommerce", "stripe", "hubspot", "bamboohr", "github", "standard-webhooks",
                        "typeform", "thrivecart", "gumroad")}
SOURCES.update({
    "g-token-header": {"type": "generic", "auth": "token", "header": "X-Token", "secret": SECRET},
    "g-token-query": {"type": "generic", "auth": "token", "query": "key", "secret": SECRET},
    "g-basic": {"type": "generic", "auth": "basic", "username": "fuzz", "password": SECRET},
    "g-hmac": {"type": "generic", "auth": "hmac", "header": "X-Sig", "secret": SECRET, "prefix": "sha256="},
    "g-open": {"type": "generic", "auth": "none", "event": "body.event"},
})
CONTENT_TYPES = ["application/json", "application/x-www-form-urlencoded", "text/plain", "", "application/octet-stream",
                 "application/xml", "application/vnd.api+json", "application/json; charset=utf-8",
                 "multipart/form-data; boundary=x"]
HEADER_NAMES = ["X-Shopify-Hmac-Sha256", "X-WC-Webhook-Signature", "Stripe-Signature", "X-HubSpot-Signature",
                "X-HubSpot-Signature-v3", "X-HubSpot-Request-Timestamp", "X-HubSpot-Signature-Version",
                "X-BambooHR-Signature", "X-BambooHR-Timestamp", "X-Hub-Signature-256", "webhook-id",
                "webhook-timestamp", "webhook-signature", "Typeform-Signature", "Authorization", "X-Token", "X-Sig",
                "X-WC-Webhook-Topic", "X-Forwarded-Host", "Content-Encoding"]

PIECES = st.one_of(
    st.binary(min_size=1, max_size=64),
    st.sampled_from([b"[", b"{", b'"a":', b"[]", b"{}", b",", b"0", b"9" * 120, b"1e999", b"NaN", b'"\\ud800"',
                     b'"\\u00e9"', b"a[]=1&", b"a[b][c][d]=x&", b"k" * 600 + b"=1&", b"%ff", b"%", b"&&&", b"=",
                     b"thrivecart_secret=x&", b"event=order.success&", b"webhook_id=1"]),
    st.text(min_size=1, max_size=40).map(str.encode),
)


@st.composite
def bodies(draw) -> bytes:
    """A body from a few generated pieces, each repeated, up to a quarter past the limit."""
    size = draw(st.sampled_from([0, 50, 1000, LIMIT // 2, LIMIT - 1, LIMIT, LIMIT + 1, LIMIT + LIMIT // 4]))
    pieces = draw(st.lists(PIECES, min_size=1, max_size=4))
    shape = draw(st.sampled_from(["repeat", "json", "nested"]))
    if shape == "json":
        item = json.dumps(draw(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                                            lambda inner: st.lists(inner, max_size=3)
                                            | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                                            max_leaves=6)))
        raw = ("[" + ",".join([item] * max(1, size // (len(item) + 1))) + "]").encode()
    elif shape == "nested":
        depth = draw(st.integers(1, 2000))
        raw = b"[" * depth + b"]" * depth
    else:
        unit = b"".join(pieces)
        raw = unit * max(1, size // len(unit))
    return raw[: max(size, 1)] if shape == "repeat" else raw


@pytest.fixture(scope="module")
def fuzz_app(redis_url, tmp_path_factory, sandbox_server):
    """The receiver with one catch-all rule per source, and a small body limit."""
    from bridge.embedded import demo_env

    folder = tmp_path_factory.mktemp("fuzz-rules")
    sources = "".join(f"  {name}:\n" + "".join(f"    {key}: {json.dumps(value)}\n" for key, value in options.items())
                      for name, options in SOURCES.items())
    rules = "".join(f"  - name: all-{name}\n    source: {name}\n    actions:\n      - connection: coursebox\n"
                    f"        action: get_user\n        with: {{user_id: 1}}\n" for name in SOURCES)
    write_rules(folder, {"fuzz.yaml": f"sources:\n{sources}rules:\n{rules}", "connections.yaml": CONNECTIONS})
    return create_app({"redis_url": redis_url, "rules_dir": folder, "max_body_bytes": LIMIT, "log_level": "error",
                       "replay_window": 0}, env=demo_env(sandbox_server.url))


def _signed(name: str, raw: bytes):
    """Return (path with query, headers, body) as the source's real sender would send `raw`."""
    options = SOURCES[name]
    kind = options["type"]
    if kind == "thrivecart":  # its proof is a field of the form body itself
        return f"/hooks/{name}", {}, raw + b"&thrivecart_secret=" + SECRET.encode()
    request = signed_request(kind, {key: value for key, value in options.items() if key != "type"}, raw,
                             url=f"http://localhost/hooks/{name}", now=int(time.time()))
    parts = urlsplit(request.url)
    return parts.path + (f"?{parts.query}" if parts.query else ""), request.headers, request.raw


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                     HealthCheck.too_slow, HealthCheck.data_too_large])
@given(name=st.sampled_from(sorted(SOURCES)), raw=bodies(), content_type=st.sampled_from(CONTENT_TYPES),
       sign=st.booleans(), extra=st.dictionaries(st.sampled_from(HEADER_NAMES),
                                                 st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
                                                 max_size=4))
def test_no_body_gets_a_5xx_and_nothing_unproven_is_queued(fuzz_app, redis_conn, name, raw, content_type, sign, extra):
    path, headers = f"/hooks/{name}", dict(extra)
    if sign:
        path, proof, raw = _signed(name, raw)
        headers.update(proof)
    before = redis_conn.zcard(INDEX_KEY)
    response = fuzz_app.test_client().post(path, data=raw, headers=headers, content_type=content_type)
    status, queued = response.status_code, redis_conn.zcard(INDEX_KEY) - before
    event(f"{'signed' if sign else 'unsigned'}: {status}")  # shown by pytest --hypothesis-show-statistics
    assert status < 500, (status, response.get_data()[:300])
    assert response.is_json
    if len(raw) > LIMIT:
        assert status == 413 and queued == 0
    if status >= 400:
        assert queued == 0 and response.get_json()["message"]
    proven = sign or SOURCES[name].get("auth") == "none"
    if not proven:
        assert queued == 0 and status in (200, 400, 401, 413), (status, response.get_data()[:300])
