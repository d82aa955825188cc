import pytest

from bridge.errors import TemplateError
from bridge.templating import check_syntax, render_value

CONTEXT = {"body": {"billing": {"email": "Jane@Example.COM"}, "course": 42, "tags": ["a"]}, "steps": {"user": {"id": 7}}}


def test_whole_expression_keeps_its_type():
    assert render_value("{{ body.course }}", CONTEXT) == 42
    assert render_value("{{ body.tags }}", CONTEXT) == ["a"]
    assert render_value("{{ steps.user.id }}", CONTEXT) == 7


def test_filters_and_mixed_text():
    assert render_value("{{ body.billing.email | lower }}", CONTEXT) == "jane@example.com"
    assert render_value("course-{{ body.course }}", CONTEXT) == "course-42"
    assert render_value({"a": ["{{ body.course }}", 1]}, CONTEXT) == {"a": [42, 1]}


def test_missing_field_is_an_error_naming_the_field_unless_defaulted():
    with pytest.raises(TemplateError, match="field email: .*'billing'"):
        render_value({"email": "{{ body.billing.billing }}"}, CONTEXT)
    with pytest.raises(TemplateError, match="field name"):
        render_value({"name": "Dear {{ body.name }}"}, CONTEXT)
    assert render_value("{{ body.name | default('friend') }}", CONTEXT) == "friend"


def test_sandbox_blocks_unsafe_access():
    with pytest.raises(TemplateError):
        render_value("{{ body.__class__.__mro__ }}", CONTEXT)


def test_syntax_errors_are_reported():
    assert "syntax error" in check_syntax("{{ body.email ")
    assert check_syntax("{{ body.email }}") is None
