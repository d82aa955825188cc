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
