"""Source presets: every sender's signature, its events, and the checks that keep others out."""

from __future__ import annotations

import base64
import dataclasses
import json

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.errors import Unauthorized
from bridge.source_options import validate_source_spec
from bridge.sources import PRESETS, SOURCE_SCHEMAS, Inbound
from tests.signing import (FORM, NOW, URL, Request, basic_auth, form_encode, sign_bamboohr,
                           sign_hubspot_v1, sign_hubspot_v2, sign_hubspot_v3, sign_standard_webhooks, sign_stripe,
                           sign_woocommerce, signed_request, stripe_header, thrivecart_body, with_query)

WHSEC = "whsec_" + base64.b64encode(b"standard-webhooks-test-key-32byt").decode()
WHSEC_OLD = "whsec_" + base64.b64encode(b"the-previous-key-before-rotation").decode()

# type -> (options, body, what to drop to remove the proof, the reason then given)
CASES = {
    "shopify": ({"secret": "shpss_1"}, {"id": 820982911946154508}, "X-Shopify-Hmac-Sha256",
                "missing X-Shopify-Hmac-Sha256 header"),
    "woocommerce": ({"secret": "wc-secret"}, {"id": 1001, "status": "completed"}, "X-WC-Webhook-Signature",
                    "missing X-WC-Webhook-Signature header"),
    "stripe": ({"secret": "whsec_stripe"}, {"id": "evt_1", "type": "checkout.session.completed"}, "Stripe-Signature",
               "missing Stripe-Signature header"),
    "hubspot": ({"secret": "client-secret"}, [{"eventId": 1, "subscriptionType": "contact.creation"}],
                "X-HubSpot-Signature-v3", "missing X-HubSpot-Signature-v3 header"),
    "bamboohr": ({"secret": "bamboo-key"}, {"type": "employee.created", "data": {"id": "7"}}, "X-BambooHR-Signature",
                 "missing X-BambooHR-Signature header"),
    "github": ({"secret": "gh-secret"}, {"action": "opened"}, "X-Hub-Signature-256",
               "missing X-Hub-Signature-256 header"),
    "standard-webhooks": ({"secret": WHSEC}, {"type": "user.created"}, "webhook-signature",
                          "missing webhook-signature header"),
    "typeform": ({"secret": "tf-secret"}, {"event_id": "01H", "event_type": "form_response"}, "Typeform-Signature",
                 "missing Typeform-Signature header"),
    "thrivecart": ({"secret": "SECRETWORD"}, {"event": "order.success", "order_id": "123",
                                              "customer": {"email": "jane@example.com"}},
                   "thrivecart_secret", "missing thrivecart_secret field"),
    "gumroad": ({"secret": "gum-token"}, {"sale_id": "FQ==", "resource_name": "sale", "email": "jane@example.com"},
                "token", "missing token query parameter"),
    "generic": ({"auth": "hmac", "secret": "g-secret", "header": "X-Signature"}, {"event": "hired"}, "X-Signature",
                "missing X-Signature header"),
}
HMAC_SIGNED = [name for name in CASES if name not in ("thrivecart", "gumroad")]
MISMATCH = {"thrivecart": "secret does not match", "gumroad": "token does not match"}


def verify(request: Request, source_type: str, options: dict, now: float = NOW) -> None:
    PRESETS[source_type].verify(request.inbound(), options, now)


def refused(request: Request, source_type: str, options: dict, now: float = NOW) -> str:
    with pytest.raises(Unauthorized) as caught:
        verify(request, source_type, options, now)
    return caught.value.message


def without(request: Request, name: str) -> Request:
    """Remove a header, a form field or a query parameter, whichever carries `name`."""
    headers = {key: value for key, value in request.headers.items() if key.lower() != name.lower()}
    if name == "thrivecart_secret":
        fields = {key: value for key, value in request.inbound().body.items() if key != name}
        return dataclasses.replace(request, raw=form_encode(fields))
    if name == "token":
        return dataclasses.replace(request, url=URL)
    if name.startswith("X-HubSpot"):
        headers = {key: value for key, value in headers.items() if not key.startswith("X-HubSpot-Signature")}
    return dataclasses.replace(request, headers=headers)


def test_every_preset_is_covered():
    assert set(CASES) == set(PRESETS) == set(SOURCE_SCHEMAS)


@pytest.mark.parametrize("source_type", CASES)
def test_a_correctly_signed_request_passes(source_type):
    options, body, _, _ = CASES[source_type]
    verify(signed_request(source_type, options, body), source_type, options)


