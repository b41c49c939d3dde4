"""The committed JSON Schema matches the models, and editors using it accept the templates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coherex.spec import json_schema_text
from coherex.spec.templates import TEMPLATES_DIR

COMMITTED = Path(__file__).resolve().parents[3] / "schema" / "coherex-v1.schema.json"


def test_committed_schema_is_up_to_date():
    assert COMMITTED.read_text() == json_schema_text(), (
        "schema/coherex-v1.schema.json is stale; regenerate it with "
        "`python -m coherex schema > schema/coherex-v1.schema.json` and commit it"
    )


def test_schema_accepts_templates_and_rejects_unknown_fields():
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    validator = jsonschema.Draft202012Validator(json.loads(COMMITTED.read_text()))
    for path in TEMPLATES_DIR.glob("*.yaml"):
        assert not list(validator.iter_errors(yaml.safe_load(path.read_text()))), path.name
    assert not validator.is_valid(
        {
            "apiVersion": "coherex/v1",
            "kind": "Agent",
            "metadata": {"name": "a"},
            "spec": {"instructions": "x", "extra": 1},
        }
    )


def test_schema_command_prints_it(cli):
    result = cli("schema")
    assert result.code == 0
    assert json.loads(result.out)["title"].startswith("Coherex agent spec")
