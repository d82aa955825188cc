"""What the benchmarks compare the bridge with: the same servers and queue, none of the bridge's work.

    create_app()   a bare Flask app for gunicorn: POST /hooks/<name> does one Redis RPUSH of the raw
                   body; POST /enqueue enqueues `call_lms` with RQ; GET /healthz
    call_lms(url)  an RQ job that makes one LMS call to the sandbox, on a new HTTP session as a
                   bridge job does
    python bench/baseline.py worker REDIS_URL QUEUE
                   a stock RQ worker (fork per job, with the scheduler) like `bridge worker`

Nothing is imported at module level but the standard library: a work horse imports this module.
"""

from __future__ import annotations

import os
import sys

BARE_LIST = "bench:bare"
QUEUE = "bench-baseline"
# A Course Toolkit read of the sandbox's seed user: one recorded LMS call that changes nothing.
TOOLKIT_GETUSER = {"api-user": "sandbox", "api-key": "sandbox-key", "api-action": "getuser", "userid": "1001"}


def create_app():
    """Create the bare app, on the Redis of $REDIS_URL with the bridge's own client settings."""
    from flask import Flask, jsonify, request
    from rq import Queue

    from bridge.redis_client import connect

    app = Flask(__name__)
    connection = connect(os.environ["REDIS_URL"])
    queue = Queue(os.environ.get("BENCH_QUEUE", QUEUE), connection=connection)

    @app.post("/hooks/<name>")
    def push(name: str):
        connection.rpush(BARE_LIST, request.get_data())
        return jsonify(source=name, queued=True), 202

    @app.post("/enqueue")
    def enqueue():
        job = queue.enqueue(call_lms, request.get_json()["url"])
        return jsonify(jobs=[job.id]), 202

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    return app


def call_lms(url: str) -> int:
    """Make one LMS call to the sandbox and return its HTTP status."""
    import requests

    with requests.Session() as session:
        response = session.post(url, data=TOOLKIT_GETUSER, timeout=(5, 30))
        response.raise_for_status()
        return response.status_code


def run_worker(url: str, queue_name: str) -> None:
    """Run a stock RQ worker with the settings `bridge worker` uses."""
    import requests  # noqa: F401  (loaded before the fork, as bridge.jobs loads it in `bridge worker`)
    from rq import Queue, Worker

    from bridge.redis_client import connect
    from bridge.worker import JOB_MONITORING_INTERVAL, MAINTENANCE_INTERVAL

    connection = connect(url)
    worker = Worker([Queue(queue_name, connection=connection)], connection=connection,
                    job_monitoring_interval=JOB_MONITORING_INTERVAL, maintenance_interval=MAINTENANCE_INTERVAL)
    worker.work(with_scheduler=True, logging_level="INFO")


if __name__ == "__main__":
    if sys.argv[1:2] != ["worker"] or len(sys.argv) != 4:
        sys.exit("usage: python bench/baseline.py worker REDIS_URL QUEUE")
    # Under its own name, so that work horses find `baseline.call_lms` already imported, as bridge.jobs is.
    from baseline import run_worker as run

    run(sys.argv[2], sys.argv[3])
