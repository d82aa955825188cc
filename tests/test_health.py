"""/healthz and /readyz, each readiness check failing on its own, and both under gunicorn with its config file."""

import json
import shutil
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests
from rq import Queue, Worker
from rq.registry import ScheduledJobRegistry
from rq.utils import utcformat

from bridge import create_app
from bridge.embedded import DEMO_SECRETS
from tests.conftest import free_port
from tests.processes import PYTHON, child_env, descendants, start, stop, wait_for
from tests.rule_files import EXAMPLE_RULES, REPO, wait_reloaded
from tests.signing import sign_woocommerce

ROOT = REPO


@pytest.fixture
def live_worker(app, redis_conn):
    """Register an RQ worker on the bridge's queue, as `bridge worker` does at start; return it."""
    queue = Queue(app.extensions["bridge"].settings.queue_name, connection=redis_conn)
    worker = Worker([queue], connection=redis_conn)
    worker.register_birth()
    yield worker
    worker.register_death()


def readyz(client):
    response = client.get("/readyz")
    return response.status_code, response.get_json()


def test_healthz_says_the_process_is_up(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_ready_when_redis_rules_and_a_worker_are_fine(client, live_worker):
    status, body = readyz(client)
    assert status == 200 and body["status"] == "ready"
    assert body["checks"]["redis"] == {"ok": True}
    assert body["checks"]["rules"]["ok"] and body["checks"]["rules"]["version"]
    assert body["checks"]["worker"]["ok"] and body["checks"]["worker"]["workers"] == 1


def test_not_ready_without_a_worker(client, redis_conn):
    status, body = readyz(client)
    assert status == 503 and body["status"] == "not ready"
    assert body["checks"]["worker"] == {"ok": False, "workers": 0, "reason": "no worker is registered on queue 'bridge'"}
    assert body["checks"]["redis"]["ok"] and body["checks"]["rules"]["ok"]


def test_not_ready_when_the_latest_worker_heartbeat_is_old(client, live_worker, redis_conn):
    redis_conn.hset(live_worker.key, "last_heartbeat", utcformat(datetime.now(timezone.utc) - timedelta(minutes=30)))
    status, body = readyz(client)
    assert status == 503
    worker = body["checks"]["worker"]
    assert worker["ok"] is False and worker["last_heartbeat_seconds"] >= 1800
    assert "over the 120 s allowed" in worker["reason"]


def test_a_worker_of_another_queue_does_not_count(client, redis_conn):
    other = Worker([Queue("someone-else", connection=redis_conn)], connection=redis_conn)
    other.register_birth()
    assert readyz(client)[1]["checks"]["worker"]["workers"] == 0
    other.register_death()


def test_the_worker_check_can_be_turned_off(settings_overrides, lms_env, redis_conn):
    client = create_app({**settings_overrides, "ready_worker_seconds": 0}, env=lms_env).test_client()
    status, body = readyz(client)
    assert status == 200 and body["checks"]["worker"]["ok"] and "not checked" in body["checks"]["worker"]["reason"]


def test_not_ready_when_redis_does_not_answer_and_the_password_stays_out(settings_overrides, lms_env):
    url = f"redis://:readyz-secret-password@127.0.0.1:{free_port()}/0"
    client = create_app({**settings_overrides, "redis_url": url}, env=lms_env).test_client()
    status, body = readyz(client)
    assert status == 503
    assert body["checks"]["redis"]["ok"] is False and body["checks"]["redis"]["reason"].startswith("Redis does not answer: ConnectionError")
    assert body["checks"]["worker"] == {"ok": False, "reason": "unknown: Redis does not answer"}
    assert body["checks"]["rules"]["ok"]
    assert "readyz-secret-password" not in client.get("/readyz").get_data(as_text=True)


def test_not_ready_when_the_rules_never_loaded(settings_overrides, lms_env, redis_conn, tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "bad.yaml").write_text("rules:\n  - name: x\n    sorce: y\n")
    client = create_app({**settings_overrides, "rules_dir": tmp_path / "rules"}, env=lms_env).test_client()
    status, body = readyz(client)
    assert status == 503
    rules = body["checks"]["rules"]
    assert rules["ok"] is False and "no good set was ever loaded" in rules["reason"]
    # Public: a count and what to run, never the file names or keys.
    assert rules["errors"] >= 1 and "bridge check" in rules["reason"]
    assert "bad.yaml" not in client.get("/readyz").get_data(as_text=True)


def test_not_ready_when_a_rule_change_breaks_even_though_the_last_good_set_runs(settings_overrides, lms_env, redis_conn, tmp_path, live_worker):
    rules = tmp_path / "rules"
    shutil.copytree(EXAMPLE_RULES, rules)
    client = create_app({**settings_overrides, "rules_dir": rules}, env=lms_env).test_client()
    status, body = readyz(client)
    assert status == 200
    version = body["checks"]["rules"]["version"]
    (rules / "broken.yaml").write_text("rules: [\n")
    wait_reloaded(client.application.extensions["bridge"].rules)
    status, body = readyz(client)
    assert status == 503
    assert body["checks"]["rules"]["ok"] is False and body["checks"]["rules"]["version"] == version
    assert f"still running version {version}" in body["checks"]["rules"]["reason"]
    assert body["checks"]["rules"]["errors"] == 1 and "broken.yaml" not in json.dumps(body)
    (rules / "broken.yaml").unlink()
    wait_reloaded(client.application.extensions["bridge"].rules)
    assert readyz(client)[0] == 200


# --- gunicorn.conf.py -----------------------------------------------------------------------------------------

def gunicorn_config(**env) -> dict[str, str]:
    """Return the settings gunicorn resolves from the repository root with this environment."""
    result = subprocess.run([PYTHON, "-m", "gunicorn", "--print-config", "bridge:create_app()"], cwd=ROOT,
                            env=child_env(**env), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return {name.strip(): value.strip() for name, _, value in (line.partition("=") for line in result.stdout.splitlines()) if _}


def test_gunicorn_reads_its_config_file_from_the_working_directory_by_itself():
    config = gunicorn_config(PORT=None, WEB_CONCURRENCY=None)
    assert config["config"] == "./gunicorn.conf.py"
    assert (config["bind"], config["workers"], config["threads"], config["worker_class"]) == ("['0.0.0.0:8000']", "2", "4", "gthread")
    assert (config["timeout"], config["graceful_timeout"], config["accesslog"], config["errorlog"]) == ("30", "25", "-", "-")
    assert "%(U)s" in config["access_log_format"] and "%(r)s" not in config["access_log_format"]  # no query strings in logs


def test_gunicorn_settings_come_from_the_environment():
    config = gunicorn_config(PORT=5123, WEB_CONCURRENCY=5, GUNICORN_THREADS=2, GUNICORN_TIMEOUT=60,
                             GUNICORN_GRACEFUL_TIMEOUT=10, GUNICORN_KEEPALIVE=2, FORWARDED_ALLOW_IPS="10.0.0.1")
    assert config["bind"] == "['0.0.0.0:5123']" and config["workers"] == "5" and config["threads"] == "2"
    assert (config["timeout"], config["graceful_timeout"], config["keepalive"]) == ("60", "10", "2")
    assert config["forwarded_allow_ips"] == "['10.0.0.1']"


def test_gunicorn_says_which_setting_is_wrong():
    result = subprocess.run([PYTHON, "-m", "gunicorn", "--check-config", "bridge:create_app()"], cwd=ROOT,
                            env=child_env(GUNICORN_TIMEOUT="soon"), capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "GUNICORN_TIMEOUT must be a whole number, got 'soon'" in result.stdout + result.stderr


def test_readyz_answers_under_gunicorn_with_two_workers_and_a_real_worker(redis_url, redis_conn, lms_env):
    port = free_port()
    env = child_env(REDIS_URL=redis_url, RULES_DIR=EXAMPLE_RULES, PORT=port, WEB_CONCURRENCY=2, **lms_env)
    web = start([PYTHON, "-m", "gunicorn", "bridge:create_app()"], env, cwd=ROOT)
    worker = start([PYTHON, "-m", "bridge", "worker"], env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: requests.get(f"{base}/healthz", timeout=2).ok, what="gunicorn to answer /healthz")
        assert wait_for(lambda: len(descendants(web.pid)) >= 2, what="two gunicorn workers") and len(descendants(web.pid)) == 2
        wait_for(lambda: requests.get(f"{base}/readyz", timeout=5).json()["status"] == "ready", what="/readyz to say ready")
        replies = [requests.get(f"{base}/readyz", timeout=5) for _ in range(8)]
        assert {reply.status_code for reply in replies} == {200}
        assert replies[0].json()["checks"]["worker"]["workers"] == 1
        # Deliveries counted by either gunicorn worker show up in every scrape, whichever worker answers it.
        for number in range(4):
            posted = requests.post(f"{base}/hooks/shop", data=json.dumps({"id": number, "status": "processing"}).encode(),
                                   headers={**sign_woocommerce(json.dumps({"id": number, "status": "processing"}).encode(),
                                                               DEMO_SECRETS["WOOCOMMERCE_SECRET"]), "Content-Type": "application/json"},
                                   timeout=10)
            assert posted.status_code == 202
        scrapes = [requests.get(f"{base}/metrics", timeout=5).text for _ in range(6)]
        assert all('bridge_deliveries_total{outcome="unmatched",source="shop"} 4.0' in text for text in scrapes)
        assert all("bridge_workers 1.0" in text for text in scrapes)
    finally:
        worker_output = stop(worker)
        output = stop(web)
    assert "Traceback" not in output and "Traceback" not in worker_output, output + worker_output
    assert '"GET /readyz HTTP/1.1" 200' in output  # the access log, on stdout
    assert "Booting worker" in output and output.count("Booting worker") == 2


def test_jobs_in_each_state_are_counted_and_a_stuck_one_fails_readiness(client, live_worker, redis_conn):
    queue = Queue("bridge", connection=redis_conn)
    queue.enqueue_in(timedelta(hours=1), "bridge.jobs.run_rule", {})
    status, body = readyz(client)
    assert status == 200 and body["checks"]["jobs"]["ok"]
    assert body["checks"]["jobs"]["counts"]["scheduled"] == 1
    # A retry due an hour ago that nobody queued: no scheduler is running.
    overdue = queue.enqueue_in(timedelta(seconds=1), "bridge.jobs.run_rule", {})
    redis_conn.zadd(ScheduledJobRegistry("bridge", connection=redis_conn).key, {overdue.id: time.time() - 3600})
    status, body = readyz(client)
    assert status == 503 and body["checks"]["jobs"]["ok"] is False
    assert "a scheduled job is 3600 s past its due time (no scheduler running?), over the 300 s allowed" in body["checks"]["jobs"]["reason"]
    assert body["checks"]["jobs"]["counts"]["scheduled"] == 2