@pytest.mark.parametrize("source_type", CASES)
def test_a_request_without_its_proof_is_refused_with_the_reason(source_type):
    options, body, proof, reason = CASES[source_type]
    assert refused(without(signed_request(source_type, options, body), proof), source_type, options) == reason


@pytest.mark.parametrize("source_type", CASES)
def test_a_request_signed_with_another_secret_is_refused_without_echoing_secrets(source_type):
    options, body, _, _ = CASES[source_type]
    other = {**options, "secret": WHSEC_OLD if source_type == "standard-webhooks" else "not-the-secret"}
    message = refused(signed_request(source_type, other, body), source_type, options)
    assert message == MISMATCH.get(source_type, "signature does not match")
    assert options["secret"] not in message and other["secret"] not in message


@pytest.mark.parametrize("source_type", HMAC_SIGNED)
def test_a_changed_body_is_refused(source_type):
    options, body, _, _ = CASES[source_type]
    request = signed_request(source_type, options, body)
    tampered = dataclasses.replace(request, raw=request.raw.replace(b"}", b', "x": 1}', 1))
    assert refused(tampered, source_type, options) == "signature does not match"


@pytest.mark.parametrize("source_type", CASES)
def test_the_previous_secret_still_passes_during_a_rotation(source_type):
    options, body, _, _ = CASES[source_type]
    old = WHSEC_OLD if source_type == "standard-webhooks" else "previous-secret"
    request = signed_request(source_type, {**options, "secret": old}, body)
    verify(request, source_type, {**options, "secret": [options["secret"], old]})


@pytest.mark.parametrize("source_type", CASES)
def test_a_source_without_its_secret_lets_nothing_in(source_type):
    options, body, _, _ = CASES[source_type]
    request = signed_request(source_type, options, body)
    assert refused(request, source_type, {**options, "secret": []}) == "source has no secret configured"


@pytest.mark.parametrize("source_type", ["stripe", "hubspot", "bamboohr", "standard-webhooks"])
def test_a_stale_or_future_timestamp_is_refused_and_tolerance_widens_the_window(source_type):
    options, body, _, _ = CASES[source_type]
    for skew in (-301, 301):
        request = signed_request(source_type, options, body, now=NOW + skew)
        assert refused(request, source_type, options) == "timestamp outside the 300 s window"
    verify(signed_request(source_type, options, body, now=NOW - 299), source_type, options)
    late = signed_request(source_type, options, body, now=NOW - 900)
    verify(late, source_type, {**options, "tolerance": 1000})
    assert refused(late, source_type, {**options, "tolerance": 600}) == "timestamp outside the 600 s window"


# --- events -----------------------------------------------------------------------------------

