"""`bridge check` catches the mistakes that load fine and then never work, each with file:line and the fix."""

import textwrap

import pytest
from click.testing import CliRunner

from bridge.cli import cli
from tests.rule_files import write_rules

SHOPIFY = """
sources:
  shop:
    type: shopify
    secret: ${SHOPIFY_SECRET}
rules:
  - name: paid
    source: shop
    event: orders/paid
    actions:
      - connection: coursebox
        action: create_user
        with:
          email: "{{ body.email }}"
"""


def check(folder, *options, env=None):
    return CliRunner().invoke(cli, ["check", *options, str(folder)], env={"SHOPIFY_SECRET": "s3cret-value", **(env or {})})


def write(tmp_path, text, env_file="shop.yaml"):
    return write_rules(tmp_path / "rules", {env_file: text})


def test_the_base_file_is_clean(tmp_path, lms_env):
    result = check(write(tmp_path, SHOPIFY), env=lms_env)
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output


@pytest.mark.parametrize("before, after, line, said", [
    ("secret: ${SHOPIFY_SECRET}", "secret: $SHOPIFY_SECRET", "4:5",
     "$SHOPIFY_SECRET is not substituted: only ${SHOPIFY_SECRET} reads the environment, so 'secret' is the text "
     "'$SHOPIFY_SECRET'; fix: write ${SHOPIFY_SECRET}"),
    ("event: orders/paid", "event: order/paid", "8:5", "rule 'paid': shopify never sends event 'order/paid'; fix: write event: orders/paid"),
    ('email: "{{ body.email }}"', "email: {{ body.email }}", "13:19",
     'values that start with {{ must be quoted (YAML reads { as a mapping); fix: write email: "{{ body.email }}"'),
    ('email: "{{ body.email }}"', 'email: "{{ customer.email }}"', "13:11",
     "rule 'paid', action 1: field email: reads 'customer', which a template cannot see"),
    ("    event: orders/paid\n", "    event: orders/paid\n    when: [{path: financial_status, equals: paid}]\n", "9:13",
     "rule 'paid': path 'financial_status' never holds a value: a path starts with body, headers, query, event, "
     "source, delivery_id, sender_id, received_at; fix: write path: body.financial_status"),
    ("    event: orders/paid\n", "    event: orders/paid\n    when: [{path: steps.x.id, exists: true}]\n", "9:13",
     "cannot see (they are decided before any action runs); fix: move the condition to the action's when:"),
    ("        with:\n", "        for_each: body.line_items\n        with:\n", "12:9",
     "rule 'paid', action 1: for_each 'body.line_items' is text, not a list; fix: write for_each: \"{{ body.line_items }}\""),
    ('email: "{{ body.email }}"', 'email: "{{ item.email }}"', "13:11", "reads 'item', but only an action with for_each has an item"),
])
def test_each_silent_mistake_is_an_error_with_its_fix(tmp_path, lms_env, before, after, line, said):
    assert before in SHOPIFY
    folder = write(tmp_path, SHOPIFY.replace(before, after))
    result = check(folder, env=lms_env)
    assert result.exit_code == 1, result.output
    assert f"{folder / 'shop.yaml'}:" in result.output
    lines = [text for text in result.output.splitlines() if said in text]
    assert lines, result.output
    assert lines[0].startswith(f"{folder / 'shop.yaml'}:{line}: "), lines[0]


@pytest.mark.parametrize("before, after, said", [
    ("event: orders/paid", "event: orders/refunded_twice",
     "'orders/refunded_twice' is not an event name the bridge knows shopify to send (read from the X-Shopify-Topic header)"),
    ("    event: orders/paid\n", "    event: orders/paid\n    when: [{path: body.email, equals: '{{ body.x }}'}]\n",
     "equals compares with the text '{{ body.x }}': conditions do not render templates"),
])
def test_warnings_pass_unless_strict(tmp_path, lms_env, before, after, said):
    folder = write(tmp_path, SHOPIFY.replace(before, after))
    result = check(folder, env=lms_env)
    assert result.exit_code == 0, result.output
    assert "; 1 warning(s)" in result.output
    [warning] = [text for text in result.output.splitlines() if "warning:" in text]
    assert warning.startswith(f"{folder / 'shop.yaml'}:") and said in warning and "; fix: " in warning
    strict = check(folder, "--strict", env=lms_env)
    assert strict.exit_code == 1 and "1 warning(s) in" in strict.output and "--strict" in strict.output


def test_a_closed_event_list_names_every_event(tmp_path, lms_env):
    folder = write_rules(tmp_path / "rules", {"hr.yaml": """
        sources:
          bamboo: {type: bamboohr, secret: s3cret-value}
        rules:
          - name: hires
            source: bamboo
            event: [employee.updated, employee.hired]
            actions: [{connection: coursebox, action: create_user, with: {email: a@b.test}}]
        """})
    result = check(folder, "--strict", env=lms_env)
    assert result.exit_code == 1
    assert ("warning: rule 'hires': bamboohr sends no event 'employee.hired' (it names events in the body's type, or "
            "each legacy employees[].action: employee.created, employee.updated, employee.deleted)") in result.output
    assert ":6:31: warning:" in result.output  # the second event of the list


def test_an_unbraced_variable_inside_other_text_is_a_warning(tmp_path, lms_env):
    folder = write_rules(tmp_path / "rules", {"api.yaml": """
        connections:
          crm:
            type: http
            url: https://crm.example/api/$TENANT
            auth: none
        """})
    result = check(folder, env=lms_env)
    assert result.exit_code == 0, result.output
    assert "warning: $TENANT in 'url' is not substituted (only ${NAME} is); fix: write ${TENANT}" in result.output


def test_a_missing_payload_file_is_an_error(tmp_path, lms_env):
    folder = write_rules(tmp_path / "rules", {"shop.yaml": SHOPIFY + textwrap.dedent("""
        tests:
          - name: paid
            source: shop
            payload: ../payloads/nope.json
            expect: {rules: [paid]}
        """)})
    result = check(folder, env=lms_env)
    assert result.exit_code == 1
    assert "test 'paid': payload file '../payloads/nope.json' does not exist" in result.output
