"""The `http` lookup connection against the sandbox's HubSpot and BambooHR endpoints, over real HTTP."""

import base64

import pytest

from bridge.lms import LMSAuthError, LMSNotFound, LMSRateLimited, LMSRejected, LMSUnavailable, validate_connection_spec
from bridge.sandbox_lookups import BAMBOOHR_API_KEY, HUBSPOT_TOKEN
from tests.lms_helpers import closed_port_url, connectors, live_sandbox, lms_sandbox  # noqa: F401 - fixtures


def hubspot_spec(sandbox, **overrides) -> dict:
    return {"type": "http", "url": f"{sandbox.base}/hubspot", "auth": "bearer", "token": HUBSPOT_TOKEN, **overrides}


def bamboohr_spec(sandbox, **overrides) -> dict:
    return {"type": "http", "url": f"{sandbox.base}/bamboohr/api/gateway.php/acme", "auth": "basic",
            "username": BAMBOOHR_API_KEY, "password": "x", **overrides}


def test_get_returns_the_json_reply_as_the_step_output(lms_sandbox, connectors):
    hubspot = connectors("hubspot", hubspot_spec(lms_sandbox))
    deal = hubspot.perform("get", {"path": "/crm/v3/objects/deals/9001",
                                   "query": {"properties": "dealname,dealstage,course_id", "associations": "contacts"}})
    assert deal["properties"] == {"dealname": "Acme - Customer Service training", "dealstage": "closedwon", "course_id": "13"}
    contact_id = deal["associations"]["contacts"]["results"][0]["id"]
    contact = hubspot.perform("get", {"path": f"/crm/v3/objects/contacts/{contact_id}",
                                      "query": {"properties": ["email", "firstname"]}})
    assert contact["properties"] == {"email": "olu.ade@acme.example", "firstname": "Olu"}  # a list is a repeated parameter


def test_basic_auth_and_accept_json_reach_bamboohr(lms_sandbox, connectors):
    bamboohr = connectors("bamboohr", bamboohr_spec(lms_sandbox))
    employee = bamboohr.perform("get", {"path": "/v1/employees/112/", "query": {"fields": "firstName,lastName,workEmail,status"}})
    assert employee == {"id": "112", "firstName": "Ana", "lastName": "Silva", "workEmail": "ana.silva@example.com", "status": "Active"}


def test_post_sends_json(lms_sandbox, connectors):
    hubspot = connectors("hubspot", hubspot_spec(lms_sandbox))
    with pytest.raises(LMSNotFound):  # the sandbox has no POST endpoint: the body still went out as JSON
        hubspot.perform("post", {"path": "/crm/v3/objects/contacts/search", "json": {"filterGroups": []}})
    [call] = lms_sandbox.calls("/search")
    assert call["method"] == "POST" and call["body"] == {"filterGroups": []}


@pytest.mark.parametrize("auth", [
    {"auth": "header", "header": "X-Api-Key", "token": "k-123456"},
    {"auth": "query", "query": "hapikey", "token": "k-123456"},
])
def test_header_and_query_tokens_are_sent(lms_sandbox, connectors, auth):
    http = connectors("api", {"type": "http", "url": f"{lms_sandbox.base}/hubspot", **auth})
    with pytest.raises(LMSAuthError) as caught:  # the sandbox wants a bearer token: refused, and the detail says so
        http.perform("get", {"path": "/crm/v3/objects/contacts/201"})
    assert "k-123456" not in str(caught.value)
    [call] = lms_sandbox.calls("/contacts/201")
    if auth["auth"] == "query":
        assert call["query"] == {"hapikey": "k-123456"}


def test_recorded_exchanges_keep_tokens_out(lms_sandbox, connectors):
    from bridge.exchanges import describe

    seen = []
    http = connectors("api", {"type": "http", "url": f"{lms_sandbox.base}/hubspot", "auth": "query", "query": "key",
                              "token": "k-123456"})
    http.session.hooks["response"].append(lambda response, *args, **kwargs: seen.append(response))
    with pytest.raises(LMSNotFound):
        http.perform("post", {"path": "/crm/v3/objects/contacts/201", "json": {"note": "k-123456 leaked"}})
    entry = describe(seen[0], http.secrets(), 0.1)
    assert entry["query"] == {"key": "[redacted]"} and entry["request"] == {"note": "[redacted] leaked"}
    assert "k-123456" not in str(entry)