@pytest.mark.parametrize("source_type,name,delivery_id", [
    ("shopify", "orders/paid", "evt-1"),
    ("stripe", "checkout.session.completed", "evt_1"),
    ("hubspot", "contact.creation", "1"),
    ("bamboohr", "employee.created", None),
    ("github", "push", "72d3162e-cc78-11e3"),
    ("standard-webhooks", "user.created", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"),
    ("typeform", "form_response", "01H"),
    ("thrivecart", "order.success", "123:order.success"),
    ("gumroad", "sale", "sale:FQ=="),
    ("generic", "hired", None),
])
def test_each_preset_reads_the_event_name_and_the_senders_id(source_type, name, delivery_id):
    options, body, _, _ = CASES[source_type]
    options = {**options, "event": "body.event"} if source_type == "generic" else options
    events = PRESETS[source_type].events(signed_request(source_type, options, body).inbound(), options)
    assert [(event.name, event.delivery_id) for event in events] == [(name, delivery_id)]


def test_shopify_falls_back_to_the_webhook_id():
    inbound = Inbound.of("POST", URL, {"X-Shopify-Topic": "orders/paid", "X-Shopify-Webhook-Id": "wh-9"}, b"{}", {})
    assert PRESETS["shopify"].events(inbound)[0].delivery_id == "wh-9"


def test_events_of_a_sender_without_a_name_have_an_empty_name():
    inbound = Inbound.of("POST", URL, {}, b"{}", {})
    names = {source_type: [event.name for event in preset.events(inbound, {})] for source_type, preset in PRESETS.items()}
    # Gumroad's classic Ping has no resource_name at all: it is always a sale.
    assert names.pop("gumroad") == ["sale"]
    assert set(map(tuple, names.values())) == {("",)}


# --- WooCommerce ------------------------------------------------------------------------------

WOO_PING = Request(URL, {"User-Agent": "WooCommerce/8.9 Hookshot (WordPress/6.5)"}, b"webhook_id=42", content_type=FORM)


def test_woocommerce_creation_ping_is_recognised_and_needs_no_signature():
    woo = PRESETS["woocommerce"]
    assert woo.ping(WOO_PING.inbound())
    assert refused(WOO_PING, "woocommerce", {"secret": "x"}) == "missing X-WC-Webhook-Signature header"


def test_woocommerce_ping_without_a_content_type_is_still_recognised():
    assert PRESETS["woocommerce"].ping(dataclasses.replace(WOO_PING, content_type="").inbound())


@pytest.mark.parametrize("request_", [
    dataclasses.replace(WOO_PING, headers={"X-WC-Webhook-Topic": "order.updated"}),
    dataclasses.replace(WOO_PING, raw=b"webhook_id=42&status=completed"),
    dataclasses.replace(WOO_PING, raw=b"webhook_id=abc"),
    signed_request("woocommerce", {"secret": "s"}, {"id": 1}),
])
def test_anything_else_is_not_a_woocommerce_ping(request_):
    assert not PRESETS["woocommerce"].ping(request_.inbound())


def test_only_woocommerce_and_thrivecart_have_pings():
    pinged = [name for name, preset in PRESETS.items() if preset.ping(WOO_PING.inbound(), {})]
    assert pinged == ["woocommerce", "thrivecart"]
    for source_type, (options, body, _, _) in CASES.items():
        assert not PRESETS[source_type].ping(signed_request(source_type, options, body).inbound(), options)


def test_woocommerce_delivery_id_tells_apart_two_deliveries_in_the_same_second():
    def delivery_id(body: bytes) -> str:
        inbound = Request(URL, sign_woocommerce(body, "s", delivery_id="same-second"), body).inbound()
        return PRESETS["woocommerce"].events(inbound)[0].delivery_id

    assert delivery_id(b'{"status": "processing"}') != delivery_id(b'{"status": "completed"}')
    assert delivery_id(b'{"status": "completed"}') == delivery_id(b'{"status": "completed"}')
    assert delivery_id(b"{}").startswith("same-second:")


def test_woocommerce_secret_shown_html_encoded_still_verifies():
    body = b'{"id": 1}'
    verify(Request(URL, sign_woocommerce(body, "a&b<c"), body), "woocommerce", {"secret": "a&amp;b&lt;c"})


# --- Stripe -----------------------------------------------------------------------------------

def test_stripe_accepts_any_of_several_v1_and_ignores_v0():
    body = b'{"id": "evt_1"}'
    verify(Request(URL, sign_stripe(body, ["rolled", "current"], v0=True), body), "stripe", {"secret": "current"})
    only_v0 = stripe_header(body, [], v0=True)
    assert refused(Request(URL, {"Stripe-Signature": only_v0}, body), "stripe", {"secret": "x"}) == \
        "no v1 signature in Stripe-Signature header"


@pytest.mark.parametrize("header,reason", [
    ("garbage", "no timestamp in Stripe-Signature header"),
    ("t=,v1=00", "no timestamp in Stripe-Signature header"),
    (f"t={NOW}", "no v1 signature in Stripe-Signature header"),
    (f"t={NOW},v1=not-hex", "signature does not match"),
])
def test_stripe_refuses_malformed_headers(header, reason):
    assert refused(Request(URL, {"Stripe-Signature": header}, b"{}"), "stripe", {"secret": "s"}) == reason


# --- HubSpot ----------------------------------------------------------------------------------

HUB = {"secret": "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"}
HUB_ALL = {**HUB, "versions": ["v1", "v2", "v3"]}
BATCH = [
    {"eventId": 100, "subscriptionType": "contact.creation", "objectId": 1},
    {"eventId": 101, "subscriptionType": "contact.propertyChange", "objectId": 1, "propertyName": "email"},
    {"eventId": 102, "subscriptionType": "deal.creation", "objectId": 9},
]


def hub(headers: dict, body: bytes, url: str = URL, method: str = "POST", extra: dict | None = None) -> Request:
    return Request(url, {**headers, **(extra or {})}, body, method=method)


def test_hubspot_batch_is_split_into_one_event_per_element():
    inbound = signed_request("hubspot", HUB, BATCH).inbound()
    events = PRESETS["hubspot"].events(inbound, HUB)
    assert [(e.name, e.delivery_id) for e in events] == [
        ("contact.creation", "100"), ("contact.propertyChange", "101"), ("deal.creation", "102")]
    assert [e.body for e in events] == BATCH


def test_hubspot_v3_wins_over_v1_so_a_replay_cannot_drop_the_timestamp():
    body = json.dumps(BATCH).encode()
    forged = {**sign_hubspot_v3(body, "other", timestamp_ms=NOW * 1000), **sign_hubspot_v1(body, HUB["secret"])}
    assert refused(hub(forged, body), "hubspot", HUB) == "signature does not match"
    stale = sign_hubspot_v3(body, HUB["secret"], timestamp_ms=(NOW - 3600) * 1000)
    assert refused(hub(stale, body), "hubspot", HUB) == "timestamp outside the 300 s window"


def test_hubspot_takes_only_v3_unless_the_source_lists_older_versions():
    body = json.dumps(BATCH).encode()
    # A stale capture with its v3 headers stripped must not pass on the timestamp-less v1 beside them.
    stripped = {k: v for k, v in sign_hubspot_v3(body, HUB["secret"], timestamp_ms=(NOW - 86400) * 1000).items()
                if not k.startswith(("X-HubSpot-Signature-v3", "X-HubSpot-Request-Timestamp"))}
    assert refused(hub(stripped, body), "hubspot", HUB) == "signature version 'v1' not accepted (this source takes v3)"
    assert refused(hub(sign_hubspot_v2(body, HUB["secret"]), body), "hubspot", HUB).startswith("signature version 'v2'")
    verify(hub(stripped, body), "hubspot", HUB_ALL)
    verify(hub(sign_hubspot_v2(body, HUB["secret"]), body), "hubspot", HUB_ALL)
    assert refused(hub(sign_hubspot_v2(body, HUB["secret"]), body), "hubspot", {**HUB, "versions": ["v3", "v1"]}) \
        == "signature version 'v2' not accepted (this source takes v3, v1)"
    headers = {k: v for k, v in sign_hubspot_v1(body, HUB["secret"]).items() if k != "X-HubSpot-Signature"}
    assert refused(hub(headers, body), "hubspot", HUB) == "missing X-HubSpot-Signature-v3 header"


def test_hubspot_v2_covers_the_url():
    body = json.dumps(BATCH).encode()
    signed = sign_hubspot_v2(body, HUB["secret"], url="https://elsewhere.example.com/hooks/test")
    assert refused(hub(signed, body), "hubspot", HUB_ALL) == "signature does not match"


def test_hubspot_behind_a_tls_proxy_verifies_with_the_forwarded_url():
    body = json.dumps(BATCH).encode()
    signed = sign_hubspot_v3(body, HUB["secret"], url="https://bridge.example.com/hooks/crm")
    internal = "http://127.0.0.1:8000/hooks/crm"
    assert refused(hub(signed, body, url=internal), "hubspot", HUB) == "signature does not match"
    proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "bridge.example.com"}
    verify(hub(signed, body, url=internal, extra=proxied), "hubspot", HUB)
    verify(hub(signed, body, url=internal), "hubspot", {**HUB, "public_url": "https://bridge.example.com/hooks/crm"})


