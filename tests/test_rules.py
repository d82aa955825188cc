import shutil
import threading

import pytest

from bridge.embedded import DEMO_SECRETS
from bridge.errors import ConfigErrors
from bridge.rules import LiveRules, load_rules
from tests.processes import wait_for
from tests.rule_files import EXAMPLE_RULES, write_rules

ENV = {
    **DEMO_SECRETS,
    "COURSEBOX_URL": "http://127.0.0.1:9/sandbox/coursebox",
    "COURSEBOX_EMAIL": "a@b.test",
    "COURSEBOX_PASSWORD": "pw-secret",
    "COURSETOOLKIT_URL": "http://127.0.0.1:9/sandbox/coursetoolkit/api",
    "COURSETOOLKIT_API_USER": "u",
    "COURSETOOLKIT_API_KEY": "key-secret",
    "HUBSPOT_TOKEN": "hubspot-token-secret",
    "BAMBOOHR_API_URL": "http://127.0.0.1:9/sandbox/bamboohr/api/gateway.php/acme",
    "BAMBOOHR_API_KEY": "bamboohr-key-secret",
}

GOOD = """
sources:
  shop: {type: woocommerce,
         secret: s3cret}
rules:
  - name: enroll
    source: shop
    event: order.updated
    when:
      - path: body.status
        equals: completed
    actions:
      - connection: coursebox
        action: enroll
        with:
          course_id: 42
          email: "{{ body.billing.email }}"
"""


def errors_of(directory, env=ENV) -> list[str]:
    with pytest.raises(ConfigErrors) as raised:
        load_rules(directory, env)
    return [error.message for error in raised.value.errors]


def test_example_rules_load():
    ruleset = load_rules(EXAMPLE_RULES, ENV)
    assert set(ruleset.sources) == {"shop", "hr", "stripe", "hubspot", "thrivecart", "bamboohr", "shopify", "github",
                                    "signups", "typeform", "gumroad", "hubspot_app", "bamboohr_events"}
    assert len(ruleset.rules) == 18 and len(ruleset.tests) == 36
    assert ruleset.connections["hubspot_api"].spec["url"] == "https://api.hubapi.com"  # the ${VAR:-default}
    assert ruleset.sources["shop"].options == {"secret": DEMO_SECRETS["WOOCOMMERCE_SECRET"]}
    assert ruleset.connections["coursebox"].spec["password"] == "pw-secret"
    assert len(ruleset.version) == 12


def test_a_good_file_loads_with_positions(tmp_path):
    ruleset = load_rules(write_rules(tmp_path, {"shop.yaml": GOOD}), ENV)
    rule = ruleset.rules[0]
    assert (rule.name, rule.events, rule.line) == ("enroll", ("order.updated",), 5)
    assert rule.actions[0]["with"]["course_id"] == 42


def test_unknown_key_names_file_line_and_key(tmp_path):
    write_rules(tmp_path, {"shop.yaml": GOOD.replace("    when:", "    wehn:")})
    [message] = errors_of(tmp_path)
    assert message.startswith(f"{tmp_path / 'shop.yaml'}:8:5: unknown key 'wehn' in rules[0]")


def test_unknown_key_in_a_condition(tmp_path):
    write_rules(tmp_path, {"shop.yaml": GOOD.replace("equals: completed", "equal: completed")})
    [message] = errors_of(tmp_path)
    assert ":10:9: unknown key 'equal'" in message


def test_unknown_source_connection_and_action(tmp_path):
    text = GOOD.replace("source: shop", "source: shp").replace("connection: coursebox", "connection: cursebox")
    write_rules(tmp_path, {"shop.yaml": text})
    messages = errors_of(tmp_path)
    assert any(":6:5: rule 'enroll': unknown source 'shp'; did you mean 'shop'? (known: shop)" in m for m in messages)
    assert any(":12:9: rule 'enroll', action 1: unknown connection 'cursebox'" in m for m in messages)
    write_rules(tmp_path, {"shop.yaml": GOOD.replace("action: enroll", "action: enrol")})
    [message] = errors_of(tmp_path)
    assert ":13:9:" in message and "has no action 'enrol'" in message and "enroll" in message


def test_action_fields_are_checked(tmp_path):
    write_rules(tmp_path, {"shop.yaml": GOOD.replace("course_id: 42", "course: 42")})
    messages = errors_of(tmp_path)
    assert any("course_id" in m and "missing" in m for m in messages)
    assert any("unknown parameter 'course'" in m for m in messages)


def test_template_syntax_error_is_reported(tmp_path):
    write_rules(tmp_path, {"shop.yaml": GOOD.replace("{{ body.billing.email }}", "{{ body.billing.email }")})
    [message] = errors_of(tmp_path)
    assert "field email: template syntax error" in message


