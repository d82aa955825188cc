import pytest

from bridge.conditions import MISSING, evaluate, evaluate_all, lookup, pattern_problem, same

EVENT = {
    "source": "shop",
    "event": "order.updated",
    "headers": {"x-wc-webhook-topic": "order.updated"},
    "body": {"status": "completed", "total": "49.00", "line_items": [{"sku": "COURSE-42"}], "note": None},
}


def test_lookup_dotted_paths_with_indexes_and_header_case():
    assert lookup(EVENT, "body.line_items.0.sku") == "COURSE-42"
    assert lookup(EVENT, "body.line_items[0].sku") == "COURSE-42"
    assert lookup(EVENT, "headers.X-WC-Webhook-Topic") == "order.updated"
    assert lookup(EVENT, "body.line_items.5.sku") is MISSING
    assert lookup(EVENT, "body.status.deeper") is MISSING
    assert lookup(EVENT, "body.line_items.first") is MISSING


def test_same_compares_form_strings_with_numbers():
    assert same("42", 42) and same(42, "42.0") and same(49.0, "49.00")
    assert not same("abc", 1)
    assert same(True, "true") and not same(True, 1) and not same(1, True)


def test_equals_in_exists_with_reasons():
    assert evaluate({"path": "body.status", "equals": "completed"}, EVENT).held
    outcome = evaluate({"path": "body.status", "equals": "processing"}, EVENT)
    assert not outcome.held and outcome.reason == "body.status is 'completed', expected 'processing'"
    assert evaluate({"path": "body.total", "in": [49, 99]}, EVENT).held
    assert not evaluate({"path": "body.missing", "in": ["x"]}, EVENT).held
    assert evaluate({"path": "body.status", "exists": True}, EVENT).held
    assert evaluate({"path": "body.note", "exists": False}, EVENT).held
    assert evaluate({"path": "body.nothing", "exists": False}, EVENT).reason == "body.nothing is missing"


def test_missing_path_is_false_never_an_error():
    outcome = evaluate({"path": "body.billing.email", "equals": "x"}, EVENT)
    assert not outcome.held and "missing" in outcome.reason


def test_evaluate_all_reports_first_failure():
    conditions = [{"path": "body.status", "equals": "completed"}, {"path": "body.total", "equals": 10}]
    outcome = evaluate_all(conditions, EVENT)
    assert not outcome.held and outcome.reason.startswith("body.total")
    assert evaluate_all(conditions[:1], EVENT).reason == "all 1 conditions held"
    assert evaluate_all([], EVENT).held


ORDER = {"body": {"total": "120.50", "email": "ann@test.com", "tags": ["vip", "b2b"], "created": "2026-11-25",
                  "items": [{"sku": "BOOK-1", "qty": 1}, {"sku": "COURSE-42", "qty": "2"}]}}


def test_comparison_operators_compare_numbers_in_text():
    assert evaluate({"path": "body.total", "gt": 100}, ORDER).held
    assert evaluate({"path": "body.total", "lte": "120.5"}, ORDER).held
    assert not evaluate({"path": "body.total", "lt": 100}, ORDER).held
    assert evaluate({"path": "body.created", "gte": "2026-01-01"}, ORDER).held  # ISO dates compare as text
    assert not evaluate({"path": "body.email", "gt": 5}, ORDER).held


def test_text_and_list_operators():
    assert evaluate({"path": "body.email", "ends_with": "@test.com"}, ORDER).held
    assert evaluate({"path": "body.email", "starts_with": "ann"}, ORDER).held
    assert evaluate({"path": "body.email", "contains": "@"}, ORDER).held
    assert evaluate({"path": "body.tags", "contains": "vip"}, ORDER).held
    assert evaluate({"path": "body.email", "matches": r"^[a-z]+@"}, ORDER).held
    assert evaluate({"path": "body.email", "not_equals": "bob@test.com"}, ORDER).held
    assert evaluate({"path": "body.total", "not_in": [1, 2]}, ORDER).held
    assert not evaluate({"path": "body.missing", "not_in": [1, 2]}, ORDER).held


def test_groups_combine_and_explain():
    condition = {"any": [{"path": "body.total", "gt": 500}, {"path": "body.tags", "contains": "gold"}]}
    outcome = evaluate(condition, ORDER)
    assert not outcome.held
    assert outcome.reason == "none of: body.total is '120.50', not > 500; body.tags is ['vip', 'b2b'], does not contain 'gold'"
    assert evaluate({"not": condition}, ORDER).held
    assert evaluate({"all": [{"path": "body.total", "gt": 1}, {"not": {"path": "body.x", "exists": True}}]}, ORDER).held


def test_any_item_matches_an_element_of_a_list():
    condition = {"path": "body.items", "any_item": [{"path": "sku", "starts_with": "COURSE-"}, {"path": "qty", "gte": 2}]}
    assert evaluate(condition, ORDER).reason == "body.items[1] matched: all 2 conditions held"
    assert not evaluate({"path": "body.items", "any_item": [{"path": "sku", "equals": "X"}]}, ORDER).held
    assert evaluate({"path": "body.tags", "any_item": [{"path": ".", "equals": "b2b"}]}, ORDER).held
    assert evaluate({"path": "body.email", "any_item": [{"path": ".", "equals": "x"}]}, ORDER).reason.endswith("not a list")


def test_in_table_tests_keys_of_a_rule_table():
    tables = {"courses": {"COURSE-42": 42}}
    condition = {"path": "body.items", "any_item": [{"path": "sku", "in_table": "courses"}]}
    assert evaluate(condition, ORDER, tables).held
    outcome = evaluate({"path": "body.items.0.sku", "in_table": "courses"}, ORDER, tables)
    assert not outcome.held and outcome.reason == "body.items.0.sku is 'BOOK-1', not in table 'courses'"


def test_matches_runs_on_re2_in_linear_time_on_a_redos_pattern():
    # With Python's re this search backtracks 2**50 times; RE2 answers at once.
    outcome = evaluate({"path": "body.note", "matches": r"^(a+)+$"}, {"body": {"note": "a" * 50 + "!"}})
    assert not outcome.held and "does not match" in outcome.reason
    assert evaluate({"path": "body.sku", "matches": r"(?i)^course-\d+$"}, {"body": {"sku": "COURSE-42"}}).held


@pytest.mark.parametrize(("pattern", "reason"), [
    (r"(a)\1", "invalid escape sequence: \\1"),
    (r"(?=a)b", "invalid perl operator: (?="),
    (r"a\Z", "invalid escape sequence: \\Z"),
    ("(", "missing ): ("),
])
def test_patterns_re2_cannot_run_are_named_with_the_reason(pattern, reason):
    problem = pattern_problem(pattern)
    assert problem.startswith(f"bad regular expression {pattern!r}: {reason}") and "RE2" in problem
    assert pattern_problem(r"^VIP-\d{2,}\z") is None
