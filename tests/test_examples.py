"""The shipped examples: one per sender, each sample payload accepted as its sender signs it, the lookups end to end."""

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from rq.job import Job, JobStatus

from bridge.cli import cli
from bridge.embedded import DEMO_SECRETS
from bridge.rules import load_rules
from bridge.ruletests import explain, sample_events
from bridge.sources import PRESETS
from tests.rule_files import EXAMPLE_RULES, REPO
from tests.signing import FORM, Request, signed_request, thrivecart_body

PAYLOADS = REPO / "examples" / "payloads"

# payload file -> (source, headers the sender adds, the rules it must match)
SAMPLES = {
    "woocommerce-order-updated.json": ("shop", {"X-WC-Webhook-Topic": "order.updated"}, ["enroll-buyer-on-completed-order"]),
    "shopify-orders-paid.json": ("shopify", {"X-Shopify-Topic": "orders/paid"}, ["shopify-paid-order-enrolls-the-customer"]),
    "stripe-checkout-session-completed.json": ("stripe", {}, ["stripe-checkout-enrolls-the-customer"]),
    "hubspot-workflow-deal-won.json": ("hubspot", {}, ["won-deal-invites-the-contact"]),
    "hubspot-deal-propertychange.json": ("hubspot_app", {}, ["hubspot-won-deal-enrolls-its-contact"]),
    "bamboohr-field-based.json": ("bamboohr", {}, ["bamboohr-hire-creates-and-invites-to-onboarding"]),
    "bamboohr-employee-updated.json": ("bamboohr_events", {}, ["bamboohr-event-hire-creates-and-invites",
                                                               "bamboohr-event-leave-deactivates-the-account"]),
    "github-marketplace-purchase.json": ("github", {"X-GitHub-Event": "marketplace_purchase"},
                                         ["github-marketplace-purchase-creates-the-billing-contact"]),
    "standard-webhooks-user-created.json": ("signups", {}, ["signup-creates-a-course-toolkit-user"]),
    "typeform-form-response.json": ("typeform", {}, ["typeform-signup-invites-to-the-chosen-course"]),
    "thrivecart-order-success.txt": ("thrivecart", {}, ["thrivecart-order-enrolls-the-customer"]),
    "gumroad-sale.txt": ("gumroad", {}, ["gumroad-sale-enrolls-the-buyer"]),
    "generic-hr-hired.json": ("hr", {}, ["create-account-on-hire"]),
}


@pytest.fixture(scope="module")
def ruleset():
    return load_rules(EXAMPLE_RULES, require_env=False)


def test_every_sender_has_an_example_with_tests_and_a_sample_payload(ruleset):
    types = {ruleset.sources[source].type for source, _, _ in SAMPLES.values()}
    assert types == set(PRESETS), f"no sample payload for {set(PRESETS) - types}"
    tested = {test.spec["source"] for test in ruleset.tests}
    assert set(ruleset.sources) <= tested, f"sources without tests: {set(ruleset.sources) - tested}"
    assert sorted(path.name for path in PAYLOADS.iterdir()) == sorted(SAMPLES)
    for path in Path(EXAMPLE_RULES).glob("*.yaml"):
        if path.name != "connections.yaml":
            text = path.read_text()
            assert "# Sample payload: examples/payloads/" in text and "docs/senders/" in text, path


def test_the_examples_have_no_warnings(ruleset):
    assert [warning.line for warning in ruleset.warnings] == []


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_each_sample_payload_matches_its_rules_and_renders(ruleset, name):
    source, headers, rules = SAMPLES[name]
    raw = (PAYLOADS / name).read_bytes()
    content_type = "application/json" if name.endswith(".json") else "application/x-www-form-urlencoded"
    explanations = [explain(ruleset, event) for event in sample_events(ruleset, source, raw=raw, headers=headers,
                                                                       content_type=content_type)]
    assert [d.rule.name for e in explanations for d in e.decisions if d.matched] == rules
    assert [run.error for e in explanations for run in e.runs if run.error] == []
    assert all(record.params for e in explanations for run in e.runs for record in run.run.records if not record.skipped)


