from bridge.conditions import MISSING, evaluate, evaluate_all, lookup, same

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
