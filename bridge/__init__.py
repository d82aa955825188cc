"""bridge: receive shop, CRM and HR webhooks and turn them into LMS actions.

Nothing is imported here at module level: RQ work horses import `bridge.jobs`, and must not pay for Flask.
"""

from __future__ import annotations

__version__ = "0.1.0"


def create_app(config: dict | None = None, env: dict | None = None):
    """Create the web application: the receiver, health checks and, if asked, the admin API and console and the LMS sandbox."""
    from flask import Flask

    from . import health, webhooks
    from .logs import configure_logging
    from .runtime import Runtime
    from .settings import Settings

    settings = Settings.from_env(env).with_overrides(config or {})
    configure_logging(settings.log_level, settings.log_format)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    app.extensions["bridge"] = Runtime(settings, env=env)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(webhooks.blueprint)
    if settings.admin_token:
        from .admin import blueprint as admin_blueprint
        from .console import create_blueprint as create_console

        app.register_blueprint(admin_blueprint)
        app.register_blueprint(create_console())
    if settings.sandbox:
        from .sandbox import create_sandbox_blueprint
        from .sandbox_state import SandboxState

        app.register_blueprint(create_sandbox_blueprint(SandboxState(path=settings.sandbox_state)), url_prefix="/sandbox")
    webhooks.register_error_handlers(app)
    return app
