"""The operator console through Flask's test client: sign-in, CSRF, deliveries, one delivery, refusals, sources, health."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import yaml
from click.testing import CliRunner

from bridge import create_app
from bridge.cli import cli
from bridge.console import refused
from bridge.embedded import DEMO_SECRETS
from bridge.history import Filters, page
from tests.processes import wait_for
from tests.rule_files import EXAMPLE_RULES
from tests.signing import hr_post, woo_post
from tests.test_pipeline import ORDER, fault

TOKEN = "console-token-for-the-tests-0123456789"
HIRE = {"event": "employee.hired", "id": "h1", "employee": {"email": "Zoe@Example.com"}}


@pytest.fixture
def settings_overrides(settings_overrides):
    """Turn the admin API and console on for every app of this module."""
    return {**settings_overrides, "admin_token": TOKEN}


def sign_in(client, token: str = TOKEN, next_page: str = ""):
    """Sign in through the form, as a browser does; return the reply to the form's POST."""
    form = client.get("/admin/ui/login").get_data(as_text=True)
    nonce = re.search(r'name="nonce" value="([^"]+)"', form).group(1)
    return client.post("/admin/ui/login", data={"nonce": nonce, "token": token, "next": next_page})


def csrf_of(client) -> str:
    page_text = client.get("/admin/ui/health").get_data(as_text=True)
    return re.search(r'name="csrf" value="([^"]+)"', page_text).group(1)


@pytest.fixture
def signed_in(client):
    assert sign_in(client).status_code == 302
    return client


@pytest.fixture
def failed_and_succeeded(client, work, lms_env):
    """Store a delivery whose LMS call fails for good (a wrong API key) and one that succeeds; return both replies."""
    lms_env["COURSETOOLKIT_API_KEY"] = "wrong-key-for-the-console-tests"
    failed = client.post("/hooks/hr", **hr_post(HIRE)).get_json()
    succeeded = client.post("/hooks/shop", **woo_post(ORDER)).get_json()
    work()
    return failed, succeeded


def cookie_header(response, name: str) -> str:
    return next(value for value in response.headers.getlist("Set-Cookie") if value.startswith(f"{name}="))


# --- sign-in, sessions and CSRF -------------------------------------------------------------------------------

def test_the_console_is_off_without_a_token(settings_overrides, lms_env, redis_conn):
    client = create_app({**settings_overrides, "admin_token": None}, env=lms_env).test_client()
    for path in ("/admin/", "/admin/ui/", "/admin/ui/login", "/admin/ui/deliveries"):
        assert client.get(path).status_code == 404


def test_pages_send_a_visitor_to_the_sign_in_form_and_back(client):
    response = client.get("/admin/ui/deliveries?status=failed")
    assert response.status_code == 302 and "/admin/ui/login?next=" in response.headers["Location"]
    assert client.get("/admin/").headers["Location"].endswith("/admin/ui/deliveries")
    reply = sign_in(client, next_page="/admin/ui/deliveries?status=failed")
    assert reply.status_code == 302 and reply.headers["Location"] == "/admin/ui/deliveries?status=failed"
    assert client.get("/admin/ui/deliveries?status=failed").status_code == 200


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/admin/ui/", "/hooks/shop", "/admin/ui/\\evil"])
def test_sign_in_never_sends_a_browser_to_another_site(client, target):
    assert sign_in(client, next_page=target).headers["Location"] == "/admin/ui/deliveries"


def test_the_session_cookie_is_httponly_strict_and_expiring_and_secure_over_https(client, app):
    cookie = cookie_header(sign_in(client), "bridge_console")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie
    assert f"Max-Age={app.extensions['bridge'].settings.admin_session_seconds}" in cookie and "Secure" not in cookie
    secure = app.test_client()
    form = secure.get("/admin/ui/login", base_url="https://bridge.example").get_data(as_text=True)
    nonce = re.search(r'name="nonce" value="([^"]+)"', form).group(1)
    reply = secure.post("/admin/ui/login", data={"nonce": nonce, "token": TOKEN}, base_url="https://bridge.example")
    assert "Secure" in cookie_header(reply, "bridge_console")