def signed(source_type: str, options: dict, name: str, url: str):
    """Return a request as the sender would send the sample payload, signed with the demo secret."""
    raw = (PAYLOADS / name).read_bytes()
    options = {key: value.replace("${", "").rstrip("}") if isinstance(value, str) else value for key, value in options.items()}
    secret_name = options.get("secret") or ""
    options["secret"] = DEMO_SECRETS[secret_name]
    if source_type == "thrivecart":  # the secret word is a field of the form itself
        return Request(url, {}, raw + b"&" + thrivecart_body({}, options["secret"]), content_type=FORM)
    return signed_request(source_type, options, raw, url=url, now=int(time.time()))


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_each_sample_payload_signed_by_its_sender_is_accepted(client, ruleset, name):
    source, headers, rules = SAMPLES[name]
    declared = ruleset.sources[source]
    raw_options = {"type": declared.type, **json.loads(json.dumps(_raw_options(source)))}
    request = signed(declared.type, raw_options, name, f"http://localhost/hooks/{source}")
    path = request.url.removeprefix("http://localhost")
    reply = client.post(path, data=request.raw, headers={**request.headers, **headers}, content_type=request.content_type)
    assert reply.status_code == 202, reply.get_json()
    body = reply.get_json()
    matched = body.get("matched") or [rule for item in body.get("deliveries", []) for rule in item.get("matched", [])]
    assert matched == rules, body


def _raw_options(source: str) -> dict:
    """Return a source block as written in the example files (with ${VARIABLES} unexpanded)."""
    import yaml

    for path in Path(EXAMPLE_RULES).glob("*.yaml"):
        block = (yaml.safe_load(path.read_text()) or {}).get("sources", {}).get(source)
        if block:
            return {key: value for key, value in block.items() if key != "type"}
    raise AssertionError(f"no source {source}")


def hubspot_post(body, url="http://localhost/hooks/hubspot_app"):
    request = signed_request("hubspot", {"secret": DEMO_SECRETS["HUBSPOT_CLIENT_SECRET"]}, json.dumps(body).encode(),
                             url=url, now=int(time.time()))
    return {"data": request.raw, "headers": request.headers, "content_type": "application/json"}


def bamboohr_post(body):
    request = signed_request("bamboohr", {"secret": DEMO_SECRETS["BAMBOOHR_EVENTS_SECRET"]}, json.dumps(body).encode(),
                             now=int(time.time()))
    return {"data": request.raw, "headers": request.headers, "content_type": "application/json"}


def test_a_won_deal_reaches_coursebox_through_the_hubspot_lookups(client, work, sandbox_calls, redis_conn, redis_url, lms_env):
    events = json.loads((PAYLOADS / "hubspot-deal-propertychange.json").read_text())
    reply = client.post("/hooks/hubspot_app", **hubspot_post(events)).get_json()
    assert reply["matched"] == ["hubspot-won-deal-enrolls-its-contact"], reply
    work()
    job = Job.fetch(reply["jobs"][0], connection=redis_conn)
    assert job.get_status() == JobStatus.FINISHED, job.latest_result().exc_string if job.latest_result() else job
    calls = [(call["method"], call["path"], call["query"]) for call in sandbox_calls()]
    assert calls[:2] == [
        ("GET", "/sandbox/hubspot/crm/v3/objects/deals/9001", {"properties": "dealname,course_id", "associations": "contacts"}),
        ("GET", "/sandbox/hubspot/crm/v3/objects/contacts/201", {"properties": "email,firstname,lastname"}),
    ]
    assert [path for _, path, _ in calls[2:]] == ["/sandbox/coursebox/auth/login", "/sandbox/coursebox/api/wineusers/createAccount",
                                                  "/sandbox/coursebox/api/Courses/13/enrolUser"]
    created = [call for call in sandbox_calls() if call["path"].endswith("createAccount")][0]
    assert created["body"]["data"]["user"]["email"] == "olu.ade@acme.example"
    shown = CliRunner().invoke(cli, ["show", reply["delivery_id"], "--json"], env={**lms_env, "REDIS_URL": redis_url})
    attempts = json.loads(shown.output)["attempts"]
    lookups = [attempt for attempt in attempts if attempt["connection"] == "hubspot_api"]
    assert [attempt["status"] for attempt in lookups] == [200, 200]
    assert lookups[1]["reply"]["properties"]["email"] == "olu.ade@acme.example"
    assert "sandbox-hubspot-token" not in shown.output