def test_unset_environment_variable_is_named(tmp_path):
    write_rules(tmp_path, {"shop.yaml": GOOD})
    env = {k: v for k, v in ENV.items() if k != "COURSEBOX_PASSWORD"}
    [message] = errors_of(tmp_path, env)
    assert "connections.yaml:7:" in message and "COURSEBOX_PASSWORD is not set" in message


def test_env_default_syntax(tmp_path):
    text = "connections:\n  cb:\n    type: coursebox\n    url: ${CB_URL:-http://127.0.0.1:9/cb}\n    email: a@b.test\n    password: x\n"
    write_rules(tmp_path, {"c.yaml": text}, connections=False)
    assert load_rules(tmp_path, {}).connections["cb"].spec["url"] == "http://127.0.0.1:9/cb"


def test_duplicate_keys_and_bad_yaml(tmp_path):
    write_rules(tmp_path, {"shop.yaml": "sources:\n  a:\n    type: generic\n  a:\n    type: generic\n"})
    [message] = errors_of(tmp_path)
    assert message.endswith("shop.yaml:4:3: duplicate key 'a'")
    write_rules(tmp_path, {"shop.yaml": "rules: [\n"})
    [message] = errors_of(tmp_path)
    assert "shop.yaml:2:1: not valid YAML" in message


def test_duplicate_rule_names_across_files(tmp_path):
    write_rules(tmp_path, {"a.yaml": GOOD, "b.yaml": GOOD.split("rules:")[0].replace("shop:", "shop2:") + "rules:" + GOOD.split("rules:")[1]})
    [message] = errors_of(tmp_path)
    assert "b.yaml:5:5:" in message and "rule 'enroll' is already declared in" in message


def test_every_error_is_reported_at_once(tmp_path):
    write_rules(tmp_path, {"a.yaml": GOOD.replace("when:", "whn:"), "b.yaml": "rules:\n  - name: x\n"})
    messages = errors_of(tmp_path)
    assert len(messages) == 3  # unknown key in a.yaml, and source and actions missing in b.yaml


def test_connection_spec_is_validated(tmp_path):
    text = "connections:\n  cb:\n    type: coursebox\n    url: http://127.0.0.1:9\n    email: a@b.test\n    pasword: x\n"
    write_rules(tmp_path, {"c.yaml": text}, connections=False)
    messages = errors_of(tmp_path)
    assert any("c.yaml:6:5:" in m and "unknown key 'pasword'" in m for m in messages)
    write_rules(tmp_path, {"c.yaml": text.replace("pasword: x", "password: 987654321")}, connections=False)
    [message] = errors_of(tmp_path)
    assert "c.yaml:6:5: connection 'cb': 'password'" in message and "987654321" not in message


def test_live_rules_keep_the_last_good_set(tmp_path):
    shutil.copytree(EXAMPLE_RULES, tmp_path / "rules")
    live = LiveRules(tmp_path / "rules", env=ENV, check_every=0)
    first = live.get()
    (tmp_path / "rules" / "shop.yaml").write_text("rules: [\n")
    wait_for(lambda: live.get() is first and live.error is not None, what="the broken edit to be seen")
    assert "shop.yaml" in live.error.message
    (tmp_path / "rules" / "shop.yaml").write_text("{}\n")
    wait_for(lambda: live.get().version != first.version and live.error is None, what="the fixed rules")


def test_a_reload_never_blocks_callers(tmp_path, monkeypatch):
    from bridge import rules

    shutil.copytree(EXAMPLE_RULES, tmp_path / "rules")
    live = LiveRules(tmp_path / "rules", env=ENV, check_every=0)
    first = live.get()
    loading, release = threading.Event(), threading.Event()
    real_load = rules.load_rules

    def slow_load(*args, **kwargs):
        loading.set()
        release.wait(60)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(rules, "load_rules", slow_load)
    (tmp_path / "rules" / "shop.yaml").write_text("{}\n")
    assert live.get() is first  # starts the reload and returns at once
    assert loading.wait(60)
    assert all(live.get() is first for _ in range(100))  # callers go on with the current set meanwhile
    release.set()
    wait_for(lambda: live.get().version != first.version, what="the new rules")


def test_step_used_before_it_exists(tmp_path):
    text = GOOD.replace("          email: \"{{ body.billing.email }}\"", "          user_id: \"{{ steps.lerner.id }}\"")
    write_rules(tmp_path, {"shop.yaml": text})
    [message] = errors_of(tmp_path)
    assert ":16:11: rule 'enroll', action 1: field user_id: step 'lerner' is used before it exists" in message


