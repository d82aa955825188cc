import pytest

from bridge.bodies import decode_body, decode_form
from bridge.errors import BadRequest


def test_json_object_and_array():
    assert decode_body(b'{"a": {"b": 1}}', "application/json") == {"a": {"b": 1}}
    assert decode_body(b'[{"eventId": 1}]', "application/json; charset=utf-8") == [{"eventId": 1}]
    assert decode_body(b'{"a": 1}', "application/vnd.api+json") == {"a": 1}


def test_form_with_nested_keys_like_thrivecart():
    body = decode_body(
        b"event=order.success&customer%5Bemail%5D=jane%40example.com&customer[name]=Jane"
        b"&order[items][0][sku]=A1&order[items][1][sku]=B2&tags[]=x&tags[]=y",
        "application/x-www-form-urlencoded",
    )
    assert body == {
        "event": "order.success",
        "customer": {"email": "jane@example.com", "name": "Jane"},
        "order": {"items": [{"sku": "A1"}, {"sku": "B2"}]},
        "tags": ["x", "y"],
    }


def test_form_keeps_malformed_brackets_literal_and_root_is_an_object():
    assert decode_form("a[b=1&0=x&1=y") == {"a[b": "1", "0": "x", "1": "y"}
    assert decode_form("ids[2]=c&ids[0]=a") == {"ids": {"2": "c", "0": "a"}}


def test_empty_body_is_an_empty_object():
    assert decode_body(b"", "application/json") == {}
    assert decode_body(b"  ", None) == {}


def test_no_content_type_is_told_apart_by_shape():
    assert decode_body(b'{"a": 1}', None) == {"a": 1}
    assert decode_body(b"webhook_id=12", "") == {"webhook_id": "12"}


@pytest.mark.parametrize(
    ("raw", "content_type", "reason"),
    [
        (b"{not json", "application/json", "not valid JSON"),
        (b'"just a string"', "application/json", "must be an object or an array"),
        (b"\xff\xfe", "application/json", "not UTF-8"),
        (b"hello", "text/plain", "neither JSON nor form data"),
        (b"<xml/>", "application/xml", "unsupported content type 'application/xml'"),
        (b"a=%ff", "application/x-www-form-urlencoded", "cannot be decoded"),
        (b"[" * 100_000, "application/json", "JSON"),
    ],
)
def test_undecodable_bodies_say_why(raw, content_type, reason):
    with pytest.raises(BadRequest) as error:
        decode_body(raw, content_type)
    assert reason in error.value.message
    assert error.value.status == 400


def test_form_nesting_is_capped():
    with pytest.raises(BadRequest, match="nested deeper"):
        decode_form("a" + "[x]" * 40 + "=1")
