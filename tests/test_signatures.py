"""The pure signature helpers: digests, constant-time matching, secrets and replay windows."""

import base64
import hashlib
import hmac

import pytest

from bridge.errors import Unauthorized
from bridge.signatures import (check_window, decode, digest, encode, matches, parse_timestamp, require_secrets,
                               same_text, secrets_of, tolerance_of)


def test_secrets_are_one_or_a_list_and_blanks_are_dropped():
    assert secrets_of("a") == ["a"]
    assert secrets_of(["new", "", "old", 7]) == ["new", "old"]
    assert secrets_of(None) == secrets_of("") == secrets_of(42) == []


def test_a_source_without_secret_refuses_everything():
    with pytest.raises(Unauthorized, match="^source has no secret configured$"):
        require_secrets({})
    with pytest.raises(Unauthorized, match="^source has no password configured$"):
        require_secrets({"password": []}, "password")


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha512"])
def test_digest_is_the_standard_hmac(algorithm):
    assert digest(b"key", b"message", algorithm) == hmac.new(b"key", b"message", getattr(hashlib, algorithm)).digest()


def test_digest_refuses_an_unknown_algorithm():
    with pytest.raises(ValueError, match="got 'md5'"):
        digest(b"key", b"message", "md5")


@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_encode_and_decode_round_trip(encoding):
    raw = bytes(range(40))
    assert decode(encode(raw, encoding), encoding) == raw


def test_decode_reads_upper_case_hex_unpadded_base64_and_plus_turned_space():
    raw = bytes(range(32))
    assert decode(raw.hex().upper(), "hex") == raw
    assert decode(base64.b64encode(raw).decode().rstrip("="), "base64") == raw
    text = base64.b64encode(b"\xfb\xff\xfe" * 4).decode()  # has "+" and "/"
    assert "+" in text and decode(text.replace("+", " "), "base64") == b"\xfb\xff\xfe" * 4


@pytest.mark.parametrize("text,encoding", [("zz", "hex"), ("abc", "hex"), ("***", "base64"), ("é", "base64")])
def test_decode_gives_none_for_text_that_is_not_a_signature(text, encoding):
    assert decode(text, encoding) is None


def test_matches_accepts_any_expected_digest_and_nothing_else():
    first, second = digest(b"one", b"m"), digest(b"two", b"m")
    assert matches(second.hex(), [first, second], "hex")
    assert not matches(digest(b"three", b"m").hex(), [first, second], "hex")
    assert not matches("", [first], "hex") and not matches(None, [first], "hex")
    assert not matches("ünïcödé", [first], "base64")


def test_same_text_compares_tokens_including_non_ascii():
    assert same_text("pässword", ["other", "pässword"])
    assert not same_text("pässword", ["password"])
    assert not same_text(None, ["x"])


@pytest.mark.parametrize("value,expected", [
    ("1700000000", 1_700_000_000),
    ("1700000000000", 1_700_000_000),          # HubSpot sends milliseconds
    ("1700000000.5", 1_700_000_000.5),
    ("2023-11-14T22:13:20Z", 1_700_000_000),
    ("2023-11-14T22:13:20", 1_700_000_000),    # no zone: UTC
])
def test_parse_timestamp_reads_seconds_milliseconds_and_iso(value, expected):
    assert parse_timestamp(value) == expected


@pytest.mark.parametrize("value", [None, "", "soon", "nan", "inf", "-5", "9" * 40, "1e10"])
def test_parse_timestamp_gives_none_for_anything_else(value):
    assert parse_timestamp(value) is None


def test_check_window_says_why_it_refuses():
    assert check_window("1700000000", 1_700_000_300, 300, "T") == 1_700_000_000
    with pytest.raises(Unauthorized, match="^timestamp outside the 300 s window$"):
        check_window("1700000000", 1_700_000_301, 300, "T")
    with pytest.raises(Unauthorized, match="^timestamp outside the 300 s window$"):
        check_window("1700000301", 1_700_000_000, 300, "T")
    with pytest.raises(Unauthorized, match="^unreadable T timestamp$"):
        check_window("yesterday", 1_700_000_000, 300, "T")
    with pytest.raises(Unauthorized, match="^missing T timestamp$"):
        check_window(None, 1_700_000_000, 300, "T")


def test_tolerance_comes_from_options_or_the_default():
    assert tolerance_of({}) == 300
    assert tolerance_of({"tolerance": 900}) == 900
    assert tolerance_of({"tolerance": True}) == tolerance_of({"tolerance": 0}) == 300