def test_errors_say_whether_a_retry_can_help(lms_sandbox, connectors):
    hubspot = connectors("hubspot", hubspot_spec(lms_sandbox))
    with pytest.raises(LMSNotFound) as missing:
        hubspot.perform("get", {"path": "/crm/v3/objects/contacts/999"})
    assert not missing.value.retryable
    assert "/crm/v3/objects/contacts/999: HTTP 404: Object not found" in str(missing.value)
    wrong = connectors("wrong", hubspot_spec(lms_sandbox, token="not-the-token"))
    with pytest.raises(LMSAuthError) as refused:
        wrong.perform("get", {"path": "/crm/v3/objects/contacts/201"})
    assert not refused.value.retryable and "not-the-token" not in str(refused.value)
    lms_sandbox.fault(status=503, count=1)
    with pytest.raises(LMSUnavailable) as down:
        hubspot.perform("get", {"path": "/crm/v3/objects/contacts/201"})
    assert down.value.retryable
    lms_sandbox.fault(status=429, retry_after=7)
    with pytest.raises(LMSRateLimited) as slow:
        hubspot.perform("get", {"path": "/crm/v3/objects/contacts/201"})
    assert slow.value.retryable and slow.value.retry_after == 7
    unreachable = connectors("gone", {"type": "http", "url": closed_port_url(), "auth": "none"})
    with pytest.raises(LMSUnavailable):
        unreachable.perform("get", {"path": "/x"})


@pytest.mark.parametrize("path", ["crm/v3", "/../admin", "/a/../../b", "//evil.example/x", "/x?y=1", "/a b",
                                  "https://evil.example/", "/x#y", 42])
def test_a_path_that_leaves_the_base_url_is_refused_before_sending(lms_sandbox, connectors, path):
    hubspot = connectors("hubspot", hubspot_spec(lms_sandbox))
    with pytest.raises(LMSRejected) as refused:
        hubspot.perform("get", {"path": path})
    assert "nothing was sent" in str(refused.value)
    assert lms_sandbox.calls() == []


def test_a_reply_that_is_not_json_is_refused(lms_sandbox, connectors):
    bamboohr = connectors("bamboohr", bamboohr_spec(lms_sandbox, headers={"Accept": "application/xml"}))
    with pytest.raises(LMSRejected) as refused:
        bamboohr.perform("get", {"path": "/v1/employees/112/"})
    assert "reply is not JSON" in str(refused.value)


@pytest.mark.parametrize("spec, said", [
    ({"auth": "bearer"}, "missing key 'token' (auth bearer needs it)"),
    ({"auth": "header", "token": "t-1234"}, "missing key 'header' (auth header needs it)"),
    ({"auth": "none", "token": "t-1234"}, "key 'token' does not apply to auth none"),
    ({"auth": "basic", "username": "u"}, "missing key 'password' (auth basic needs it)"),
    ({"auth": "oauth"}, "auth: 'oauth' is not one of"),
    ({}, "missing key 'auth'"),
    ({"auth": "none", "headers": {"X-A": 1}}, "headers/X-A: 1 is not of type 'string'"),
])
def test_a_wrong_spec_names_the_key(spec, said):
    problems = validate_connection_spec({"type": "http", "url": "https://api.example", **spec})
    assert any(said in message for _, message in problems), problems


def test_bamboohr_user_name_is_a_secret_never_shown(lms_sandbox, connectors):
    bamboohr = connectors("bamboohr", bamboohr_spec(lms_sandbox, username="wrong-key-123"))
    with pytest.raises(LMSAuthError) as refused:
        bamboohr.perform("get", {"path": "/v1/employees/112/"})
    assert "wrong-key-123" not in str(refused.value)
    assert "wrong-key-123" in bamboohr.secrets()
    assert base64.b64encode(b"wrong-key-123:x").decode() not in str(lms_sandbox.calls())
