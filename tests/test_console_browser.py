"""The console in a real browser: headless Chromium (Debian's chromium + chromium-driver) driven by Selenium,
against the bridge under gunicorn with a real `bridge worker`, Redis and the LMS sandbox.

Set BRIDGE_SCREENSHOTS to a folder to keep a screenshot of each main page (the README's come from here).
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from bridge.embedded import DEMO_ORDER, demo_env, woocommerce_signature
from tests.conftest import free_port
from tests.processes import PYTHON, child_env, start, stop, wait_for
from tests.rule_files import EXAMPLE_RULES

TOKEN = "browser-test-admin-token-0123456789"
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
DRIVER = shutil.which("chromedriver")

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
if not CHROMIUM or not DRIVER:
    pytest.skip("no Chromium here: install Debian's chromium and chromium-driver (.ci/run does) to run the browser tests",
                allow_module_level=True)

from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture
def bridge(tmp_path, redis_url, redis_conn):
    """Run the Procfile's web process and a worker on the test Redis, with the LMS sandbox mounted; return the base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    rules = shutil.copytree(EXAMPLE_RULES, tmp_path / "rules")
    env = child_env(REDIS_URL=redis_url, RULES_DIR=rules, BRIDGE_ADMIN_TOKEN=TOKEN, BRIDGE_SANDBOX="1",
                    BRIDGE_RETRY_INTERVALS="0", BRIDGE_LOG_LEVEL="warning", **demo_env(base))
    web = start([PYTHON, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "4",
                 "bridge:create_app()"], env, cwd=tmp_path)
    worker = start([PYTHON, "-m", "bridge", "worker"], env, cwd=tmp_path)
    try:
        wait_for(lambda: requests.get(f"{base}/healthz", timeout=2).ok, what="gunicorn to answer")
        yield base, rules, env
    finally:
        stop(worker)
        stop(web)


@pytest.fixture
def browser(tmp_path):
    """Return a headless Chromium driven by Selenium."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,900", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def post_order(base: str, order: str = DEMO_ORDER, signature: str | None = None) -> requests.Response:
    """Post the README's WooCommerce order, signed with the demo secret unless a signature is given."""
    headers = {"Content-Type": "application/json", "X-WC-Webhook-Topic": "order.updated",
               "X-WC-Webhook-Signature": signature or woocommerce_signature(order, demo_env(base)["WOOCOMMERCE_SECRET"])}
    return requests.post(f"{base}/hooks/shop", data=order.encode(), headers=headers, timeout=10)


