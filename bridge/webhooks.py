"""The receiver: raw body in, sender verified, 2xx only once every event is durably queued."""

from __future__ import annotations

import logging
import time

import redis
from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from . import metrics
from .bodies import decode_body
from .deliveries import accept, new_delivery_id
from .engine import decide_all
from .errors import BadRequest, BridgeError, ConfigErrors, NotFound, Unauthorized
from .signatures import secrets_of
from .sources import PRESETS, Inbound

blueprint = Blueprint("webhooks", __name__)
log = logging.getLogger("bridge.webhooks")


def _runtime():
    return current_app.extensions["bridge"]


def _source(name: str):
    ruleset = _runtime().rules.get()
    source = ruleset.sources.get(name)
    if source is None:
        raise NotFound(f"no source named {name!r}; sources are declared in the rule files")
    return ruleset, source


def called_url() -> str:
    """Return the URL as the sender called it (signatures such as HubSpot's cover it, escapes included)."""
    uri = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.full_path.rstrip("?")
    return request.host_url.rstrip("/") + uri


@blueprint.route("/hooks/<name>", methods=["GET", "HEAD"])
def check_url(name: str):
    """Answer a sender that checks the hook URL before using it."""
    _source(name)
    return jsonify(source=name, ready=True)


@blueprint.post("/hooks/<name>")
def receive(name: str):
    """Receive one webhook: decode, verify, match, and queue its jobs in one transaction."""
    ruleset, source = _source(name)
    runtime = _runtime()
    raw = request.get_data(cache=True)
    try:
        body = decode_body(raw, request.content_type)
    except BadRequest as error:
        _refused(runtime, name, "invalid", error)
        raise
    inbound = Inbound.of(request.method, called_url(), request.headers, raw, body)
    preset = PRESETS[source.type]
    if preset.ping(inbound, source.options):
        log.info("URL check answered", extra={"source": name})
        return jsonify(source=name, ping=True, message="URL check answered; nothing queued"), 200
    try:
        signed = preset.verify(inbound, source.options, time.time())
    except Unauthorized as error:
        _refused(runtime, name, "unauthorized", error)
        raise
    batch = []
    for found in preset.events(inbound, source.options):
        event = {
            "source": name,
            "event": found.name,
            "delivery_id": new_delivery_id(),
            "sender_id": found.delivery_id,
            "received_at": time.time(),
            "headers": dict(inbound.headers),
            "query": dict(inbound.query),
            "body": found.body,
        }
        batch.append((event, decide_all(ruleset, event)))
    if not batch:
        return jsonify(source=name, deliveries=[], message="the body holds no events; nothing queued"), 200
    secrets = secrets_of(source.options.get("secret")) + secrets_of(source.options.get("password"))
    outcomes = accept(runtime.redis, runtime.settings, batch, raw, ruleset, secrets, signed)
    for outcome in outcomes:
        log.info("delivery %s", "duplicate" if outcome.duplicate_of else "queued" if outcome.matched else "unmatched",
                 extra={"delivery_id": outcome.duplicate_of or outcome.delivery_id, "source": name, "event": outcome.event,
                        "rules": outcome.matched, "jobs": outcome.jobs})
    status = 200 if all(outcome.duplicate_of for outcome in outcomes) else 202
    if len(outcomes) == 1:
        return jsonify(outcomes[0].to_dict()), status
    return jsonify(source=name, deliveries=[outcome.to_dict() for outcome in outcomes]), status


def _refused(runtime, source: str, outcome: str, error: BridgeError) -> None:
    """Count and log a webhook refused before anything was stored (the count is best effort)."""
    log.warning("webhook refused: %s", error.message, extra={"source": source, "status": error.status})
    try:
        metrics.count(runtime.redis, "bridge_deliveries_total", source=source, outcome=outcome)
        if outcome == "unauthorized":
            metrics.count(runtime.redis, "bridge_signature_failures_total", source=source)
    except redis.RedisError:
        pass


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
        # Keep what the error says besides its body, such as the Allow header of a 405.
        for name, value in error.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response
