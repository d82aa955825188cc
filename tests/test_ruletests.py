"""`bridge test` and `bridge simulate`: rule tests and explanations, without Redis or an LMS."""

import json
import shutil

from click.testing import CliRunner

from bridge.cli import cli
from tests.rule_files import EXAMPLE_RULES


def run(*args, env=None):
    return CliRunner().invoke(cli, list(args), env=env)


def test_every_example_rule_passes_its_tests_and_is_tested():
    result = run("test", str(EXAMPLE_RULES))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "36 passed, 0 failed"
    assert "no test expects to match" not in result.output


def test_a_failing_rule_test_says_what_differs(tmp_path):
    shutil.copytree(EXAMPLE_RULES, tmp_path / "rules")
    shop = tmp_path / "rules" / "shop.yaml"
    shop.write_text(shop.read_text().replace("COURSE-7: 7 ", "COURSE-7: 8 "))
    result = run("test", str(tmp_path / "rules"))
    assert result.exit_code == 1
    assert "FAIL" in result.output and "action 3 (enroll): course_id is 8, expected 7" in result.output
    assert result.output.splitlines()[-1] == "35 passed, 1 failed"


def test_a_misspelled_key_source_or_action_in_a_copy_of_an_example_is_reported(tmp_path, lms_env):
    for before, after, said in [
        ("    when:\n      - path: body.status", "    wen:\n      - path: body.status", ":23:5: unknown key 'wen' in rules[0]; did you mean 'when'?"),
        ("    source: shop\n    # WooCommerce", "    source: shopp\n    # WooCommerce", ":20:5: rule 'enroll-buyer-on-completed-order': unknown source 'shopp'; did you mean 'shop'?"),
        ("        action: enroll\n", "        action: enrol\n", ":41:9: rule 'enroll-buyer-on-completed-order', action 2: coursebox connection 'coursebox' has no action 'enrol'; did you mean 'enroll'?"),
    ]:
        folder = tmp_path / after.split(":")[0].strip()
        shutil.copytree(EXAMPLE_RULES, folder)
        shop = folder / "shop.yaml"
        assert before in shop.read_text()
        shop.write_text(shop.read_text().replace(before, after))
        for command in ("check", "test"):
            result = run(command, str(folder), env=lms_env)
            assert result.exit_code == 1, result.output
            assert f"{shop}{said}" in result.output, result.output


def test_simulate_names_the_failing_condition_and_its_value(tmp_path):
    payload = tmp_path / "order.json"
    payload.write_text(json.dumps({"id": 1, "status": "processing", "billing": {"email": "a@b.test"}, "line_items": []}))
    result = run("simulate", "shop", str(payload), "-H", "X-WC-Webhook-Topic: order.updated", "--rules", str(EXAMPLE_RULES))
    assert result.exit_code == 0, result.output
    assert "no    enroll-buyer-on-completed-order: body.status is 'processing', expected 'completed'" in result.output


def test_simulate_shows_the_rendered_actions_of_a_match(tmp_path):
    payload = tmp_path / "order.json"
    payload.write_text(json.dumps({"id": 1, "status": "completed", "billing": {"email": "A@B.test"},
                                   "line_items": [{"sku": "COURSE-13"}, {"sku": "MUG"}]}))
    result = run("simulate", "shop", str(payload), "-H", "X-WC-Webhook-Topic: order.updated", "--rules", str(EXAMPLE_RULES), "--json")
    assert result.exit_code == 0, result.output
    [explanation] = json.loads(result.output)
    steps = explanation["actions"][0]["steps"]
    assert steps[0] == {"connection": "coursebox", "action": "create_user", "with": {"email": "a@b.test", "first_name": "", "last_name": ""}}
    assert steps[1]["with"] == {"course_id": 13, "user_id": "<learner id>"}
    assert steps[2]["skipped"] == "item.sku is 'MUG', not in table 'courses_by_sku'"


def test_simulate_with_an_unknown_source_is_a_usage_error(tmp_path):
    payload = tmp_path / "x.json"
    payload.write_text("{}")
    result = run("simulate", "shp", str(payload), "--rules", str(EXAMPLE_RULES))
    assert result.exit_code == 2 and "unknown source 'shp'" in result.output


