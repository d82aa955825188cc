"""Logs: one JSON line per delivery and per job step, carrying the delivery id, and never a secret."""

import io
import json
import logging

import pytest

from bridge.embedded import DEMO_SECRETS
from bridge.logs import JSONFormatter, TextFormatter, configure_logging
from bridge.sandbox import COURSEBOX_PASSWORD, COURSETOOLKIT_API_KEY
from tests.signing import hr_post, woo_post
from tests.test_pipeline import ORDER, fault

SECRETS = [*DEMO_SECRETS.values(), COURSEBOX_PASSWORD, COURSETOOLKIT_API_KEY]


@pytest.fixture
def json_lines(app):
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream=stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    configure_logging("WARNING", "text", stream=io.StringIO())


def test_a_delivery_and_its_job_steps_are_json_lines_with_the_delivery_id(client, work, json_lines):
    reply = client.post("/hooks/shop", **woo_post(ORDER)).get_json()
    work()
    lines = [line for line in json_lines() if line.get("delivery_id") == reply["delivery_id"]]
    assert [line["message"] for line in lines] == ["delivery queued", "step done", "step done", "job succeeded"]
    assert lines[0]["rules"] == ["enroll-buyer-on-completed-order"] and lines[1]["action"] == "create_user"


def test_no_secret_reaches_any_log_line(client, work, sandbox, json_lines):
    fault(sandbox, status=500, count=1, path="/coursebox/api/")
    client.post("/hooks/shop", **woo_post(ORDER))
    client.post("/hooks/hr", **hr_post({"event": "employee.hired", "id": "s1", "employee": {"email": "s@example.com"}}))
    bad = woo_post(ORDER)
    bad["headers"]["X-WC-Webhook-Signature"] = "forged"
    client.post("/hooks/shop", **bad)
    client.post("/hooks/hr", data=b"{}", content_type="application/json", headers={"X-Bridge-Token": "not-the-token"})
    work()
    text = "\n".join(json.dumps(line) for line in json_lines())
    assert "webhook refused" in text and "will be retried" in text and "job succeeded" in text
    for secret in SECRETS:
        assert secret not in text


def test_formatters_redact_secret_looking_fields_and_keep_others():
    record = logging.LogRecord("bridge", logging.INFO, "", 0, "hello %s", ("x",), None)
    record.delivery_id, record.api_key = "d1", "k3y"
    line = json.loads(JSONFormatter().format(record))
    assert line["message"] == "hello x" and line["delivery_id"] == "d1" and line["api_key"] == "[redacted]"
    assert "delivery_id=d1" in TextFormatter().format(record) and "k3y" not in TextFormatter().format(record)
    with pytest.raises(ValueError):
        configure_logging("INFO", "xml")


def test_rq_error_lines_leave_out_the_job_arguments():
    record = logging.LogRecord("rq.worker", logging.ERROR, "", 0, "job failed", (), None)
    record.arguments, record.job_id = [{"event": {"body": {"email": "someone@example.com"}}}], "j1"
    line = json.loads(JSONFormatter().format(record))
    assert line["job_id"] == "j1" and "arguments" not in line


def test_rqs_per_job_success_lines_give_way_to_the_bridges_own():
    from bridge.worker.upkeep import without_rq_success_lines

    def record(level, message, *args):
        return logging.LogRecord("rq.worker", level, "", 0, message, args, None)

    assert not without_rq_success_lines(record(logging.INFO, "Successfully completed job %s in %ss on worker %s", "j", 1, "w"))
    assert without_rq_success_lines(record(logging.INFO, "*** Listening on %s...", "bridge"))
    assert without_rq_success_lines(record(logging.WARNING, "Worker %s: %s: %s (%s)", "w", "q", "x", "j"))
