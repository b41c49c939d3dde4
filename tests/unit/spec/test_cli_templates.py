from __future__ import annotations

from coherex.spec import validate


def test_templates_list_and_show(cli):
    listed = cli("templates", "list")
    assert listed.code == 0 and "email-digest" in listed.out
    shown = cli("templates", "show", "csv-analysis")
    assert shown.code == 0 and validate(shown.out).ok


def test_unknown_template_suggests_the_closest(cli):
    result = cli("templates", "show", "email")
    assert result.code == 1
    assert "no template named 'email'" in result.err and "email-digest" in result.err
