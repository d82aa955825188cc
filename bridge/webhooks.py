"""The receiver: raw body in, 202 only once the delivery is durably queued."""

from __future__ import annotations

import time

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from .bodies import decode_body
from .deliveries import accept, new_delivery_id, redact_headers
from .engine import decide_all
from .errors import BridgeError, ConfigErrors, NotFound
from .sources import read_event

blueprint = Blueprint("webhooks", __name__)


def _runtime():
    return current_app.extensions["bridge"]


def _source(name: str):
    ruleset = _runtime().rules.get()
    source = ruleset.sources.get(name)
    if source is None:
        raise NotFound(f"no source named {name!r}; sources are declared in the rule files")
    return ruleset, source


@blueprint.route("/hooks/<name>", methods=["GET", "HEAD"])
def check_url(name: str):
    """Answer a sender that checks the hook URL before using it."""
    _source(name)
    return jsonify(source=name, ready=True)


@blueprint.post("/hooks/<name>")
def receive(name: str):
    """Receive one webhook: decode, match, and queue its jobs in one transaction."""
    ruleset, source = _source(name)
    runtime = _runtime()
    raw = request.get_data(cache=True)
    body = decode_body(raw, request.content_type)
    headers = {key.lower(): value for key, value in request.headers.items()}
    event_name, sender_id = read_event(source.type, source.options, headers, body)
    event = {
        "source": name,
        "event": event_name,
        "delivery_id": new_delivery_id(),
        "sender_id": sender_id,
        "received_at": time.time(),
        "headers": headers,
        "query": request.args.to_dict(),
        "body": body,
    }
    decisions = decide_all(ruleset, event)
    stored_event = {**event, "headers": redact_headers(headers)}
    accepted = accept(runtime.redis, runtime.settings, stored_event, raw, decisions, ruleset)
    reply = {
        "delivery_id": accepted.delivery_id,
        "source": name,
        "event": event_name,
        "matched": accepted.matched,
        "jobs": accepted.job_ids,
        "decisions": accepted.decisions,
    }
    if not accepted.matched:
        reply["message"] = "matched no rule" if decisions else f"no rule of source {name!r} is for event {event_name!r}"
    return jsonify(reply), 202


def register_error_handlers(app) -> None:
    """Answer every error as JSON that says why, with Retry-After where a retry can help."""

    @app.errorhandler(BridgeError)
    def bridge_error(error: BridgeError):
        response = jsonify(error.to_dict())
        response.status_code = error.status
        if error.retryable:
            response.headers["Retry-After"] = "30"
        return response

    @app.errorhandler(ConfigErrors)
    def config_errors(error: ConfigErrors):
        app.logger.error("rule files have errors:\n%s", error.message)
        response = jsonify(error="ConfigErrors", message="the rule files have errors; run `bridge check`",
                           errors=[e.message for e in error.errors])
        # 503 so that senders retry once the rules are fixed, instead of dropping the delivery.
        response.status_code = 503
        response.headers["Retry-After"] = "60"
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        response = jsonify(error=type(error).__name__, message=error.description)
        response.status_code = error.code or 500
        return response