def test_unknown_table_and_bad_regex_and_condition_shape(tmp_path):
    text = GOOD.replace("course_id: 42", "course_id: \"{{ body.sku | lookup('coures') }}\"").replace(
        "        equals: completed", "        matches: \"(\"\n      - path: body.total\n      - any:\n          - path: body.a\n            exists: true\n        path: body.b")
    write_rules(tmp_path, {"shop.yaml": "tables:\n  courses:\n    A: 1\n" + text.lstrip()})
    messages = errors_of(tmp_path)
    assert any("unknown table 'coures'; did you mean 'courses'?" in m for m in messages)
    assert any(":13:9: rule 'enroll': bad regular expression '(': missing ): (" in m for m in messages)
    assert any(":14:9: rule 'enroll': a condition takes a path and exactly one test" in m for m in messages)
    assert any(":15:9: rule 'enroll': a condition group (any) stands alone" in m for m in messages)


def test_unknown_key_suggests_the_near_miss(tmp_path):
    write_rules(tmp_path, {"shop.yaml": GOOD.replace("    when:", "    wehn:")})
    [message] = errors_of(tmp_path)
    assert "unknown key 'wehn' in rules[0]; did you mean 'when'?" in message


def test_rules_are_indexed_by_source_and_event(tmp_path):
    rules = "".join(f"  - name: r{i}\n    source: shop\n    event: e{i % 3}\n    actions:\n      - connection: coursebox\n        action: get_user\n        with: {{user_id: 1}}\n" for i in range(6))
    rules += "  - name: any-event\n    source: shop\n    actions:\n      - connection: coursebox\n        action: get_user\n        with: {user_id: 1}\n"
    write_rules(tmp_path, {"shop.yaml": "sources:\n  shop:\n    type: woocommerce\n    secret: s\nrules:\n" + rules})
    ruleset = load_rules(tmp_path, ENV)
    assert [rule.name for rule in ruleset.rules_for("shop", "e1")] == ["r1", "r4", "any-event"]
    assert [rule.name for rule in ruleset.rules_for("shop", "nothing")] == ["any-event"]
    assert len(ruleset.rules_for("shop")) == 7


def test_unset_variables_can_be_allowed_for_rule_tests(tmp_path):
    write_rules(tmp_path, {"shop.yaml": GOOD})
    assert load_rules(tmp_path, {}, require_env=False).rules[0].name == "enroll"


def test_live_rules_make_concurrent_first_callers_wait_for_the_first_load():
    from concurrent.futures import ThreadPoolExecutor

    live = LiveRules(EXAMPLE_RULES, env=ENV, check_every=60)
    with ThreadPoolExecutor(max_workers=8) as pool:
        versions = list(pool.map(lambda _: live.get().version, range(32)))
    assert len(set(versions)) == 1


def test_live_rules_without_a_good_set_keep_raising_the_load_errors(tmp_path):
    (tmp_path / "bad.yaml").write_text("rules: [\n")
    live = LiveRules(tmp_path, env=ENV, check_every=60)
    for _ in range(2):
        with pytest.raises(ConfigErrors, match="bad.yaml"):
            live.get()


def test_an_unreadable_rule_file_is_an_error_naming_it(tmp_path):
    write_rules(tmp_path, {"shop.yaml": GOOD})
    (tmp_path / "latin.yaml").write_bytes("# caf\xe9\n".encode("latin-1"))
    [message] = errors_of(tmp_path)
    assert message.startswith(f"{tmp_path / 'latin.yaml'}: cannot be read:")


def test_a_new_secret_in_the_env_file_takes_effect_at_the_next_reload(tmp_path):
    rules = write_rules(tmp_path / "rules", {"shop.yaml": """
        sources:
          shop: {type: woocommerce, secret: "${SHOP_SECRET}"}
    """}, connections=False)
    env_file = tmp_path / ".env"
    live = LiveRules(rules, env={"SHOP_SECRET": "from-the-environment"}, check_every=0, env_file=env_file)
    assert live.get().sources["shop"].options["secret"] == "from-the-environment"
    # A new source whose secret is nowhere yet: the reload fails and keeps the last good set ...
    (rules / "crm.yaml").write_text('sources:\n  crm: {type: hubspot, secret: "${CRM_SECRET}"}\n')
    wait_for(lambda: live.get() and live.error is not None and "CRM_SECRET is not set" in live.error.message, what="the unset secret")
    # ... until the value is there: the env file's change alone reloads, and its values win.
    env_file.write_text("CRM_SECRET=crm-secret\nSHOP_SECRET='from-the-file'\n")

    def reloaded():
        ruleset = live.get()  # looks at the files, and starts a reload when they changed
        return ruleset if live.error is None and "crm" in ruleset.sources else None

    current = wait_for(reloaded, what="the new secret")
    assert current.sources["crm"].options["secret"] == "crm-secret"
    assert current.sources["shop"].options["secret"] == "from-the-file"
