"""Per-sender presets: where each sender puts the event name and the delivery id."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .conditions import MISSING, lookup


@dataclass(frozen=True)
class Preset:
    """How to read one sender's webhooks."""

    event: Callable[[dict, dict, dict], str | None]
    delivery_id: Callable[[dict, dict, dict], str | None]


def _header(name: str) -> Callable[[dict, dict, dict], str | None]:
    return lambda headers, body, options: headers.get(name) or None


def _body(path: str) -> Callable[[dict, dict, dict], str | None]:
    return lambda headers, body, options: _text(lookup(body, path))


def _configured(option: str) -> Callable[[dict, dict, dict], str | None]:
    def read(headers: dict, body: dict, options: dict) -> str | None:
        where = options.get(option)
        if not where:
            return None
        if where.lower().startswith("header:"):
            return headers.get(where.split(":", 1)[1].strip().lower()) or None
        return _text(lookup({"body": body, "headers": headers}, where))

    return read


def _text(value) -> str | None:
    if value is MISSING or value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


PRESETS: dict[str, Preset] = {
    "generic": Preset(event=_configured("event"), delivery_id=_configured("id")),
    "woocommerce": Preset(event=_header("x-wc-webhook-topic"), delivery_id=_header("x-wc-webhook-delivery-id")),
    "shopify": Preset(event=_header("x-shopify-topic"), delivery_id=_header("x-shopify-event-id")),
    "stripe": Preset(event=_body("type"), delivery_id=_body("id")),
}


def read_event(source_type: str, options: dict, headers: dict, body) -> tuple[str, str | None]:
    """Return (event name, sender's delivery id) for a webhook; the name is "" when the sender gives none."""
    preset = PRESETS[source_type]
    data = body if isinstance(body, dict) else {}
    return preset.event(headers, data, options) or "", preset.delivery_id(headers, data, options)
