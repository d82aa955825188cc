"""The bridge as it is deployed: a real `bridge worker`, Redis stopping, the embedded mode (the Procfile: test_procfile.py)."""

import json
import re
import shlex
import shutil
import signal
import subprocess

import pytest
import redis
import requests
from rq.job import Job, JobStatus

from bridge import create_app
from bridge.embedded import demo_env
from tests.conftest import free_port
from tests.processes import PYTHON, child_env, start, stop, wait_for
from tests.rule_files import EXAMPLE_RULES, REPO
from tests.signing import woo_post

ROOT = REPO
ORDER = {"id": 7, "status": "completed", "line_items": [{"sku": "COURSE-42", "quantity": 1}], "billing": {"email": "ann@example.com", "first_name": "Ann", "last_name": "Ray"}}


def readme_curl() -> tuple[dict, str]:
    """Return the headers and body of the README's quick-start curl line, exactly as written there."""
    text = (ROOT / "README.md").read_text()
    command = text[text.index("curl -s -X POST http://localhost:8000/hooks/shop"):]
    command = command[:command.index("\ncurl -s http://localhost:8000/sandbox/calls")].replace("\\\n", " ")
    words = shlex.split(command)
    headers = dict(words[i + 1].split(": ", 1) for i, word in enumerate(words) if word == "-H")
    return headers, words[words.index("-d") + 1]


@pytest.mark.parametrize("mode", ["threads", "fork"])
def test_real_worker_process_performs_the_job(client, redis_conn, redis_url, lms_env, sandbox_calls, mode):
    reply = client.post("/hooks/shop", **woo_post(ORDER)).get_json()
    env = child_env(REDIS_URL=redis_url, RULES_DIR=EXAMPLE_RULES, BRIDGE_RETRY_INTERVALS="0", BRIDGE_WORKER_MODE=mode, **lms_env)
    worker = start([PYTHON, "-m", "bridge", "worker", "--burst"], env)
    output = stop(worker, timeout=60) if worker.wait(timeout=60) is not None else ""
    assert worker.returncode == 0, output
    assert Job.fetch(reply["jobs"][0], connection=redis_conn).get_status() == JobStatus.FINISHED
    assert any(call["path"].endswith("/enrolUser") for call in sandbox_calls())


