"""Console sign-in: the admin token exchanged for a session cookie kept in Redis, and CSRF on every form that changes something."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from urllib.parse import urlsplit

import redis
from flask import Blueprint, abort, current_app, g, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

blueprint = Blueprint("console", __name__, url_prefix="/admin", template_folder="templates",
                      static_folder="static", static_url_path="/ui/static")
log = logging.getLogger("bridge.console")

SESSION_COOKIE = "bridge_console"
LOGIN_COOKIE = "bridge_console_login"
SESSION_KEY = "bridge:console:session:{}"
# Pages anyone may open: the sign-in form and the console's own CSS and JavaScript.
PUBLIC = {"console.login", "console.static", "console.home"}


def runtime():
    """Return the running bridge's settings, rules and Redis client."""
    return current_app.extensions["bridge"]


def _key(session_id: str) -> str:
    # Only a hash of the cookie is stored, so a copy of Redis does not hand out sessions.
    return SESSION_KEY.format(hashlib.sha256(session_id.encode()).hexdigest())


def _session() -> dict | None:
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id or len(session_id) > 100:
        return None
    raw = runtime().redis.get(_key(session_id))
    return json.loads(raw) if raw else None


def _cookie(response, name: str, value: str, max_age: int, path: str = "/admin") -> None:
    # Secure whenever the request came over https (gunicorn reads X-Forwarded-Proto from the PaaS router).
    response.set_cookie(name, value, max_age=max_age, path=path, httponly=True, samesite="Strict",
                        secure=request.is_secure)


@blueprint.before_request
def authorize():
    """Send a visitor without a session to the sign-in form; refuse a change without the session's CSRF token."""
    if not runtime().settings.admin_token:
        abort(404)
    if request.endpoint in PUBLIC:
        return None
    session = _session()
    if session is None:
        if request.method == "GET":
            return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
        abort(403, "sign in first")
    g.console_session = session
    if request.method == "POST":
        given = request.form.get("csrf", "")
        if not hmac.compare_digest(given.encode(), session["csrf"].encode()):
            abort(403, "the form is stale or came from another site; reload the page and try again")
    return None


@blueprint.after_request
def page_headers(response):
    """Keep console pages out of caches and frames, and let them run only the console's own script."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Content-Security-Policy"] = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                                                   "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    return response


@blueprint.errorhandler(HTTPException)
def http_error(error: HTTPException):
    """Answer a console error as a page that says why."""
    return render_template("error.html", status=error.code, title=error.name, message=error.description), error.code


@blueprint.errorhandler(redis.exceptions.ConnectionError)
@blueprint.errorhandler(redis.exceptions.TimeoutError)
def redis_down(error: redis.exceptions.RedisError):
    """Answer 503 when Redis, which holds everything the console shows, does not answer."""
    message = f"the bridge's Redis does not answer ({type(error).__name__}); the console shows nothing without it"
    return render_template("error.html", status=503, title="Service Unavailable", message=message), 503


@blueprint.app_template_global()
def csrf_token() -> str:
    """Return the signed-in session's CSRF token, for the hidden field of every form."""
    session = g.get("console_session")
    return session["csrf"] if session else ""


def notify(*messages: str) -> None:
    """Keep messages for the next page this session sees (what a retry or replay did)."""
    key = _key(request.cookies[SESSION_COOKIE]) + ":notices"
    with runtime().redis.pipeline() as pipe:
        pipe.rpush(key, *messages)
        pipe.expire(key, 300)
        pipe.execute()


@blueprint.app_template_global()
def notices() -> list[str]:
    """Return, once, the messages kept for this session."""
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id or g.get("console_session") is None:
        return []
    key = _key(session_id) + ":notices"
    with runtime().redis.pipeline() as pipe:
        pipe.lrange(key, 0, -1)
        pipe.delete(key)
        found, _ = pipe.execute()
    return [item.decode() for item in found]


@blueprint.get("/")
def home():
    """Send /admin/ to the console's first page."""
    return redirect(url_for("console.deliveries"))


@blueprint.route("/ui/login", methods=["GET", "POST"])
def login():
    """Show the sign-in form, or exchange the admin token for a session cookie."""
    target = _safe_next(request.values.get("next"))
    if request.method == "GET":
        nonce = secrets.token_urlsafe(24)
        response = current_app.make_response(render_template("login.html", nonce=nonce, next=target, error=None))
        _cookie(response, LOGIN_COOKIE, nonce, 600, path=url_for("console.login"))
        return response
    # A double-submitted nonce: another site cannot make a browser sign in to an attacker's session.
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not nonce or not hmac.compare_digest(nonce.encode(), request.form.get("nonce", "").encode()):
        return _login_failed("the sign-in form expired; try again", target)
    given = request.form.get("token", "").strip()
    if not hmac.compare_digest(given.encode(), runtime().settings.admin_token.encode()):
        log.warning("console sign-in refused", extra={"remote_addr": request.remote_addr})
        return _login_failed("that is not the admin token (BRIDGE_ADMIN_TOKEN)", target)
    seconds = runtime().settings.admin_session_seconds
    session_id = secrets.token_urlsafe(32)
    runtime().redis.set(_key(session_id), json.dumps({"csrf": secrets.token_urlsafe(32), "since": time.time()}), ex=seconds)
    log.info("console sign-in", extra={"remote_addr": request.remote_addr})
    response = redirect(target)
    _cookie(response, SESSION_COOKIE, session_id, seconds)
    response.delete_cookie(LOGIN_COOKIE, path=url_for("console.login"))
    return response


def _login_failed(message: str, target: str):
    nonce = secrets.token_urlsafe(24)
    response = current_app.make_response((render_template("login.html", nonce=nonce, next=target, error=message), 401))
    _cookie(response, LOGIN_COOKIE, nonce, 600, path=url_for("console.login"))
    return response


@blueprint.post("/ui/logout")
def logout():
    """End the session here and in Redis, so that a copied cookie stops working too."""
    runtime().redis.delete(_key(request.cookies[SESSION_COOKIE]))
    response = redirect(url_for("console.login"))
    response.delete_cookie(SESSION_COOKIE, path="/admin", httponly=True, samesite="Strict", secure=request.is_secure)
    return response


def _safe_next(target: str | None) -> str:
    """Return where to go after signing in: a console path of this site, never another site."""
    default = url_for("console.deliveries")
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/admin/ui/") or "\\" in target:
        return default
    return target
