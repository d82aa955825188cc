"""The admin API: find, explain, retry and replay deliveries over JSON, behind a bearer token.

It is the command line's `deliveries`, `show`, `retry` and `replay` for scripts and dashboards; the work is
done by `history` and `recovery`, as for the CLI. `GET /admin/openapi.json` describes it.
"""

from __future__ import annotations

import hmac
import logging
from functools import cache
from importlib.resources import files

import redis
import yaml
from flask import Blueprint, abort, current_app, jsonify, request

from .errors import (
    BadRequest,
    BridgeError,
    ConfigErrors,
    NotFound,
    QueueUnavailable,
    Unauthorized,
)
from .history import STATUSES, Filters, find, parse_time, show
from .recovery import failed_jobs, jobs_of, replay, retry_job

blueprint = Blueprint("admin", __name__, url_prefix="/admin")
log = logging.getLogger("bridge.admin")

LIST_PARAMETERS = ("status", "source", "rule", "connection", "subject", "email", "since", "until", "limit")
BULK_RETRY_KEYS = ("rule", "connection", "since", "until", "all_failed")
DEFAULT_LIMIT, MAX_LIMIT = 50, 10_000


class TokenRejected(Unauthorized):
    """The admin request carries no bearer token, or the wrong one."""

    def __init__(self, message: str, invalid: bool):
        super().__init__(message)
        # RFC 6750: say which scheme is wanted; name the error only when a token was given.
        self.challenge = 'Bearer realm="bridge admin"' + (', error="invalid_token"' if invalid else "")


def _runtime():
    return current_app.extensions["bridge"]


def _redis() -> redis.Redis:
    return _runtime().redis


@cache
def openapi_document() -> dict:
    """Return the OpenAPI document of the admin API, read from the package once."""
    return yaml.safe_load(files("bridge").joinpath("openapi.yaml").read_text(encoding="utf-8"))


@blueprint.before_request
def authorize():
    """Let a request through only with the admin token; the OpenAPI document is public."""
    token = _runtime().settings.admin_token
    if not token:
        abort(404)  # registered by mistake without a token: stay as invisible as when off
    if request.endpoint == "admin.openapi":
        return
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise TokenRejected("send the admin token as `Authorization: Bearer <BRIDGE_ADMIN_TOKEN>`", invalid=False)
    # Constant time, so that the reply's timing does not tell how much of a guess was right.
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        # Someone guessing tokens shows up in the logs.
        log.warning("admin token rejected", extra={"path": request.path, "remote_addr": request.remote_addr})
        raise TokenRejected("the admin token is wrong", invalid=True)


@blueprint.errorhandler(BridgeError)
def bridge_error(error: BridgeError):
    """Answer an admin error as JSON with its status, and the headers that status calls for."""
    if isinstance(error, ConfigErrors):
        response = jsonify(error="ConfigErrors", message="the rule files have errors; run `bridge check`",
                           errors=[item.message for item in error.errors])
        response.status_code = 503
        response.headers["Retry-After"] = "60"
        return response
    response = jsonify(error.to_dict(detailed=True))
    response.status_code = error.status
    if isinstance(error, TokenRejected):
        response.headers["WWW-Authenticate"] = error.challenge
    if error.retryable:
        response.headers["Retry-After"] = "30"
    return response


@blueprint.errorhandler(redis.exceptions.ConnectionError)
@blueprint.errorhandler(redis.exceptions.TimeoutError)
def redis_down(error: redis.exceptions.RedisError):
    """Answer 503 when Redis cannot be reached, as the receiver does."""
    return bridge_error(QueueUnavailable(f"the delivery history (Redis) cannot be reached: {type(error).__name__}"))


@blueprint.get("/openapi.json")
def openapi():
    """Serve the OpenAPI 3.1 document of this API."""
    return jsonify(openapi_document())


@blueprint.get("/deliveries")
def list_deliveries():
    """List deliveries, newest first, narrowed by the query's filters."""
    args = _query_args()
    since, until = _when(args.get("since"), "since"), _when(args.get("until"), "until")
    limit = _limit(args.get("limit"))
    subjects = {args[name].lower() for name in ("subject", "email") if name in args}
    try:
        filters = Filters(args.get("status"), args.get("source"), args.get("rule"), args.get("connection"),
                          next(iter(subjects)) if subjects else None, since, until)
    except ValueError as error:
        raise BadRequest(str(error)) from None
    # Every filter must hold: two different subjects, or an empty time window, match nothing.
    impossible = len(subjects) > 1 or (since is not None and until is not None and since > until)
    found = [] if impossible else find(_redis(), filters, limit=limit)
    return jsonify(deliveries=found, count=len(found))


@blueprint.get("/deliveries/<delivery_id>")
def show_delivery(delivery_id: str):
    """Explain one delivery: status, decisions, timeline, every LMS exchange and each job's status."""
    record = show(_redis(), delivery_id)
    if record is None:
        raise NotFound(f"no delivery {delivery_id!r} (it may have expired)")
    return jsonify(record)


