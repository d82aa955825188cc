"""bridge: receive shop, CRM and HR webhooks and turn them into LMS actions."""

from __future__ import annotations

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from .errors import BridgeError, ConfigErrors
from .settings import Settings


def create_app(config: dict | None = None, env: dict | None = None) -> Flask:
    """Create the web application: the receiver, health checks and, if asked, the LMS sandbox."""
    from . import health, webhooks
    from .runtime import Runtime

    settings = Settings.from_env(env).with_overrides(config or {})
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    app.extensions["bridge"] = Runtime(settings, env=env)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(webhooks.blueprint)
    if settings.sandbox:
        from .sandbox import create_sandbox_blueprint

        app.register_blueprint(create_sandbox_blueprint(), url_prefix="/sandbox")
    _register_error_handlers(app)
    return app


def _register_error_handlers(app: Flask) -> None:
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