def test_hubspot_v3_decodes_the_listed_characters_of_the_uri():
    body = b"[]"
    called = "https://bridge.example.com/hooks/crm?next=a%3Ab%2Fc&q=x%20y"
    signed_as = "https://bridge.example.com/hooks/crm?next=a:b/c&q=x%20y"
    verify(hub(sign_hubspot_v3(body, HUB["secret"], url=signed_as), body, url=called), "hubspot", HUB)


def test_hubspot_published_vectors():
    # https://developers.hubspot.com/docs/faq/v1-request-validation (the documented v1 example)
    body = (b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
            b'"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM",'
            b'"changeFlag":"NEW","appId":54321}]')
    v1 = {"X-HubSpot-Signature": "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de",
          "X-HubSpot-Signature-Version": "v1"}
    verify(hub(v1, body), "hubspot", HUB_ALL)
    # https://developers.hubspot.com/docs/faq/v2-request-validation (the documented GET example, no body)
    v2 = {"X-HubSpot-Signature": "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e",
          "X-HubSpot-Signature-Version": "v2"}
    PRESETS["hubspot"].verify(Inbound.of("GET", "https://www.example.com/webhook_uri", v2, b"", {}), HUB_ALL, NOW)
    # HubSpot's Python client, tests/spec/utils/test_signature.py (github.com/HubSpot/hubspot-api-python)
    body, url = b"{'example_field':'example_value'}", "https://www.example.com/webhook_uri"
    for headers in (
        {"X-HubSpot-Signature": "69fc6631a867edd4f9e9e627fc5c1148e3fbdd8b21837b6d2b8901c1fa57f750"},
        {"X-HubSpot-Signature": "4fe4e3a7d3cf09db53be39d0a58130e2aaba074ec123a9e355b876a689a1c383",
         "X-HubSpot-Signature-Version": "v2"},
        # Its v3 vector signs the timestamp 15000000, which this preset reads as Unix seconds.
        {"X-HubSpot-Signature-v3": "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw=",
         "X-HubSpot-Request-Timestamp": "15000000"},
    ):
        PRESETS["hubspot"].verify(Inbound.of("POST", url, headers, body, {}), HUB_ALL, 15_000_000)