def test_a_wrong_token_or_a_forged_form_does_not_sign_in(client, app):
    wrong = sign_in(client, token="not-the-token-at-all-0000")
    assert wrong.status_code == 401 and "not the admin token" in wrong.get_data(as_text=True)
    assert not any(value.startswith("bridge_console=") for value in wrong.headers.getlist("Set-Cookie"))
    forged = app.test_client().post("/admin/ui/login", data={"nonce": "made-up", "token": TOKEN})
    assert forged.status_code == 401 and "expired" in forged.get_data(as_text=True)
    assert client.get("/admin/ui/deliveries").status_code == 302


def test_every_change_needs_the_sessions_csrf_token(signed_in, failed_and_succeeded):
    failed, _ = failed_and_succeeded
    for path in (f"/admin/ui/deliveries/{failed['delivery_id']}/retry", f"/admin/ui/deliveries/{failed['delivery_id']}/replay",
                 "/admin/ui/retry", "/admin/ui/logout", "/admin/ui/sources/shop"):
        assert signed_in.post(path, data={}).status_code == 403, path
        assert signed_in.post(path, data={"csrf": "wrong"}).status_code == 403, path
    assert signed_in.get(f"/admin/ui/deliveries/{failed['delivery_id']}").status_code == 200  # still signed in


def test_sign_out_ends_the_session_for_every_copy_of_the_cookie(signed_in, app):
    cookie = signed_in.get_cookie("bridge_console", path="/admin").value
    reply = signed_in.post("/admin/ui/logout", data={"csrf": csrf_of(signed_in)})
    assert reply.status_code == 302 and reply.headers["Location"].endswith("/admin/ui/login")
    copy = app.test_client()
    copy.set_cookie("bridge_console", cookie, path="/admin")
    assert copy.get("/admin/ui/deliveries").status_code == 302