@blueprint.post("/deliveries/<delivery_id>/retry")
def retry_delivery(delivery_id: str):
    """Queue the failed jobs of one delivery (or one job, by its id) again; jobs that did not fail are left alone."""
    connection = _redis()
    return jsonify(_retry(connection, jobs_of(connection, delivery_id)))


@blueprint.post("/deliveries/<delivery_id>/replay")
def replay_delivery(delivery_id: str):
    """Run a stored delivery through the current rules as a new delivery."""
    runtime = _runtime()
    outcome = replay(runtime.redis, runtime.settings, runtime.rules.get(), delivery_id)
    log.info("delivery replayed by the admin API", extra={"delivery_id": outcome.delivery_id, "replay_of": delivery_id,
                                                           "rules": outcome.matched})
    return jsonify(outcome.to_dict()), 202


@blueprint.post("/retry")
def bulk_retry():
    """Queue failed jobs again in bulk, chosen by rule, LMS connection and time of failure."""
    # Any content type: `curl -d '{"rule": "x"}'` sends form-encoded headers with a JSON body.
    body = request.get_json(silent=True, force=True) if request.get_data() else {}
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object such as {\"rule\": \"...\", \"since\": \"2h\"}")
    unknown = sorted(set(body) - set(BULK_RETRY_KEYS))
    if unknown:
        raise BadRequest(f"unknown key(s) {', '.join(map(repr, unknown))}; known: {', '.join(BULK_RETRY_KEYS)}")
    for key in ("rule", "connection", "since", "until"):
        if key in body and (not isinstance(body[key], str) or not body[key]):
            raise BadRequest(f"{key} must be a non-empty string, got {body[key]!r}")
    if "all_failed" in body and not isinstance(body["all_failed"], bool):
        raise BadRequest(f"all_failed must be true or false, got {body['all_failed']!r}")
    if not body.get("all_failed") and not any(key in body for key in ("rule", "connection", "since", "until")):
        raise BadRequest("choose failed jobs with rule, connection, since or until, or send \"all_failed\": true")
    since, until = _when(body.get("since"), "since"), _when(body.get("until"), "until")
    connection = _redis()
    chosen = failed_jobs(connection, _runtime().settings, body.get("rule"), body.get("connection"), since, until)
    return jsonify(_retry(connection, [job.id for job in chosen]))


@blueprint.get("/rules")
def rules_summary():
    """Describe the loaded rule set (without any connection's settings) and the latest load errors."""
    live = _runtime().rules
    try:
        ruleset = live.get()
    except ConfigErrors:
        ruleset = None
    errors = [error.message for error in live.error.errors] if live.error else []
    if ruleset is None:
        return jsonify(loaded=False, version=None, files=[], sources=[], connections=[], rules=[], errors=errors)
    return jsonify(
        loaded=True,
        version=ruleset.version,
        files=list(ruleset.files),
        sources=[{"name": s.name, "type": s.type, "hook": f"/hooks/{s.name}"} for s in ruleset.sources.values()],
        connections=[{"name": c.name, "type": c.type} for c in ruleset.connections.values()],
        rules=[_rule_summary(rule) for rule in ruleset.rules],
        errors=errors,
    )


def _rule_summary(rule) -> dict:
    # Only names: an action's fields are templates and stay in the rule files.
    return {"name": rule.name, "source": rule.source, "events": list(rule.events) if rule.events else None,
            "actions": [{"connection": a["connection"], "action": a["action"]} for a in rule.actions],
            "file": rule.file, "line": rule.line}


def _retry(connection: redis.Redis, job_ids: list[str]) -> dict:
    """Retry jobs one by one and say, for each, whether it was queued again."""
    settings = _runtime().settings
    results = []
    for job_id in job_ids:
        requeued, message = retry_job(connection, settings, job_id)
        results.append({"job": job_id, "requeued": requeued, "message": message})
    requeued = [item["job"] for item in results if item["requeued"]]
    if requeued:
        log.info("jobs retried by the admin API", extra={"jobs": requeued})
    return {"requeued": requeued, "results": results}


def _query_args() -> dict[str, str]:
    """Return the query's filters, refusing unknown, repeated and empty ones (a typo must not widen a search)."""
    unknown = sorted(set(request.args) - set(LIST_PARAMETERS))
    if unknown:
        raise BadRequest(f"unknown parameter(s) {', '.join(map(repr, unknown))}; known: {', '.join(LIST_PARAMETERS)}")
    args = {}
    for name in request.args:
        values = request.args.getlist(name)
        if len(values) > 1:
            raise BadRequest(f"give {name} once, got {len(values)} values")
        if not values[0]:
            raise BadRequest(f"{name} must not be empty")
        args[name] = values[0]
    if "status" in args and args["status"] not in STATUSES:
        raise BadRequest(f"status must be one of {', '.join(STATUSES)}, got {args['status']!r}")
    return args


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}, got {raw!r}")
    return int(raw)


def _when(text: str | None, name: str) -> float | None:
    try:
        return parse_time(text)
    except ValueError as error:
        raise BadRequest(f"{name}: {error}") from None