def test_hubspot_single_object_body_is_one_event():
    inbound = Inbound.of("POST", URL, {}, b"{}", {"eventId": 5, "subscriptionType": "deal.deletion"})
    assert [(e.name, e.delivery_id) for e in PRESETS["hubspot"].events(inbound)] == [("deal.deletion", "5")]


# --- BambooHR ---------------------------------------------------------------------------------

def test_bamboohr_legacy_body_is_split_per_employee():
    body = {"employees": [
        {"id": "7", "action": "Created", "changedFields": [], "fields": {}},
        {"id": "7", "action": "Updated", "changedFields": ["workEmail"], "fields": {"workEmail": "j@example.com"}},
    ]}
    inbound = signed_request("bamboohr", {"secret": "k"}, body).inbound()
    events = PRESETS["bamboohr"].events(inbound)
    assert [(e.name, e.delivery_id, e.body["id"]) for e in events] == [
        ("employee.created", None, "7"), ("employee.updated", None, "7")]


def test_bamboohr_signs_body_then_timestamp_and_accepts_an_iso_timestamp():
    body = b'{"type": "employee.updated"}'
    verify(Request(URL, sign_bamboohr(body, "k", "2023-11-14T22:13:20Z"), body), "bamboohr", {"secret": "k"})
    swapped = {"X-BambooHR-Signature": sign_bamboohr(body, "k")["X-BambooHR-Signature"],
               "X-BambooHR-Timestamp": str(NOW + 1)}
    assert refused(Request(URL, swapped, body), "bamboohr", {"secret": "k"}) == "signature does not match"


# --- GitHub, Standard Webhooks, Typeform: published vectors ---------------------------------

