"""Templates cannot reach Python internals, and rendering is bounded."""

from __future__ import annotations

import time

import pytest

from engagelab.channels import EmailContent, TemplateError, content_from_dict
from engagelab.channels._templates import MAX_OUTPUT_CHARS, compile_template
from engagelab.errors import EngagelabError

PROFILE = {"profile": {"name": "Ada", "plan": "pro"}, "event": {"product": "tea"}}

ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__.os }}",
    "{{ self._TemplateReference__context }}",
    "{{ self }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ '{0.__class__.__mro__}'.format(profile.name) }}",
    "{{ '{0:>999999999}'.format(1) }}",
    "{{ 'x'.format_map(profile) }}",
    "{{ '%s' % profile.name }}",
    "{{ '%0999999999d' % 1 }}",
    "{{ config }}",
    "{{ config.items() }}",
    "{{ request }}",
    "{{ request.environ }}",
    "{{ namespace() }}",
    "{{ dict(a=1) }}",
    "{{ profile._secret }}",
    "{{ profile.name._x }}",
    "{{ profile['__class__'] }}",
    "{{ profile.name.__class__.__base__ }}",
    "{{ profile.name | attr('__class__') }}",
    "{{ profile.name | map(attribute='__class__') | list }}",
    "{{ (profile.name | string).__len__() }}",
    "{{ _ }}",
    "{{ __builtins__ }}",
    "{% set x = cycler %}{{ x }}",
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "{% include 'other' %}",
    "{% extends 'base' %}",
    "{% import 'x' as y %}",
    "{% for i in range(10**9) %}x{% endfor %}",
    "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
    "{{ 'a' * 10**9 }}",
    "{{ 9 ** 9 ** 9 }}",
    "{{ profile.name | center(10**9) }}",
    "{{ profile.name | wordwrap(1) }}",
    "{{ ('a' * 100000) | list | join('b' * 100000) }}",
    "{{ ('a' * 1000) | replace('a', 'b' * 100000) }}",
    "{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}",  # 10 MB of output
    "{{ profile }}",
    "{{ profile.name.upper.__globals__ }}",
    "{{ profile.name.encode('utf-8') }}",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_escape_attempts_fail_with_a_clear_engagelab_error(source):
    t0 = time.perf_counter()
    with pytest.raises(TemplateError) as info:
        compile_template("email.subject", source).render(PROFILE)
    assert time.perf_counter() - t0 < 2.0
    exc = info.value
    assert isinstance(exc, EngagelabError) and isinstance(exc, ValueError)
    msg = str(exc)
    assert msg.startswith("email.subject")
    assert any(
        w in msg
        for w in (
            "not allowed",
            "unknown variable",
            "use profile.",
            "syntax error",
            "undefined",
            "missing",
        )
    ), msg
    assert "Traceback" not in msg and "<built-in" not in msg and "<class" not in msg


def test_content_built_with_an_escape_attempt_is_rejected_at_build_time():
    with pytest.raises(
        TemplateError, match=r"^email.html: not allowed in a template: attribute '__globals__'"
    ):
        EmailContent(sender="a@b.org", subject="s", html="{{ cycler.__init__.__globals__ }}")
    with pytest.raises(TemplateError, match=r"^push.body: unknown variable 'config'"):
        content_from_dict("push", {"title": "t", "body": "{{ config }}"})


def test_profile_values_are_data_not_templates():
    t = compile_template("sms.text", "Hi {{ profile.name }}")
    assert t.render({"profile": {"name": "{{ 7 * 7 }}{% for x in range(10) %}"}}) == (
        "Hi {{ 7 * 7 }}{% for x in range(10) %}"
    )


def test_allowed_expressions_still_work():
    t = compile_template(
        "push.body",
        "{% if profile.plan == 'pro' %}{{ profile.name | upper }}{% else %}x{% endif %}"
        "{% for i in range(3) %}{{ loop.index }}{% endfor %} {{ event.product | title }}"
        " {{ profile.name.lower() }} {{ 2 ** 10 }} {{ '-' * 3 }} {{ [1, 2] | join(',') }}",
    )
    assert t.render(PROFILE) == "ADA123 Tea ada 1024 --- 1,2"


def test_output_limit_is_exact():
    ok = compile_template("f", "{% for i in range(1000) %}{{ 'x' * 1000 }}{% endfor %}")
    assert len(ok.render({})) == MAX_OUTPUT_CHARS
    too_long = compile_template("f", "{% for i in range(1001) %}{{ 'x' * 1000 }}{% endfor %}")
    with pytest.raises(TemplateError, match="output longer than"):
        too_long.render({})
