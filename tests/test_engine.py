from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.engine import decide_all, job_payload
from bridge.rules import load_rules
from tests.rule_files import EXAMPLE_RULES
from tests.test_rules import ENV

ORDER = {
    "source": "shop", "event": "order.updated", "delivery_id": "d1", "headers": {}, "query": {},
    "body": {"status": "completed", "billing": {"email": "jane@example.com"}, "line_items": [{"sku": "COURSE-42"}]},
}


def test_completed_order_matches_the_shop_rule():
    ruleset = load_rules(EXAMPLE_RULES, ENV)
    [decision] = decide_all(ruleset, ORDER)
    assert decision.matched and decision.reason == "all 3 conditions held"
    payload = job_payload(decision.rule, ORDER, ruleset)
    assert payload["rule"] == "enroll-buyer-on-completed-order" and payload["event"] is ORDER
    assert "password" not in repr(payload)
    assert payload["tables"] == {"courses_by_sku": ruleset.tables["courses_by_sku"]}


def test_non_matching_order_says_which_condition_failed():
    ruleset = load_rules(EXAMPLE_RULES, ENV)
    [decision] = decide_all(ruleset, {**ORDER, "body": {"status": "processing"}})
    assert not decision.matched
    assert decision.to_dict() == {"rule": "enroll-buyer-on-completed-order", "matched": False,
                                  "reason": "body.status is 'processing', expected 'completed'"}


def test_event_name_filters_rules():
    ruleset = load_rules(EXAMPLE_RULES, ENV)
    decisions = decide_all(ruleset, {**ORDER, "source": "hr", "event": "employee.hired"}, every_rule=True)
    assert [(d.rule.name, d.matched) for d in decisions] == [
        ("create-account-on-hire", True), ("remove-account-on-leave", False)]
    assert decisions[1].reason == "event is 'employee.hired', rule is for employee.left"


_values = st.recursive(st.one_of(st.none(), st.integers(), st.text(max_size=5), st.booleans()),
                       lambda inner: st.dictionaries(st.sampled_from(["a", "b", "email", "items"]), inner, max_size=3), max_leaves=6)


@settings(max_examples=300)
@given(body=_values, path=st.lists(st.sampled_from(["a", "b", "email", "items"]), min_size=1, max_size=3),
       lower=st.booleans())
def test_a_plain_path_subject_reads_as_jinja_renders_it(body, path, lower):
    from bridge.engine import _UNREAD, _read_path
    from bridge.errors import TemplateError
    from bridge.templating import render_value

    text = "{{ body." + ".".join(path) + (" | lower" if lower else "") + " }}"
    event = {"body": body, "headers": {}, "query": {}}
    fast = _read_path(text, event)
    if fast is _UNREAD:
        return
    try:
        assert fast == render_value(text, {**event, "steps": {}})
    except TemplateError:
        raise AssertionError(f"read {fast!r} where Jinja fails")
