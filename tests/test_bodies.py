import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.bodies import BodyLimits, decode_body, decode_form
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
        (b"a=%ff", "application/x-www-form-urlencoded", "not UTF-8 once unescaped"),
        (b"[" * 100_000, "application/json", "nested deeper than 32 levels"),
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


def test_empty_brackets_append_after_the_highest_index_as_php_does():
    assert decode_form("tags[]=a&tags[]=b") == {"tags": ["a", "b"]}
    assert decode_form("t[]=a&t[5]=b&t[]=c") == {"t": {"0": "a", "5": "b", "6": "c"}}
    assert decode_form("t[1]=x&t[]=y&t[0]=z") == {"t": ["z", "x", "y"]}
    assert decode_form("t[00]=x") == {"t": {"00": "x"}}  # not an index 0 spelled twice


def test_many_appends_decode_to_one_list():
    count = BodyLimits().fields - 2  # the body and the list count too
    body = decode_form("&".join(["tags[]=v"] * count))
    assert body == {"tags": ["v"] * count}


LIMITS = BodyLimits(fields=10, depth=3, key_length=10, number_length=5)


@pytest.mark.parametrize(
    ("raw", "content_type", "reason"),
    [
        (b'[' + b','.join([b"1"] * 10) + b']', "application/json", "more than 10 values"),
        (b"&".join([b"a=1"] * 11), "application/x-www-form-urlencoded", "more than 10 fields"),
        (b"a[b][c][d]=1&x=1&y=1&z=1&w=1", "application/x-www-form-urlencoded", "nested deeper than 3"),
        (b"&".join([b"a[]=1"] * 9), "application/x-www-form-urlencoded", "more than 10 values"),
        (b'{"a": {"b": {"c": {}}}}', "application/json", "nested deeper than 3"),
        (b'{"abcdefghijk": 1}', "application/json", "key longer than 10"),
        (b"abcdefghijk=1", "application/x-www-form-urlencoded", "longer than 10"),
        (b'{"n": 123456}', "application/json", "number longer than 5"),
        (b'{"n": -123456}', "application/json", "number longer than 5"),
    ],
)
def test_limits_refuse_with_a_reason(raw, content_type, reason):
    with pytest.raises(BadRequest) as error:
        decode_body(raw, content_type, LIMITS)
    assert reason in error.value.message and error.value.status == 400


def test_bodies_at_the_limits_are_decoded():
    assert decode_body(b'{"a": {"b": {"c": 12345}}}', "application/json", LIMITS) == {"a": {"b": {"c": 12345}}}
    assert decode_body(b"a[b][c]=1", "application/x-www-form-urlencoded", LIMITS) == {"a": {"b": {"c": "1"}}}
    assert decode_body(b'[' + b','.join([b"1"] * 9) + b']', "application/json", LIMITS) == [1] * 9


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"n": ' + b"9" * 5000 + b"}", "number longer than 100"),
        (b'{"n": 1e999}', "too large to store"),
        (b'{"n": NaN}', "NaN is not a JSON value"),
        (b'{"n": -Infinity}', "-Infinity is not a JSON value"),
        (b'{"s": "\\ud800"}', "lone surrogate"),
        (b'{"\\udfff": 1}', "lone surrogate"),
        (b"[" * 950 + b"]" * 950, "nested deeper than 32"),
    ],
)
def test_json_the_bridge_could_not_store_is_refused(raw, reason):
    with pytest.raises(BadRequest) as error:
        decode_body(raw, "application/json")
    assert reason in error.value.message


def test_a_surrogate_pair_is_one_character_and_fine():
    assert decode_body(b'{"s": "\\ud83d\\ude00"}', "application/json") == {"s": "\U0001F600"}


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10 ** 30), max_value=10 ** 30)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)


@given(value=st.dictionaries(st.text(max_size=6), _JSON_VALUES, max_size=4), ensure_ascii=st.booleans())
def test_the_fast_json_decoder_gives_what_the_standard_library_gives(value, ensure_ascii):
    """orjson reads ordinary bodies; numbers past 64 bits and the rest go the standard library's way: same values, same types."""
    import json

    from bridge.bodies import BodyLimits, _decode_json

    raw = json.dumps(value, ensure_ascii=ensure_ascii).encode()
    decoded = _decode_json(raw, BodyLimits(depth=64, fields=10_000))
    expected = json.loads(raw)
    assert repr(decoded) == repr(expected)
