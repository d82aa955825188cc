"""The Procfile run as a platform runs it: honcho starts its process types with the app's config, then SIGTERMs them."""

import signal
import subprocess
from pathlib import Path

import requests
from rq import Worker

from tests.conftest import free_port
from tests.processes import PYTHON, child_env, start, stop, wait_for
from tests.rule_files import EXAMPLE_RULES, REPO
from tests.signing import as_requests, woo_post

ORDER = {"id": 4242, "status": "completed", "line_items": [{"sku": "COURSE-42", "quantity": 1}],
         "billing": {"email": "procfile@example.com", "first_name": "Pat", "last_name": "Platform"}}

# honcho's own CLI, waiting as long as a PaaS does (30 s) between SIGTERM and SIGKILL instead of its 5 s.
HONCHO = [PYTHON, "-c", "import sys, honcho.manager; honcho.manager.KILL_WAIT = 30; from honcho.command import main; sys.argv[0] = 'honcho'; main()"]


def config_file(tmp_path, **config) -> str:
    """Write the app's config vars as an env file, as `heroku config` holds them; return its path."""
    path = tmp_path / "config.env"
    path.write_text("".join(f"{name}={value}\n" for name, value in config.items()))
    return str(path)


def release_command() -> str:
    return next(line.split(":", 1)[1].strip() for line in (REPO / "Procfile").read_text().splitlines() if line.startswith("release:"))


def platform_env(**values) -> dict:
    """Return the environment of a dyno: the interpreter the build installed first on PATH (`python`, `gunicorn`)."""
    env = child_env(**values)
    env["PATH"] = f"{Path(PYTHON).parent}:{env.get('PATH', '')}"
    return env


def honcho(tmp_path, *args, config: dict) -> list[str]:
    return [*HONCHO, *args[:1], "-f", str(REPO / "Procfile"), "-d", str(REPO), "-e", config_file(tmp_path, **config), *args[1:]]


def test_procfile_release_web_and_worker_deliver_an_order_then_stop_on_sigterm(tmp_path, redis_url, redis_conn, lms_env, sandbox_calls):
    config = {"REDIS_URL": redis_url, "RULES_DIR": EXAMPLE_RULES, "BRIDGE_RETRY_INTERVALS": "0", "WEB_CONCURRENCY": 1, **lms_env}
    env = platform_env(**{name: None for name in lms_env})  # the app's settings come from its config only

    release = subprocess.run([*honcho(tmp_path, "run", config=config), *release_command().split()], env=env, cwd=REPO,
                             capture_output=True, text=True, timeout=120)
    assert release.returncode == 0, release.stdout + release.stderr
    assert release.stdout.startswith("ok: ") and " file(s)" in release.stdout

    port = free_port()
    platform = start(honcho(tmp_path, "start", "-p", str(port), "web", "worker", config=config), env, cwd=REPO)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: requests.get(f"{base}/readyz", timeout=2).ok, what="the web process to be ready with a worker")
        response = requests.post(f"{base}/hooks/shop", timeout=10, **as_requests(woo_post(ORDER, secret=lms_env["WOOCOMMERCE_SECRET"])))
        assert response.status_code == 202, response.text
        enrolled = wait_for(lambda: [call for call in sandbox_calls() if call["path"].endswith("/Courses/42/enrolUser")],
                            what="the worker process to enroll the buyer")
        assert len(enrolled) == 1
    finally:
        output = stop(platform, sig=signal.SIGTERM, timeout=90)
    # Each process type stopped by itself within the grace period (the shells honcho runs them in die of the
    # SIGTERM itself, so their exit codes say nothing): no SIGKILL was needed, gunicorn's master shut down, and the
    # worker left RQ's registry as a warm shutdown does (a killed worker stays there until its heartbeat lapses).
    assert "SIGTERM received" in output and "web.1 stopped" in output and "worker.1 stopped" in output, output
    assert "SIGKILL" not in output and "Traceback" not in output, output
    assert "Shutting down: Master" in output, output
    assert Worker.all(connection=redis_conn) == []


def test_release_stops_a_deploy_with_broken_rules_and_passes_an_empty_folder(tmp_path, lms_env):
    broken, empty = tmp_path / "broken", tmp_path / "empty"
    broken.mkdir()
    empty.mkdir()
    (broken / "shop.yaml").write_text("sources:\n  shop:\n    type: woocommerce\n    secret: ${SHOP_SECRET}\n")
    for folder, code, says in ((broken, 1, "environment variable SHOP_SECRET is not set"), (empty, 0, "no rule files in")):
        result = subprocess.run([*honcho(tmp_path, "run", config={"RULES_DIR": folder}), *release_command().split()],
                                env=platform_env(), cwd=REPO, capture_output=True, text=True, timeout=120)
        assert result.returncode == code and says in result.stdout + result.stderr, result.stdout + result.stderr