def status_of(base: str, delivery_id: str) -> str:
    reply = requests.get(f"{base}/admin/deliveries/{delivery_id}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    return reply.json()["status"]


def shoot(driver, name: str) -> None:
    folder = os.environ.get("BRIDGE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"console-{name}.png"))


def wait(driver, seconds: float = 30):
    """Wait for a condition, looking again when a page replaced the element (navigation, live refresh)."""
    return WebDriverWait(driver, seconds, ignored_exceptions=(StaleElementReferenceException,))


def test_an_operator_finds_explains_retries_and_tests_a_delivery_in_the_browser(bridge, browser, tmp_path):
    base, rules, env = bridge
    # The LMS is down long enough for the enrolment to fail for good (two tries with BRIDGE_RETRY_INTERVALS=0).
    requests.post(f"{base}/sandbox/faults", json={"status": 503, "count": 2, "path": "enrolUser"}, timeout=5).raise_for_status()
    accepted = post_order(base)
    assert accepted.status_code == 202, accepted.text
    delivery_id = accepted.json()["delivery_id"]
    wait_for(lambda: status_of(base, delivery_id) == "failed", what="the enrolment to fail")
    post_order(base, DEMO_ORDER.replace("1001", "1002"))
    # A sender set up with the wrong preset: a hex signature where WooCommerce signs in base64.
    assert post_order(base, signature="ab" * 32).status_code == 401

    # Sign in.
    browser.get(f"{base}/admin/")
    wait(browser).until(expected_conditions.presence_of_element_located((By.ID, "token"))).send_keys(TOKEN)
    shoot(browser, "sign-in")
    browser.find_element(By.ID, "sign-in").click()
    wait(browser).until(expected_conditions.presence_of_element_located((By.ID, "rows")))
    assert "Deliveries" in browser.title

    # Find the delivery: filter by status, then open it.
    # A loaded machine may still be parsing the page when #rows appears: wait for the form itself.
    wait(browser).until(expected_conditions.element_to_be_clickable((By.NAME, "status"))).send_keys("failed")
    wait(browser).until(expected_conditions.element_to_be_clickable((By.ID, "apply-filters"))).click()
    # The unfiltered page lists the delivery too: wait for the filtered page before looking at rows.
    wait(browser).until(expected_conditions.url_contains("status=failed"))
    wait(browser).until(expected_conditions.element_to_be_clickable((By.LINK_TEXT, delivery_id)))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#rows tr")) == 1
    browser.get(f"{base}/admin/ui/deliveries")
    wait(browser).until(lambda driver: len(driver.find_elements(By.CSS_SELECTOR, "#rows td.id")) == 2)
    shoot(browser, "deliveries")
    # Live refresh: a new delivery shows up on the open page without a reload.
    post_order(base, DEMO_ORDER.replace("1001", "1003"))
    wait(browser).until(lambda driver: len(driver.find_elements(By.CSS_SELECTOR, "#rows td.id")) == 3)
    browser.get(f"{base}/admin/ui/deliveries?status=failed")
    wait(browser).until(expected_conditions.element_to_be_clickable((By.LINK_TEXT, delivery_id))).click()
    assert wait(browser).until(expected_conditions.presence_of_element_located((By.ID, "status"))).text == "failed"
    page = browser.find_element(By.TAG_NAME, "main").text
    assert "body.status equals 'completed'" in page and "HTTP 503" in page and "enrolUser" in page
    shoot(browser, "delivery-failed")

    # Retry it: the LMS is well again, the worker performs it.
    browser.find_element(By.ID, "retry").click()
    assert "queued again" in wait(browser).until(expected_conditions.presence_of_element_located((By.CLASS_NAME, "notice"))).text
    wait_for(lambda: status_of(base, delivery_id) == "succeeded", what="the retried job to succeed")
    browser.refresh()
    assert wait(browser).until(expected_conditions.presence_of_element_located((By.ID, "status"))).text == "succeeded"
    shoot(browser, "delivery")
    browser.execute_script("document.querySelector('section.rule').scrollIntoView()")
    shoot(browser, "delivery-rules")

    # Copy it as a rule test, and run that test with `bridge test`.
    browser.find_element(By.ID, "copy-rule-test").click()
    wait(browser).until(lambda driver: driver.find_element(By.ID, "copy-rule-test").text != "Copy")
    test_yaml = html.unescape(browser.find_element(By.ID, "rule-test").get_attribute("textContent"))
    (rules / "from-the-console.yaml").write_text("tests:\n" + test_yaml)
    ran = subprocess.run([PYTHON, "-m", "bridge", "test", str(rules)], env=env, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert re.search(rf"ok .*from-the-console\.yaml:\d+: delivery {delivery_id}", ran.stdout), ran.stdout

    # See the refused request of the bad signature, with its hint.
    browser.find_element(By.LINK_TEXT, "Refused").click()
    row = wait(browser).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#refused tr.refusal")))
    assert "signature does not match" in row.text and "looks like hex; this preset expects base64" in row.text
    assert "ab" * 32 not in browser.page_source
    shoot(browser, "refused")

    # Sources and health render, and signing out locks the console again.
    browser.find_element(By.LINK_TEXT, "Sources").click()
    assert f"{base}/hooks/shop" in wait(browser).until(expected_conditions.presence_of_element_located((By.ID, "sources"))).text
    browser.find_element(By.LINK_TEXT, "shop").click()
    wait(browser).until(expected_conditions.presence_of_element_located((By.ID, "simulation")))
    shoot(browser, "source")
    browser.find_element(By.LINK_TEXT, "Rules & health").click()
    wait(browser).until(expected_conditions.presence_of_element_located((By.ID, "workers")))
    shoot(browser, "health")
    browser.find_element(By.CSS_SELECTOR, "form.signout button").click()
    wait(browser).until(expected_conditions.presence_of_element_located((By.ID, "token")))
    browser.get(f"{base}/admin/ui/deliveries")
    wait(browser).until(expected_conditions.presence_of_element_located((By.ID, "token")))
