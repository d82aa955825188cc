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
    with pytest.raises(TemplateError) as missing:
        render_value({"email": "{{ body.billing.billing }}"}, CONTEXT)
    assert missing.value.message == "field email: body.billing.billing is missing; body.billing has: email"
    with pytest.raises(TemplateError) as missing:
        render_value({"name": "Dear {{ body.name | default('') }} {{ body.buyer.name }}"}, CONTEXT)
    assert missing.value.message == "field name: body.buyer is missing; body has: billing, course, tags"
    assert render_value("{{ body.name | default('friend') }}", CONTEXT) == "friend"


@pytest.mark.parametrize("template, said", [
    ("{{ body.tags[3] }}", "body.tags[3] is missing; body.tags is a list of 1"),
    ("{{ body.course.id }}", "body.course.id is missing; body.course is int '42'"),
    ("{{ billing.email }}", "billing is not defined; a field starts with one of: body, steps"),
    ("{{ steps.contact.email }}", "steps.contact is missing; steps has: user"),
    ("{% if body.vip is defined %}x{% endif %}{{ body.missing }}", "body.missing is missing"),
])
def test_a_missing_path_is_named_with_what_is_there(template, said):
    with pytest.raises(TemplateError) as missing:
        render_value(template, CONTEXT, "f")
    assert said in missing.value.message


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