def test_github_published_vector():
    # https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries#testing-the-webhook-payload-validation
    headers = {"X-Hub-Signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}
    inbound = Inbound.of("POST", URL, headers, b"Hello, World!", {})
    PRESETS["github"].verify(inbound, {"secret": "It's a Secret to Everybody"}, NOW)
    with pytest.raises(Unauthorized, match="does not start with sha256="):
        PRESETS["github"].verify(Inbound.of("POST", URL, {"X-Hub-Signature-256": "757107ea"}, b"", {}),
                                 {"secret": "s"}, NOW)


STANDARD_VECTOR = {  # github.com/standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py
    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
    "timestamp": 1614265330, "body": b'{"test": 2432232314}',
    "signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
}


@pytest.mark.parametrize("prefix", ["webhook", "svix"])
def test_standard_webhooks_published_vector_with_plain_and_svix_headers(prefix):
    v = STANDARD_VECTOR
    bogus = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
    headers = {f"{prefix}-id": v["id"], f"{prefix}-timestamp": str(v["timestamp"]),
               f"{prefix}-signature": f"{bogus} {v['signature']}"}
    inbound = Inbound.of("POST", URL, headers, v["body"], json.loads(v["body"]))
    for secret in (v["secret"], v["secret"].removeprefix("whsec_")):
        PRESETS["standard-webhooks"].verify(inbound, {"secret": secret}, v["timestamp"] + 10)
    assert PRESETS["standard-webhooks"].events(inbound)[0].delivery_id == v["id"]


def test_standard_webhooks_needs_a_v1_signature_and_a_base64_key():
    body = b"{}"
    headers = {**sign_standard_webhooks(body, WHSEC), "webhook-signature": "v2,AAAA"}
    assert refused(Request(URL, headers, body), "standard-webhooks", {"secret": WHSEC}) == \
        "no v1 signature in webhook-signature header"
    signed = Request(URL, sign_standard_webhooks(body, WHSEC), body)
    assert refused(signed, "standard-webhooks", {"secret": "whsec_not*base64"}) == \
        "source secret is not a whsec_ base64 key"


# --- ThriveCart and Gumroad -------------------------------------------------------------------

def test_thrivecart_secret_is_read_from_the_form_and_kept_out_of_the_event():
    options, body, _, _ = CASES["thrivecart"]
    request = signed_request("thrivecart", options, body)
    assert b"customer%5Bemail%5D=jane%40example.com" in request.raw
    event = PRESETS["thrivecart"].events(request.inbound(), options)[0]
    assert event.body["customer"] == {"email": "jane@example.com"} and "thrivecart_secret" not in event.body


def test_thrivecart_renewals_are_not_mistaken_for_retries():
    raw = thrivecart_body({"event": "order.subscription_payment", "order_id": "123"}, "s")
    event = PRESETS["thrivecart"].events(Request(URL, {}, raw, content_type=FORM).inbound())[0]
    assert (event.name, event.delivery_id) == ("order.subscription_payment", None)


@pytest.mark.parametrize("raw,is_ping", [
    (b"", True), (b"check=1", True),
    (thrivecart_body({"event": "order.success"}, "s"), False), (b"thrivecart_secret=x", False),
])
def test_thrivecart_url_check_post_is_a_ping(raw, is_ping):
    assert PRESETS["thrivecart"].ping(Request(URL, {}, raw, content_type=FORM).inbound()) is is_ping


def test_gumroad_token_in_the_query_with_a_configurable_name():
    options = {"secret": "gum-token", "query": "key"}
    request = signed_request("gumroad", options, {"sale_id": "A1"})
    assert request.url == URL + "?key=gum-token"
    verify(request, "gumroad", options)
    wrong_name = dataclasses.replace(request, url=with_query(URL, token="gum-token"))
    assert refused(wrong_name, "gumroad", options) == "missing key query parameter"


def test_gumroad_retry_keeps_the_id_and_a_refund_gets_its_own():
    def event(fields):
        inbound = signed_request("gumroad", {"secret": "t"}, fields).inbound()
        return PRESETS["gumroad"].events(inbound)[0]

    first, retry = event({"sale_id": "A1", "resource_name": "sale"}), event({"sale_id": "A1", "retry_count": "1"})
    assert first.delivery_id == retry.delivery_id == "sale:A1"
    assert event({"sale_id": "A1", "resource_name": "refund"}).delivery_id == "refund:A1"


# --- generic ----------------------------------------------------------------------------------

@pytest.mark.parametrize("options", [
    {"auth": "token", "secret": "tok-0123456789abcdef", "header": "X-Hook-Token"},
    {"auth": "token", "secret": "tok-0123456789abcdef", "query": "token"},
    {"auth": "basic", "username": "bridge", "password": "pw-0123456789abcdef"},
    {"auth": "hmac", "secret": "k", "header": "X-Sig", "algorithm": "sha1"},
    {"auth": "hmac", "secret": "k", "header": "X-Sig", "algorithm": "sha512", "encoding": "base64"},
    {"auth": "hmac", "secret": "k", "header": "X-Sig", "prefix": "sha256="},
])
def test_generic_modes_pass_when_signed_and_fail_with_another_secret(options):
    assert not validate_source_spec({"type": "generic", **options})
    verify(signed_request("generic", options, {"event": "e"}), "generic", options)
    key = "password" if options["auth"] == "basic" else "secret"
    wrong = signed_request("generic", {**options, key: "nope"}, {"event": "e"})
    assert refused(wrong, "generic", options) in ("token does not match", "credentials do not match",
                                                  "signature does not match")


def test_generic_none_lets_anything_in_and_token_takes_a_bearer_header():
    verify(Request(URL, {}, b"{}"), "generic", {"auth": "none"})
    verify(Request(URL, {"Authorization": "Bearer tok"}, b"{}"), "generic",
           {"auth": "token", "secret": "tok", "header": "Authorization"})


@pytest.mark.parametrize("headers,reason", [
    ({}, "missing Basic credentials"),
    ({"Authorization": "Bearer x"}, "missing Basic credentials"),
    ({"Authorization": "Basic %%%"}, "unreadable Basic credentials"),
    ({"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()}, "unreadable Basic credentials"),
    (basic_auth("someone", "pw"), "credentials do not match"),
])
def test_generic_basic_auth_refusals(headers, reason):
    options = {"auth": "basic", "username": "bridge", "password": ["pw", "old"]}
    assert refused(Request(URL, headers, b"{}"), "generic", options) == reason


def test_generic_without_auth_refuses_everything():
    assert refused(Request(URL, {}, b"{}"), "generic", {}) == "source has no auth configured"


@pytest.mark.parametrize("where,expected", [
    ("body.order.id", "42"), ("order.id", "42"), ("header:X-Event", "paid"), ("headers.x-event", "paid"),
    ("query:src", "shop"), ("body.missing", None), ("body.order", None),
])
def test_generic_event_and_id_come_from_configured_paths(where, expected):
    inbound = Inbound.of("POST", URL + "?src=shop", {"X-Event": "paid"}, b"", {"order": {"id": 42}})
    event = PRESETS["generic"].events(inbound, {"auth": "none", "event": where, "id": where})[0]
    assert (event.name or None, event.delivery_id) == (expected, expected)


# --- Inbound and redaction ---------------------------------------------------------------------

def test_inbound_lowercases_headers_reads_the_query_and_rebuilds_the_forwarded_url():
    inbound = Inbound.of("post", "http://10.0.0.5:8000/hooks/crm?a=1&a=2&b=", {"X-Forwarded-Proto": "https, http",
                         "X-Forwarded-Host": "bridge.example.com"}, b"", {})
    assert (inbound.method, inbound.path, dict(inbound.query)) == ("POST", "/hooks/crm", {"a": "1", "b": ""})
    assert inbound.header("X-FORWARDED-PROTO") == "https, http"
    assert inbound.forwarded_url() == "https://bridge.example.com/hooks/crm?a=1&a=2&b="
    assert Inbound.of("POST", URL, {}, b"", {}).forwarded_url() is None


# --- schemas ----------------------------------------------------------------------------------

def test_every_schema_is_valid_strict_and_requires_a_secret_or_an_explicit_auth():
    for name, schema in SOURCE_SCHEMAS.items():
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["additionalProperties"] is False
        assert "secret" in schema["required"] or name == "generic"
    assert SOURCE_SCHEMAS["generic"]["required"] == ["type", "auth"]


@pytest.mark.parametrize("spec,problems", [
    ({"type": "shopify"}, [(None, "missing key 'secret'")]),
    ({"type": "shopify", "secret": "s", "tolerance": 60},
     [("tolerance", "unknown key 'tolerance' (known: description, secret, type)")]),
    ({"type": "stripe", "secret": "s", "tolerance": 0}, [("tolerance", "tolerance: 0 is less than the minimum of 1")]),
    ({"type": "generic"}, [(None, "missing key 'auth'")]),
    ({"type": "generic", "auth": "token", "secret": "s"}, [(None, "auth token needs exactly one of 'header' or 'query'")]),
    ({"type": "generic", "auth": "hmac", "secret": "s"}, [(None, "missing key 'header' (auth hmac needs it)")]),
    ({"type": "generic", "auth": "none", "secret": "s"}, [("secret", "key 'secret' does not apply to auth none")]),
    ({"type": "nope"}, [("type", "unknown or missing type 'nope' (known: bamboohr, generic, github, gumroad, hubspot, "
                                 "shopify, standard-webhooks, stripe, thrivecart, typeform, woocommerce)")]),
])
def test_validate_source_spec_says_what_is_wrong(spec, problems):
    assert validate_source_spec(spec) == problems


def test_validate_source_spec_never_quotes_a_secret():
    problems = validate_source_spec({"type": "stripe", "secret": ["s3cr3t-value", 12345]})
    assert problems == [("secret", "'secret' must be a non-empty string or a list of them")]
    problems = validate_source_spec({"type": "standard-webhooks", "secret": "whsec_s3cr3t!"})
    assert "s3cr3t" not in repr(problems)


FUZZ_SOURCES = [(kind, {"secret": "s3cret-value"}) for kind in sorted(PRESETS) if kind not in ("generic", "standard-webhooks")] + [
    ("standard-webhooks", {"secret": "whsec_c2VjcmV0LXZhbHVl"}),
    ("generic", {"auth": "token", "header": "X-Token", "secret": "s3cret-value"}),
    ("generic", {"auth": "token", "query": "token", "secret": "s3cret-value"}),
    ("generic", {"auth": "basic", "username": "u", "password": "s3cret-value"}),
    ("generic", {"auth": "hmac", "header": "X-Sig", "secret": "s3cret-value", "prefix": "sha256="}),
]
FUZZ_HEADERS = ["x-shopify-hmac-sha256", "x-wc-webhook-signature", "stripe-signature", "x-hubspot-signature",
                "x-hubspot-signature-v3", "x-hubspot-request-timestamp", "x-hubspot-signature-version",
                "x-bamboohr-signature", "x-bamboohr-timestamp", "x-hub-signature-256", "webhook-id",
                "webhook-timestamp", "webhook-signature", "typeform-signature", "authorization", "x-token", "x-sig"]
JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=12),
                       lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
                       max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(source=st.sampled_from(FUZZ_SOURCES), raw=st.binary(max_size=200),
       headers=st.dictionaries(st.sampled_from(FUZZ_HEADERS), st.text(max_size=60), max_size=6),
       body=JSONISH, query=st.dictionaries(st.sampled_from(["token", "k", "x"]), st.text(max_size=20), max_size=3),
       now=st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_random_requests_raise_nothing_but_unauthorized(source, raw, headers, body, query, now):
    source_type, options = source
    inbound = Inbound("POST", URL, headers, query, raw, body)
    preset = PRESETS[source_type]
    try:
        preset.verify(inbound, options, now)
    except Unauthorized as error:
        assert (options.get("secret") or options["password"]) not in error.message
    preset.ping(inbound, options)
    for event in preset.events(inbound, {**options, "event": "body.a.b", "id": "header:x-event"}):
        assert isinstance(event.name, str) and (event.delivery_id is None or isinstance(event.delivery_id, str))


@pytest.mark.parametrize("source_type", sorted(CASES))
def test_verify_returns_the_signed_bytes_only_for_schemes_without_a_signed_timestamp(source_type):
    options, body, _, _ = CASES[source_type]
    request = signed_request(source_type, options, body)
    signed = PRESETS[source_type].verify(request.inbound(), options, NOW)
    untimed = {"shopify", "woocommerce", "github", "typeform", "generic"}
    assert signed == (request.raw if source_type in untimed else None)


def test_hubspot_v1_returns_the_signed_body_and_v3_nothing():
    body = b'[{"eventId": 1}]'
    options = {"secret": "client-secret", "versions": ["v1", "v3"]}
    v1 = Inbound.of("POST", URL, sign_hubspot_v1(body, "client-secret"), body, [])
    assert PRESETS["hubspot"].verify(v1, options, NOW) == body
    v3 = Inbound.of("POST", URL, sign_hubspot_v3(body, "client-secret"), body, [])
    assert PRESETS["hubspot"].verify(v3, options, NOW) is None


def test_thrivecart_reads_its_secret_from_the_raw_form_before_decoding_anything():
    # Past every decoding cap, and not even UTF-8 once unescaped: still refused on the secret alone.
    raw = b"a" + b"[x]" * 40 + b"=%ff&" + b"tags[]=1&" * 1000 + b"thrivecart_secret=wrong&event=order.success"
    inbound = Inbound.of("POST", URL, {"Content-Type": FORM}, raw)
    with pytest.raises(Unauthorized, match="secret does not match"):
        PRESETS["thrivecart"].verify(inbound, {"secret": "SECRETWORD"}, NOW)
    assert "body" not in inbound.__dict__  # never decoded
    assert not PRESETS["thrivecart"].ping(inbound, {"secret": "SECRETWORD"})
    encoded = Inbound.of("POST", URL, {"Content-Type": FORM}, b"event=order.success&thrivecart_secret=SECRET%20WORD")
    assert PRESETS["thrivecart"].verify(encoded, {"secret": "SECRET WORD"}, NOW) is None


@pytest.mark.parametrize("spec", [
    {"type": "generic", "auth": "token", "header": "X-Token", "secret": "short-token"},
    {"type": "generic", "auth": "token", "query": "key", "secret": ["a-long-enough-token-1", "short"]},
    {"type": "generic", "auth": "basic", "username": "u", "password": "pw"},
    {"type": "gumroad", "secret": "abc"},
])
def test_shared_tokens_shorter_than_16_characters_are_a_load_error(spec):
    key = "password" if spec.get("auth") == "basic" else "secret"
    [(where, message)] = validate_source_spec(spec)
    assert where == key and message.startswith(f"'{key}' must be at least 16 characters")
    assert "short" not in message and "abc" not in message.replace("characters", "")
    assert validate_source_spec({**spec, key: "0123456789abcdef"}) == []


def test_reprs_of_sources_and_connections_hold_no_secret():
    from bridge.lms.coursebox import Coursebox
    from bridge.rules import Connection, Source

    source = Source("shop", "woocommerce", {"secret": "wc-secret-value"}, "shop.yaml", 3)
    spec = {"type": "coursebox", "url": "https://u:pw-in-url@lms.test", "email": "a@b.test", "password": "cb-pass"}
    connection = Connection("cb", "coursebox", spec, "c.yaml", 2)
    shown = repr(source) + repr(connection) + repr(Coursebox("cb", connection.spec))
    assert "wc-secret-value" not in shown and "cb-pass" not in shown and "pw-in-url" not in shown
    assert "shop.yaml" in shown and "lms.test" in shown


def test_headers_read_from_the_environ_are_werkzeugs_with_lower_cased_names():
    from werkzeug.datastructures import EnvironHeaders
    from werkzeug.test import EnvironBuilder

    from bridge.sources import environ_headers

    environ = EnvironBuilder(method="POST", data=b"{}", headers={"X-WC-Webhook-Signature": "abc", "Content-Type": "application/json",
                                                                 "User-Agent": "WooCommerce/9"}).get_environ()
    environ["HTTP_CONTENT_TYPE"] = "not the content type"  # werkzeug ignores it; so does the receiver
    expected = {name.lower(): value for name, value in dict(EnvironHeaders(environ)).items()}
    assert environ_headers(environ) == expected and expected["content-type"] == "application/json"