def test_worker_with_broken_rules_exits_with_the_error(tmp_path, redis_url, lms_env):
    (tmp_path / "bad.yaml").write_text("rules:\n  - name: x\n    sorce: y\n")
    env = child_env(REDIS_URL=redis_url, RULES_DIR=tmp_path, **lms_env)
    result = subprocess.run([PYTHON, "-m", "bridge", "worker", "--burst"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "bad.yaml:3:5: unknown key 'sorce'" in result.stderr


@pytest.mark.skipif(not shutil.which("redis-server"), reason="needs a redis-server binary to stop and start")
def test_redis_stopped_means_503_and_no_accepted_delivery_is_lost(tmp_path, settings_overrides, lms_env, sandbox, sandbox_calls):
    from rq import Queue, SimpleWorker

    from bridge import jobs

    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"

    def start_redis():
        # Persistence on, as the README asks of a production Redis: what was acknowledged survives a restart.
        process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                    "--appendonly", "yes", "--appendfsync", "always", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
        wait_for(lambda: redis.Redis.from_url(url).ping(), what="redis-server")
        return process

    server = start_redis()
    app = create_app({**settings_overrides, "redis_url": url}, env=lms_env)
    client = app.test_client()
    try:
        accepted = client.post("/hooks/shop", **woo_post(ORDER))
        assert accepted.status_code == 202
        server.terminate()
        server.wait()
        response = client.post("/hooks/shop", **woo_post({**ORDER, "id": 8}))
        assert response.status_code == 503 and response.headers["Retry-After"]
        assert "delivery_id" not in response.get_json()
        server = start_redis()
        # The sender retries the 503 once Redis is back; the delivery acknowledged before the outage is still queued.
        assert client.post("/hooks/shop", **woo_post({**ORDER, "id": 8})).status_code == 202
        connection = redis.Redis.from_url(url)
        assert accepted.get_json()["jobs"][0] in Queue("bridge", connection=connection).get_job_ids()
        jobs.configure(app.extensions["bridge"].settings, env=lms_env)
        SimpleWorker([Queue("bridge", connection=connection)], connection=connection).work(burst=True)
        assert len([c for c in sandbox_calls() if c["path"].endswith("/enrolUser")]) == 2
    finally:
        jobs._context = None
        server.terminate()
        server.wait()


def test_embedded_mode_runs_everything_from_one_command(tmp_path):
    port = free_port()
    env = child_env(RULES_DIR=EXAMPLE_RULES, BRIDGE_DATA_DIR=tmp_path / "data", PORT=port,
                    **{name: None for name in ("COURSEBOX_URL", "COURSETOOLKIT_URL")})
    serve = start([PYTHON, "-m", "bridge", "serve"], env, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: requests.get(f"{base}/healthz", timeout=2).ok, what="the embedded bridge to start")
        headers, body = readme_curl()
        response = requests.post(f"{base}/hooks/shop", headers=headers, data=body.encode(), timeout=10)
        assert response.status_code == 202, response.text
        calls = wait_for(
            lambda: [c for c in requests.get(f"{base}/sandbox/calls", timeout=2).json()["calls"] if c["path"].endswith("/enrolUser")],
            what="the worker to enroll the buyer in the sandbox",
        )
        assert calls[0]["path"] == "/sandbox/coursebox/api/Courses/42/enrolUser"
        # The history commands find the embedded Redis by the data folder, while the bridge runs.
        listed = subprocess.run([PYTHON, "-m", "bridge", "deliveries", "--json"], env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0, listed.stderr
        assert [item["id"] for item in json.loads(listed.stdout)] == [response.json()["delivery_id"]]
        again = requests.post(f"{base}/hooks/shop", headers=headers, data=body.encode(), timeout=10)
        assert again.status_code == 200 and again.json()["duplicate"] is True
        # The console answers with the token made for this data folder, and shows the delivery.
        token = (tmp_path / "data" / "admin-token").read_text().strip()
        assert (tmp_path / "data" / "admin-token").stat().st_mode & 0o077 == 0
        browser = requests.Session()
        form = browser.get(f"{base}/admin/", timeout=10)
        nonce = re.search(r'name="nonce" value="([^"]+)"', form.text).group(1)
        signed_in = browser.post(f"{base}/admin/ui/login", data={"nonce": nonce, "token": token}, timeout=10)
        assert signed_in.ok and response.json()["delivery_id"] in signed_in.text
    finally:
        output = stop(serve, sig=signal.SIGINT)
    assert "EMBEDDED mode" in output and f"curl -s -X POST {base}/hooks/shop" in output
    assert f"console:   {base}/admin/  (sign in with the admin token {token} ," in output
    assert serve.returncode == 0, output
    assert (tmp_path / "data" / "redis.db").exists()


def test_embedded_mode_keeps_who_is_who_across_a_restart_and_other_terminals_find_it(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    env = child_env(RULES_DIR=EXAMPLE_RULES, PORT=port, **{name: None for name in demo_env(base)})
    # Another terminal: no RULES_DIR, none of the demo settings; only the folder the bridge runs in.
    terminal = child_env(RULES_DIR=None, **{name: None for name in demo_env(base)})

    def bridge(*args, cwd=here):
        return subprocess.run([PYTHON, "-m", "bridge", *args], env=terminal, cwd=cwd, capture_output=True, text=True, timeout=60)

    def enrolments(user_id):
        calls = requests.get(f"{base}/sandbox/calls", timeout=2).json()["calls"]
        return [c for c in calls if c["path"].endswith("/enrolUser") and (c["body"] or {}).get("userId") == user_id]

    def order(number):
        post = woo_post({**ORDER, "id": number, "billing": {"email": "jane@example.com", "first_name": "Jane", "last_name": "Doe"}})
        response = requests.post(f"{base}/hooks/shop", data=post["data"], timeout=10,
                                 headers={**post["headers"], "Content-Type": post["content_type"]})
        assert response.status_code == 202, response.text
        return response.json()["delivery_id"]

    serve = start([PYTHON, "-m", "bridge", "serve"], env, cwd=here)
    try:
        wait_for(lambda: requests.get(f"{base}/healthz", timeout=2).ok, what="the embedded bridge to start")
        first = order(1)
        jane = wait_for(lambda: [u["id"] for u in requests.get(f"{base}/sandbox/state", timeout=2).json()["coursebox"]["users"]
                                 if u["email"] == "jane@example.com"], what="jane's account")[0]
        wait_for(lambda: enrolments(jane), what="jane's enrolment")
        checked = bridge("check")
        assert checked.returncode == 0 and checked.stdout.startswith("ok: ") and " file(s)" in checked.stdout, checked.stderr
        assert f"embedded bridge running here: pid {serve.pid}" in checked.stderr and str(EXAMPLE_RULES) in checked.stderr
        replayed = bridge("replay", first)
        assert replayed.returncode == 0, replayed.stderr
        assert json.loads(replayed.stdout)["matched"] == ["enroll-buyer-on-completed-order"]
    finally:
        output = stop(serve, sig=signal.SIGINT)
    assert serve.returncode == 0, output

    stored = bridge("deliveries", "--json")
    assert stored.returncode == 0 and "embedded bridge not running; reading its data" in stored.stderr, stored.stderr
    assert first in [item["id"] for item in json.loads(stored.stdout)]

    serve = start([PYTHON, "-m", "bridge", "serve"], env, cwd=here)
    try:
        wait_for(lambda: requests.get(f"{base}/healthz", timeout=2).ok, what="the embedded bridge to start again")
        order(2)
        # The restarted sandbox still knows jane under the id the bridge remembers: she is enrolled, nobody else.
        wait_for(lambda: enrolments(jane), what="jane's second enrolment")
        state = requests.get(f"{base}/sandbox/state", timeout=2).json()["coursebox"]
        assert [u["email"] for u in state["users"] if u["id"] == jane] == ["jane@example.com"]
        calls = requests.get(f"{base}/sandbox/calls", timeout=2).json()["calls"]
        assert not [c for c in calls if c["path"].endswith("/createAccount")]
    finally:
        output = stop(serve, sig=signal.SIGINT)
    assert serve.returncode == 0, output

    nobody = bridge("deliveries", cwd=elsewhere)
    assert nobody.returncode == 1 and "no embedded bridge here" in nobody.stderr, nobody.stderr
    assert list(elsewhere.iterdir()) == []
