import pytest

from bridge.errors import TemplateError
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import TemplateSyntaxError

from bridge.templating import check_syntax, environment, render_value

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


_names = st.sampled_from(["body", "item", "steps", "a_1", "email", "not", "in", "if", "true", "none", "x"])
_literals = st.one_of(st.integers(-5, 500).map(str), st.sampled_from(["'c'", '"d e"', "'%'", "'{'", "1.5", "'in'", "''"]))
_filters = st.sampled_from(["lower", "default", "lookup", "date", "nosuch", "first_name", "upper"])


@st.composite
def _field_templates(draw):
    text = draw(_names) + "".join(draw(st.lists(st.one_of(_names.map(".{}".format), st.sampled_from(["[0]", "['k']", "[ 3 ]"])), max_size=3)))
    for name in draw(st.lists(_filters, max_size=3)):
        args = draw(st.lists(_literals, max_size=2))
        text += f" | {name}" + (f"({', '.join(args)})" if args or draw(st.booleans()) else "")
    return draw(st.sampled_from(["{{ %s }}", "{{%s}}", "{{ %s }} ", "x {{ %s }}", "{{ %s"])) % text


@settings(max_examples=400)
@given(_field_templates())
def test_checking_a_field_agrees_with_compiling_it(text):
    try:
        environment().from_string(text)
        compiles = True
    except TemplateSyntaxError:
        compiles = False
    assert (check_syntax(text) is None) == compiles, text