def test_a_deal_without_a_contact_fails_for_good_saying_what_the_deal_holds(client, work, redis_conn):
    events = [{"eventId": 77, "subscriptionType": "deal.propertyChange", "objectId": 9002, "propertyName": "dealstage",
               "propertyValue": "closedwon", "occurredAt": 1764001234567}]
    reply = client.post("/hooks/hubspot_app", **hubspot_post(events)).get_json()
    work()
    job = Job.fetch(reply["jobs"][0], connection=redis_conn)
    assert job.get_status() == JobStatus.FAILED
    assert "steps.deal.associations is missing; steps.deal has: archived, createdAt, id, properties, updatedAt" \
        in job.latest_result().exc_string


def test_an_unknown_deal_is_not_found_and_not_retried(client, work, redis_conn, sandbox_calls):
    events = [{"eventId": 78, "subscriptionType": "deal.propertyChange", "objectId": 404404, "propertyName": "dealstage",
               "propertyValue": "closedwon"}]
    reply = client.post("/hooks/hubspot_app", **hubspot_post(events)).get_json()
    work()
    job = Job.fetch(reply["jobs"][0], connection=redis_conn)
    assert job.get_status() == JobStatus.FAILED and "LMSNotFound" in job.latest_result().exc_string
    assert len(sandbox_calls()) == 1  # a 404 is permanent: asked once


def test_a_lookup_that_fails_for_a_while_is_retried(client, work, redis_conn, sandbox, sandbox_calls):
    import requests

    requests.post(f"{sandbox}/sandbox/faults", json={"status": 503, "count": 2, "path": "/hubspot/"}, timeout=5).raise_for_status()
    events = json.loads((PAYLOADS / "hubspot-deal-propertychange.json").read_text())
    reply = client.post("/hooks/hubspot_app", **hubspot_post(events)).get_json()
    for _ in range(4):
        work()
    job = Job.fetch(reply["jobs"][0], connection=redis_conn)
    assert job.get_status() == JobStatus.FINISHED
    deals = [call for call in sandbox_calls() if call["path"].endswith("/deals/9001")]
    assert [call["status"] for call in deals] == [503, 503, 200]


def test_a_bamboohr_hire_event_reaches_coursebox_through_the_employee_lookup(client, work, sandbox_calls, redis_conn, sandbox):
    import requests

    event = json.loads((PAYLOADS / "bamboohr-employee-updated.json").read_text())
    reply = client.post("/hooks/bamboohr_events", **bamboohr_post(event)).get_json()
    assert reply["matched"] == ["bamboohr-event-hire-creates-and-invites", "bamboohr-event-leave-deactivates-the-account"]
    work()
    assert [Job.fetch(job, connection=redis_conn).get_status() for job in reply["jobs"]] == [JobStatus.FINISHED] * 2
    paths = [call["path"] for call in sandbox_calls()]
    assert paths.count("/sandbox/bamboohr/api/gateway.php/sandbox/v1/employees/112/") == 2
    state = requests.get(f"{sandbox}/sandbox/state", timeout=5).json()["coursebox"]
    assert [user["email"] for user in state["users"]] == ["admin@sandbox.test", "ana.silva@example.com"]
    assert [(invite["courseId"], invite["email"]) for invite in state["invites"]] == [(42, "ana.silva@example.com")]
    assert not any("deactivate" in path or "updateMainAttributes" in path for path in paths)  # Ana is Active