def test_simulate_exits_1_naming_the_missing_path_and_what_is_there(tmp_path):
    payload = tmp_path / "order.json"
    payload.write_text(json.dumps({"id": 1, "status": "completed", "customer": {"email": "a@b.test"}, "billing": {"email": None},
                                   "line_items": [{"sku": "COURSE-42"}]}))
    shutil.copytree(EXAMPLE_RULES, tmp_path / "rules")
    shop = tmp_path / "rules" / "shop.yaml"
    shop.write_text(shop.read_text().replace("{{ body.billing.email | lower }}", "{{ body.buyer.email | lower }}")
                    .replace("      - path: body.billing.email\n        exists: true\n", ""))
    result = run("simulate", "shop", str(payload), "-H", "X-WC-Webhook-Topic: order.updated", "--rules", str(tmp_path / "rules"))
    assert result.exit_code == 1, result.output
    assert "field email: body.buyer is missing; body has: billing, customer, id, line_items, status" in result.output
    assert "1 matched rule(s) cannot render their actions" in result.output


def test_simulate_and_test_read_a_stored_delivery(client, redis_url, lms_env):
    from tests.signing import woo_post

    order = {"id": 7, "status": "completed", "billing": {"email": "Kim@Example.com", "first_name": "Kim"},
             "line_items": [{"sku": "COURSE-7"}]}
    delivery = client.post("/hooks/shop", **woo_post(order)).get_json()["delivery_id"]
    env = {**lms_env, "REDIS_URL": redis_url}
    simulated = run("simulate", "--delivery", delivery, "--rules", str(EXAMPLE_RULES), env=env)
    assert simulated.exit_code == 0, simulated.output
    assert "MATCH enroll-buyer-on-completed-order" in simulated.output
    assert 'coursebox.create_user {"email": "kim@example.com"' in simulated.output
    entry = run("test", str(EXAMPLE_RULES), "--from-delivery", delivery, env=env)
    assert entry.exit_code == 0, entry.output
    assert entry.output.startswith("# paste under tests:")
    import yaml

    [test] = yaml.safe_load(entry.output)
    assert test["source"] == "shop" and test["event"] == "order.updated" and test["body"] == order
    assert test["expect"] == {"rules": ["enroll-buyer-on-completed-order"], "actions": [
        {"action": "create_user", "with": {"email": "kim@example.com", "first_name": "Kim", "last_name": ""}},
        {"action": "enroll", "with": {"course_id": 7, "user_id": "<learner id>"}}]}
    # The entry is a working test: pasted into a rule file, it passes.
    folder = tmp = EXAMPLE_RULES.parent / f"pasted-{delivery}"
    shutil.copytree(EXAMPLE_RULES, tmp)
    try:
        (folder / "pasted.yaml").write_text("tests:\n" + "\n".join(entry.output.splitlines()[1:]) + "\n")
        tested = run("test", str(folder))
        assert tested.exit_code == 0 and f"ok   {folder / 'pasted.yaml'}:2: delivery {delivery}" in tested.output, tested.output
    finally:
        shutil.rmtree(folder)
    missing = run("simulate", "--delivery", "nope", "--rules", str(EXAMPLE_RULES), env=env)
    assert missing.exit_code == 2 and "no delivery 'nope'" in missing.output


def test_a_test_can_read_its_body_from_a_payload_file(tmp_path):
    shutil.copytree(EXAMPLE_RULES, tmp_path / "rules")
    (tmp_path / "payloads").mkdir()
    (tmp_path / "payloads" / "order.json").write_text(json.dumps(
        {"id": 9, "status": "completed", "billing": {"email": "Lu@Example.com"}, "line_items": [{"sku": "COURSE-13"}]}))
    (tmp_path / "payloads" / "order.txt").write_text("event=order.success&base_product=6&customer%5Bemail%5D=lu%40example.com")
    (tmp_path / "rules" / "payloads.yaml").write_text("""
tests:
  - name: a JSON payload file
    source: shop
    headers: {X-WC-Webhook-Topic: order.updated}
    payload: ../payloads/order.json
    expect:
      rules: [enroll-buyer-on-completed-order]
      actions:
        - {action: create_user, with: {email: lu@example.com}}
        - {action: enroll, with: {course_id: 13}}
  - name: a form payload file
    source: thrivecart
    payload: ../payloads/order.txt
    expect:
      rules: [thrivecart-order-enrolls-the-customer]
      actions:
        - {action: create_user, with: {email: lu@example.com}}
        - {action: enroll, with: {course_id: 13}}
""")
    result = run("test", str(tmp_path / "rules"))
    assert result.exit_code == 0, result.output
    assert "ok   " in result.output and "payloads.yaml:3: a JSON payload file" in result.output
    assert "payloads.yaml:12: a form payload file" in result.output
