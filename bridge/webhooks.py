"""The receiver: raw body in, sender verified, 2xx only once every event is durably queued."""

from __future__ import annotations

import logging
import time
from functools import lru_cache

import redis
from flask import Blueprint, current_app, g, jsonify, request
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import HTTPException
from werkzeug.urls import uri_to_iri

from . import jsontext, metrics
from .deliveries import accept, new_delivery_id
from .engine import decide_all
from .errors import BadRequest, BridgeError, ConfigErrors, NotFound, PayloadTooLarge, Unauthorized
from .signatures import secrets_of
from .sources import PRESETS, Inbound, environ_headers

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
    return _origin(request.scheme, request.host) + uri


@lru_cache(maxsize=64)
def _origin(scheme: str, host: str) -> str:
    """Return scheme://host as werkzeug's host_url spells it (IRI, host decoded), worked out once per host."""
    return uri_to_iri(f"{scheme}://{host}/").rstrip("/")


@blueprint.route("/hooks/<name>", methods=["GET", "HEAD"])
def check_url(name: str):
    """Answer a sender that checks the hook URL before using it."""
    _source(name)
    return jsonify(source=name, ready=True)


@blueprint.post("/hooks/<name>")
def receive(name: str):
    """Receive one webhook; every refusal on a hook URL passes through `refuse`."""
    runtime = _runtime()
    try:
        return _receive(runtime, name)
    except BridgeError as error:
        refuse(runtime, name, error)
        raise


def _receive(runtime, name: str):
    """Read the body within its limit, verify the sender on the raw bytes, then decode, match and queue."""
    started = time.perf_counter()
    ruleset, source = _source(name)
    raw = read_body(request.environ, runtime.settings.max_body_bytes)
    g.hook_raw = raw  # for the refused-request log, should this request be refused after all
    inbound = Inbound.of(request.method, called_url(), environ_headers(request.environ), raw, limits=runtime.settings.body_limits)
    preset = PRESETS[source.type]
    if preset.ping(inbound, source.options):
        log.info("URL check answered", extra={"source": name})
        return jsonify(source=name, ping=True, message="URL check answered; nothing queued"), 200
    signed = preset.verify(inbound, source.options, time.time())
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
    status = 200 if all(outcome.duplicate_of for outcome in outcomes) else 202
    if log.isEnabledFor(logging.INFO):
        # These lines say all gunicorn's access line would (gunicorn.conf.py leaves that one out): one line per delivery.
        request.environ["bridge.logged"] = True
        for outcome in outcomes:
            log.info("delivery %s", "duplicate" if outcome.duplicate_of else "queued" if outcome.matched else "unmatched",
                     extra={"delivery_id": outcome.duplicate_of or outcome.delivery_id, "source": name, "event": outcome.event,
                            "rules": outcome.matched, "jobs": outcome.jobs, "status": status, "remote_addr": request.remote_addr,
                            "seconds": round(time.perf_counter() - started, 4)})
    if len(outcomes) == 1:
        return _json(outcomes[0].to_dict(), status)
    return _json({"source": name, "deliveries": [outcome.to_dict() for outcome in outcomes]}, status)


def _json(data: dict, status: int):
    """Answer JSON as jsonify does, written by orjson: the reply to every accepted webhook."""
    return current_app.response_class(jsontext.dumps(data) + "\n", status=status, mimetype="application/json")


def read_body(environ: dict, limit: int) -> bytes:
    """Return the request body, refusing one over `limit` bytes (413) or one whose chunked encoding is broken (400)."""
    length = environ.get("CONTENT_LENGTH") or ""
    if length:
        if not length.isdigit():
            raise BadRequest("Content-Length is not a number")
        if int(length) > limit:
            raise PayloadTooLarge(f"the body is {int(length)} bytes, over the limit of {limit}")
    elif not environ.get("wsgi.input_terminated"):
        return b""  # neither a length nor a server that ends the stream: reading could wait forever
    # With a Content-Length read exactly that much; chunked, one byte past the limit tells it is over.
    want = int(length) if length else limit + 1
    stream, chunks, size = environ["wsgi.input"], [], 0
    try:
        while size < want:
            chunk = stream.read(min(64 * 1024, want - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except (OSError, ValueError, ParseException) as error:
        # gunicorn decodes chunked bodies as they are read: a broken one surfaces here.
        raise BadRequest(f"the body cannot be read ({type(error).__name__}): send a Content-Length or valid chunked encoding") from None
    if size > limit:
        raise PayloadTooLarge(f"the body is over the limit of {limit} bytes")
    if length and size < want:
        raise BadRequest(f"the body ended after {size} of its {want} bytes")
    return b"".join(chunks)


def refuse(runtime, source: str, error: BridgeError) -> None:
    """Log and count a request on a hook URL answered with an error: the details here, the public reason to the sender."""
    if error.status >= 500:
        log.error("webhook not accepted: %s", error.message, extra={"source": source, "status": error.status})
        return
    log.warning("webhook refused: %s", error.message, extra={"source": source, "status": error.status})
    if isinstance(error, NotFound):
        return  # the name is anyone's guess: no metric label for it
    _keep_refused(runtime, source, error)
    outcome = "unauthorized" if isinstance(error, Unauthorized) else "invalid"
    try:
        metrics.count(runtime.redis, "bridge_deliveries_total", source=source, outcome=outcome)
        if outcome == "unauthorized":
            metrics.count(runtime.redis, "bridge_signature_failures_total", source=source)
    except redis.RedisError:
        pass  # the count is best effort; the refusal stands


def _keep_refused(runtime, name: str, error: BridgeError) -> None:
    """Keep a refused request, redacted and with a hint, for the console and `bridge deliveries --refused`."""
    from .console import refused

    try:
        source = runtime.rules.get().sources.get(name)
    except ConfigErrors:
        return
    if source is None:
        return
    secrets = secrets_of(source.options.get("secret")) + secrets_of(source.options.get("password"))
    refused.keep(runtime.redis, refused.entry(
        name, source.type, source.options, error.status, type(error).__name__, error.message, request.method,
        request.path, request.headers, request.args, g.get("hook_raw"), secrets, runtime.settings.max_body_bytes))


def register_error_handlers(app) -> None:
    """Answer every error as JSON that says why, with Retry-After where a retry can help."""

    @app.errorhandler(BridgeError)
    def bridge_error(error: BridgeError):
        # Public: the reason, never file paths, setting names or driver messages (those are logged).
        response = jsonify(error.to_dict())
        response.status_code = error.status
        if error.retryable:
            # Broken rule files (a 503 too) take a person to fix: senders may as well wait longer.
            response.headers["Retry-After"] = "60" if isinstance(error, ConfigErrors) else "30"
        if error.status in (400, 413):
            # The rest of a refused body may still be on its way; a fresh connection is the safe answer.
            response.headers["Connection"] = "close"
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