def test_the_bearer_token_still_works_for_the_json_api_and_the_cookie_does_not(signed_in):
    assert signed_in.get("/admin/deliveries").status_code == 401
    assert signed_in.get("/admin/deliveries", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_pages_are_kept_out_of_caches_and_frames_and_run_only_their_own_script(signed_in):
    response = signed_in.get("/admin/ui/deliveries")
    assert response.headers["Cache-Control"] == "no-store" and response.headers["X-Frame-Options"] == "DENY"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    for name in ("console.js", "console.css"):
        with signed_in.get(f"/admin/ui/static/{name}") as static:
            assert static.status_code == 200


# --- deliveries ------------------------------------------------------------------------------------------------

def rows(client, query: str = "") -> list[str]:
    text = client.get(f"/admin/ui/deliveries{query}").get_data(as_text=True)
    return re.findall(r'<td class="id"><a href="/admin/ui/deliveries/([^"]+)">', text)


def test_the_list_filters_newest_first_with_status_badges(signed_in, failed_and_succeeded):
    failed, succeeded = failed_and_succeeded
    assert rows(signed_in) == [succeeded["delivery_id"], failed["delivery_id"]]
    assert rows(signed_in, "?status=failed") == [failed["delivery_id"]]
    assert rows(signed_in, "?email=ZOE@example.com") == [failed["delivery_id"]]
    assert rows(signed_in, "?source=shop&rule=enroll-buyer-on-completed-order&connection=coursebox") == [succeeded["delivery_id"]]
    assert rows(signed_in, "?since=1h&until=2099-01-01T00:00:00Z") == rows(signed_in)
    assert rows(signed_in, "?until=2000-01-01") == []
    text = signed_in.get("/admin/ui/deliveries").get_data(as_text=True)
    assert 'class="badge failed">failed<' in text and 'class="badge succeeded">succeeded<' in text
    bad = signed_in.get("/admin/ui/deliveries?since=yesterday")
    assert bad.status_code == 400 and "neither an ISO 8601 time" in bad.get_data(as_text=True)


def test_duplicates_and_unmatched_deliveries_are_labelled(signed_in, client):
    client.post("/hooks/shop", **woo_post(ORDER))
    client.post("/hooks/shop", **woo_post(ORDER))
    client.post("/hooks/shop", **woo_post({**ORDER, "id": 7, "status": "pending"}))
    text = signed_in.get("/admin/ui/deliveries").get_data(as_text=True)
    assert "duplicate ×1" in text and ">no rule matched<" in text


def test_the_list_pages_back_with_a_cursor_and_live_refresh_gets_rows(signed_in, client):
    ids = [client.post("/hooks/hr", **hr_post({**HIRE, "id": f"h{n}", "employee": {"email": f"p{n}@example.com"}})).get_json()["delivery_id"]
           for n in range(55)]
    first = signed_in.get("/admin/ui/deliveries").get_data(as_text=True)
    assert rows(signed_in)[:50] == ids[::-1][:50]
    older = re.search(r'href="([^"]+)" id="older"', first).group(1).replace("&amp;", "&")
    second = re.findall(r'/admin/ui/deliveries/([0-9a-f]+-[0-9a-f]+)">', signed_in.get(older).get_data(as_text=True))
    assert list(dict.fromkeys(second)) == ids[::-1][50:]
    live = re.search(r'data-live="([^"]+)"', first).group(1).replace("&amp;", "&")
    partial = signed_in.get(live).get_data(as_text=True)
    assert partial.lstrip().startswith("<tr>") and "<html" not in partial and ids[-1] in partial


def test_a_filtered_page_reads_a_bounded_number_of_records(redis_conn, client):
    for n in range(30):
        client.post("/hooks/hr", **hr_post({**HIRE, "id": f"b{n}", "employee": {"email": f"b{n}@example.com"}}))
    found, cursor = page(redis_conn, Filters(subject="nobody@example.com"), limit=50, scan_limit=10)
    assert found == [] and cursor is not None
    rest, end = page(redis_conn, Filters(subject="b0@example.com"), limit=50, before=cursor, scan_limit=100)
    assert [item["subjects"] for item in rest] == [["b0@example.com"]] and end is None


# --- one delivery ----------------------------------------------------------------------------------------------

def test_a_delivery_shows_timeline_conditions_actions_exchanges_and_body(signed_in, failed_and_succeeded):
    _, succeeded = failed_and_succeeded
    text = signed_in.get(f"/admin/ui/deliveries/{succeeded['delivery_id']}").get_data(as_text=True)
    assert 'id="status">succeeded<' in text
    assert "body.status equals &#39;completed&#39;" in text and "<code>&#39;completed&#39;</code>" in text  # value seen
    assert "coursebox.create_user" in text and "coursebox.enroll" in text
    assert "/sandbox/coursebox/" in text and "enrolUser" in text  # the LMS exchanges
    assert "[redacted]" in text and DEMO_SECRETS["WOOCOMMERCE_SECRET"] not in text
    assert '&#34;billing&#34;: {' in text  # the body, pretty-printed
    assert signed_in.get("/admin/ui/deliveries/nope").status_code == 404


def test_a_failed_condition_shows_the_value_it_saw(signed_in, client):
    reply = client.post("/hooks/shop", **woo_post({**ORDER, "status": "pending"})).get_json()
    text = signed_in.get(f"/admin/ui/deliveries/{reply['delivery_id']}").get_data(as_text=True)
    assert "no match" in text and "body.status is &#39;pending&#39;, expected &#39;completed&#39;" in text
    assert '<td class="no">no</td>' in text


@pytest.fixture
def failed_order(client, work, sandbox):
    """Store an order whose enrolment failed for good (the LMS kept answering 503), the LMS well again since."""
    fault(sandbox, status=503, count=4, path="enrolUser")
    reply = client.post("/hooks/shop", **woo_post(ORDER)).get_json()
    work()
    return reply


def test_retry_and_replay_buttons(signed_in, failed_order, work):
    delivery = failed_order["delivery_id"]
    page_text = signed_in.get(f"/admin/ui/deliveries/{delivery}").get_data(as_text=True)
    assert 'id="status">failed<' in page_text and "Retry failed jobs (1)" in page_text
    reply = signed_in.post(f"/admin/ui/deliveries/{delivery}/retry", data={"csrf": csrf_of(signed_in)})
    assert reply.status_code == 302
    assert "queued again" in signed_in.get(reply.headers["Location"]).get_data(as_text=True)
    work()
    assert 'id="status">succeeded<' in signed_in.get(f"/admin/ui/deliveries/{delivery}").get_data(as_text=True)
    replayed = signed_in.post(f"/admin/ui/deliveries/{delivery}/replay", data={"csrf": csrf_of(signed_in)})
    new_id = replayed.headers["Location"].rsplit("/", 1)[1]
    assert new_id != delivery
    assert f"replayed {delivery}" in signed_in.get(replayed.headers["Location"]).get_data(as_text=True)


def rule_test_of(client, delivery_id: str) -> str:
    import html

    text = client.get(f"/admin/ui/deliveries/{delivery_id}").get_data(as_text=True)
    return html.unescape(re.search(r'<pre id="rule-test">(.*?)</pre>', text, re.S).group(1))


def test_copy_as_rule_test_gives_a_test_that_bridge_test_passes(signed_in, failed_and_succeeded, client, tmp_path):
    _, succeeded = failed_and_succeeded
    unmatched = client.post("/hooks/shop", **woo_post({**ORDER, "id": 9, "status": "pending"})).get_json()
    entries = yaml.safe_load(rule_test_of(signed_in, succeeded["delivery_id"]))
    [entry] = entries
    assert entry["source"] == "shop" and entry["event"] == "order.updated"
    assert entry["expect"]["rules"] == ["enroll-buyer-on-completed-order"]
    assert [action["action"] for action in entry["expect"]["actions"]] == ["create_user", "enroll"]
    assert not any("signature" in name.lower() for name in entry.get("headers", {}))
    rules = shutil.copytree(EXAMPLE_RULES, tmp_path / "rules")
    (rules / "from-console.yaml").write_text("tests:\n" + rule_test_of(signed_in, succeeded["delivery_id"])
                                              + rule_test_of(signed_in, unmatched["delivery_id"]))
    result = CliRunner().invoke(cli, ["test", str(rules)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"ok   {rules / 'from-console.yaml'}" in result.output or "from-console.yaml" in result.output
    assert re.search(rf"ok .*delivery {succeeded['delivery_id']}", result.output)
    assert re.search(rf"ok .*delivery {unmatched['delivery_id']}", result.output)


# --- refused requests -------------------------------------------------------------------------------------------

def test_a_bad_signature_is_kept_redacted_with_a_hint(signed_in, client, redis_conn):
    kwargs = woo_post(ORDER)
    hex_signature = "ab" * 32
    kwargs["headers"]["X-WC-Webhook-Signature"] = hex_signature
    assert client.post("/hooks/shop", **kwargs).status_code == 401
    text = signed_in.get("/admin/ui/refused").get_data(as_text=True)
    assert "signature does not match" in text
    assert "x-wc-webhook-signature looks like hex; this preset expects base64" in text
    assert hex_signature not in text and "[64 characters, looks like hex]" in text
    [stored] = refused.recent(redis_conn)
    assert hex_signature not in json.dumps(stored) and stored["status"] == 401 and stored["source"] == "shop"
    assert "jane" in stored["body"].lower()  # a redacted preview, to see what came
    result = CliRunner().invoke(cli, ["deliveries", "--refused"], env={"REDIS_URL": _url(redis_conn)}, catch_exceptions=False)
    assert result.exit_code == 0 and "signature does not match" in result.output and "looks like hex" in result.output


def _url(redis_conn) -> str:
    kwargs = redis_conn.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"


def test_refusals_are_capped_per_source_and_never_keep_a_token(client, redis_conn):
    for n in range(refused.PER_SOURCE + 5):
        client.post("/hooks/hr", data=json.dumps({**HIRE, "id": f"r{n}"}), content_type="application/json",
                    headers={"X-Bridge-Token": f"guess-{n}-{DEMO_SECRETS['HR_WEBHOOK_TOKEN']}"})
    assert client.post("/hooks/shop", **woo_post(b"{not json")).status_code == 400  # signed, then unreadable
    kept = refused.recent(redis_conn, "hr", limit=1000)
    assert len(kept) == refused.PER_SOURCE and kept[0]["reason"] == "token does not match"
    assert DEMO_SECRETS["HR_WEBHOOK_TOKEN"] not in json.dumps(kept)
    assert redis_conn.ttl(refused.KEY.format("hr")) > 0
    [invalid] = refused.recent(redis_conn, "shop")
    assert invalid["status"] == 400 and "JSON" in invalid["hint"]


def test_a_body_over_the_limit_is_kept_as_refused(settings_overrides, lms_env, redis_conn):
    client = create_app({**settings_overrides, "max_body_bytes": 100}, env=lms_env).test_client()
    assert client.post("/hooks/shop", **woo_post({**ORDER, "padding": "x" * 200})).status_code == 413
    [item] = refused.recent(redis_conn, "shop")
    assert item["status"] == 413 and "BRIDGE_MAX_BODY_BYTES" in item["hint"]


# --- sources ----------------------------------------------------------------------------------------------------

def test_sources_list_urls_presets_and_counts(signed_in, client):
    client.post("/hooks/shop", **woo_post(ORDER))
    client.post("/hooks/shop", **woo_post(ORDER))
    bad = woo_post(ORDER)
    bad["headers"]["X-WC-Webhook-Signature"] = "bad"
    client.post("/hooks/shop", **bad)
    text = signed_in.get("/admin/ui/sources").get_data(as_text=True)
    assert "http://localhost/hooks/shop" in text and "X-WC-Webhook-Signature: base64 HMAC-SHA256 of the body" in text
    row = re.search(r'/admin/ui/sources/shop">shop</a>.*?</tr>', text, re.S).group(0)
    assert re.findall(r'<td class="num">(?:<a[^>]*>)?(\d+)', row) == ["1", "1", "1"]
    assert "a shared token in the header X-Bridge-Token" in text


def test_simulating_the_last_payload_gives_what_bridge_simulate_gives(signed_in, client, tmp_path, redis_conn, lms_env):
    reply = client.post("/hooks/shop", **woo_post(ORDER)).get_json()
    text = signed_in.get("/admin/ui/sources/shop").get_data(as_text=True)
    assert reply["delivery_id"] in text and "jane@example.com" in text.lower()
    shown = re.findall(r'<td>([a-z0-9-]+)</td><td class="(?:yes|no)">(MATCH|no)</td><td>([^<]*)</td>',
                       re.search(r'<div id="simulation">(.*?)</div>', text, re.S).group(1))
    from bridge.history import show

    record = show(redis_conn, reply["delivery_id"])
    payload = tmp_path / "payload.json"
    payload.write_text(record["body"])
    headers = [arg for name, value in record["headers"].items() for arg in ("-H", f"{name}: {value}")]
    result = CliRunner().invoke(cli, ["simulate", "shop", str(payload), "--json", "--rules", str(EXAMPLE_RULES), *headers],
                                env=lms_env, catch_exceptions=False)
    import html

    expected = [(d["rule"], "MATCH" if d["matched"] else "no", d["reason"]) for e in json.loads(result.output) for d in e["decisions"]]
    assert [(rule, said, html.unescape(reason)) for rule, said, reason in shown] == expected
    assert expected[0][1] == "MATCH"
    pasted = signed_in.post("/admin/ui/sources/shop", data={"csrf": csrf_of(signed_in), "payload": json.dumps({**ORDER, "status": "on-hold"}),
                                                             "headers": "X-WC-Webhook-Topic: order.updated"}).get_data(as_text=True)
    assert "body.status is &#39;on-hold&#39;, expected &#39;completed&#39;" in pasted


# --- rules and health -------------------------------------------------------------------------------------------

def test_health_shows_files_queue_workers_and_reload_errors_with_file_and_line(signed_in, app, tmp_path, settings_overrides, lms_env):
    rules = shutil.copytree(EXAMPLE_RULES, tmp_path / "rules")
    client = create_app({**settings_overrides, "rules_dir": rules}, env=lms_env).test_client()
    sign_in(client)
    text = client.get("/admin/ui/health").get_data(as_text=True)
    assert "The files load without errors" in text and "shop.yaml" in text and "No worker is running" in text
    assert "enroll-buyer-on-completed-order" in text
    (rules / "shop.yaml").write_text((rules / "shop.yaml").read_text().replace("equals: completed", "equalz: completed"))
    # Rules reload in the background: wait (bounded) until the page reports the broken edit.
    def broken() -> str | None:
        text = client.get("/admin/ui/health").get_data(as_text=True)
        return text if "does not load" in text else None

    text = wait_for(broken, what="the health page to show the broken edit")
    assert re.search(r"shop\.yaml:\d+:\d+", text)


def test_bulk_retry_requeues_the_failed_jobs(signed_in, failed_order, work):
    assert '<b id="failed-count">1</b>' in signed_in.get("/admin/ui/health").get_data(as_text=True)
    reply = signed_in.post("/admin/ui/retry", data={"csrf": csrf_of(signed_in), "rule": "enroll-buyer-on-completed-order", "since": "1h"})
    assert "queued 1 failed job(s) again" in signed_in.get(reply.headers["Location"]).get_data(as_text=True)
    work()
    assert '<b id="failed-count">0</b>' in signed_in.get("/admin/ui/health").get_data(as_text=True)


def test_deliveries_that_need_attention_are_shown_filtered_counted_and_retried_in_bulk(signed_in, client, work, sandbox):
    from tests.test_outcomes import BUYER, account_in_no_course, order

    account_in_no_course(sandbox, BUYER)
    reply = client.post("/hooks/shop", **woo_post(order(601))).get_json()
    work()
    assert rows(signed_in, "?status=needs-attention") == [reply["delivery_id"]]
    assert 'class="badge needs-attention">needs attention<' in signed_in.get("/admin/ui/deliveries").get_data(as_text=True)
    health = signed_in.get("/admin/ui/health").get_data(as_text=True)
    assert '<b id="failed-count">1</b>' in health and '<b id="attention-count">1</b>' in health
    retried = signed_in.post("/admin/ui/retry", data={"csrf": csrf_of(signed_in), "needs_attention": "1"})
    assert "queued 1 failed job(s) again" in signed_in.get(retried.headers["Location"]).get_data(as_text=True)


def test_without_redis_the_console_says_so_in_a_page(settings_overrides, lms_env, redis_conn):
    from tests.conftest import free_port

    client = create_app({**settings_overrides, "redis_url": f"redis://127.0.0.1:{free_port()}/0"}, env=lms_env).test_client()
    reply = sign_in(client)
    assert reply.status_code == 503 and "Redis does not answer" in reply.get_data(as_text=True)
    assert reply.headers["Content-Type"].startswith("text/html")


def test_health_counts_the_queued_jobs(signed_in, client):
    client.post("/hooks/shop", **woo_post(ORDER))
    assert '<b id="queued-count">1</b>' in signed_in.get("/admin/ui/health").get_data(as_text=True)
