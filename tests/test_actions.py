"""Running a rule's actions with a fake LMS: steps, loops, per-action conditions, checkpoints."""

import pytest

from bridge.actions import run_actions
from bridge.errors import TemplateError

EVENT = {"source": "shop", "event": "order.updated", "delivery_id": "d1", "headers": {}, "query": {},
         "body": {"email": "a@b.test", "items": [{"sku": "C-42"}, {"sku": "BOOK"}, {"sku": "C-7"}]}}
TABLES = {"courses": {"C-42": 42, "C-7": 7}}


def payload(*actions):
    return {"rule": "r", "delivery_id": "d1", "event": EVENT, "tables": TABLES, "actions": list(actions)}


class FakeLMS:
    def __init__(self):
        self.calls = []

    def perform(self, action, params, label):
        self.calls.append((action["action"], params))
        return {"id": f"id-{len(self.calls)}"}


def no_problems(action, params):
    return [] if params.get("email", "x") else ["missing required parameter 'email'"]


def test_later_steps_use_earlier_results():
    lms = FakeLMS()
    run = run_actions(payload(
        {"connection": "cb", "action": "create_user", "as": "user", "with": {"email": "{{ body.email }}"}},
        {"connection": "cb", "action": "enroll", "with": {"course_id": 1, "user_id": "{{ steps.user.id }}"}},
    ), lms.perform, no_problems)
    assert lms.calls == [("create_user", {"email": "a@b.test"}), ("enroll", {"course_id": 1, "user_id": "id-1"})]
    assert run.steps == {"user": {"id": "id-1"}, "step2": {"id": "id-2"}}


def test_for_each_with_a_table_and_a_per_item_condition():
    lms = FakeLMS()
    run = run_actions(payload({
        "connection": "cb", "action": "enroll", "as": "enrollments",
        "for_each": "{{ body.items }}",
        "when": [{"path": "item.sku", "in": ["C-42", "C-7"]}],
        "with": {"course_id": "{{ item.sku | lookup('courses') }}", "email": "{{ body.email }}"},
    }), lms.perform, no_problems)
    assert lms.calls == [("enroll", {"course_id": 42, "email": "a@b.test"}), ("enroll", {"course_id": 7, "email": "a@b.test"})]
    assert run.steps["enrollments"] == [{"id": "id-1"}, {"id": "id-2"}]
    assert [record.skipped for record in run.records] == ["", "item.sku is 'BOOK', not in ['C-42', 'C-7']", ""]


def test_a_key_missing_from_a_table_fails_naming_it():
    with pytest.raises(TemplateError, match=r"rule 'r', action 1 \(enroll\), delivery d1: field course_id: 'BOOK' is not in table 'courses'"):
        run_actions(payload({"connection": "cb", "action": "enroll", "for_each": "{{ body.items }}",
                             "with": {"course_id": "{{ item.sku | lookup('courses') }}"}}), FakeLMS().perform, no_problems)


def test_for_each_must_give_a_list():
    with pytest.raises(TemplateError, match="for_each gave str, not a list"):
        run_actions(payload({"connection": "cb", "action": "enroll", "for_each": "{{ body.email }}"}), FakeLMS().perform, no_problems)


def test_empty_required_field_never_reaches_the_lms():
    lms = FakeLMS()
    with pytest.raises(TemplateError, match="missing required parameter 'email'"):
        run_actions(payload({"connection": "cb", "action": "create_user", "with": {"email": "{{ body.nothing | default('') }}"}}), lms.perform, no_problems)
    assert lms.calls == []


def test_completed_steps_are_not_performed_again():
    lms = FakeLMS()
    done = {"0": {"id": "earlier"}}
    saved = []
    run_actions(payload(
        {"connection": "cb", "action": "create_user", "as": "user", "with": {"email": "{{ body.email }}"}},
        {"connection": "cb", "action": "enroll", "with": {"course_id": 1, "user_id": "{{ steps.user.id }}"}},
    ), lms.perform, no_problems, done, on_done=lambda key, result: saved.append(key))
    assert lms.calls == [("enroll", {"course_id": 1, "user_id": "earlier"})]
    assert saved == ["1"] and done["1"] == {"id": "id-1"}
