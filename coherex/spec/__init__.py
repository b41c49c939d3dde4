"""The agent spec `coherex/v1`: models, safe YAML/JSON load and dump, validation, JSON Schema.

Imports nothing of Coherex but `coherex.errors`, and the tool providers (coherex/tools/registry.py)
when the catalogue is first read: the store, runtime and builder build on it.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from coherex.spec.catalogue import ToolInfo, get_tool
from coherex.spec.documents import MAX_BYTES, Format, SpecFormatError, dump_json, dump_yaml, parse
from coherex.spec.models import API_VERSION, KIND, AgentSpec, ToolRef
from coherex.spec.validation import (
    Problem,
    SpecInvalid,
    ValidationReport,
    load_spec,
    placeholders,
    render_instructions,
    validate,
)

SCHEMA_ID = "https://coherex.dev/schema/coherex-v1.schema.json"

__all__ = [
    "API_VERSION",
    "KIND",
    "AgentSpec",
    "Format",
    "Problem",
    "SpecFormatError",
    "SpecInvalid",
    "ToolInfo",
    "ToolRef",
    "ValidationReport",
    "diff_specs",
    "get_tool",
    "json_schema",
    "load_spec",
    "parse",
    "placeholders",
    "read_file",
    "render_instructions",
    "to_data",
    "to_json",
    "to_yaml",
    "validate",
]


def to_data(spec: AgentSpec) -> dict[str, Any]:
    """Plain data as written in files: aliases, and only the fields that were set."""
    return spec.model_dump(mode="json", by_alias=True, exclude_unset=True)


def to_yaml(spec: AgentSpec) -> str:
    return dump_yaml(to_data(spec))


def to_json(spec: AgentSpec) -> str:
    return dump_json(to_data(spec))


def read_file(path: str | Path) -> bytes:
    """The bytes of a spec file, refusing a file too large before reading it."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise SpecFormatError("no such file") from None
    except IsADirectoryError:
        raise SpecFormatError("is a directory, not a spec file") from None
    except OSError as exc:
        raise SpecFormatError(f"cannot read: {exc.strerror}") from None
    if len(data) > MAX_BYTES:
        raise SpecFormatError(
            f"file is too large (more than {MAX_BYTES:,} bytes)",
            hint="specs are small text files; keep large data in a knowledge collection or a data source",
        )
    return data


def json_schema() -> dict[str, Any]:
    """JSON Schema of spec files, for editors (`coherex schema`; committed in schema/)."""
    schema = AgentSpec.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Coherex agent spec (coherex/v1)",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def diff_specs(yaml_a: str, yaml_b: str, label_a: str = "a", label_b: str = "b") -> str:
    """Unified diff of two spec texts (e.g. two versions of an agent); empty when equal."""
    return "".join(
        difflib.unified_diff(
            yaml_a.splitlines(keepends=True),
            yaml_b.splitlines(keepends=True),
            fromfile=label_a,
            tofile=label_b,
        )
    )
