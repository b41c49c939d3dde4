"""Import agents from other platforms (CrewAI, Letta) as `coherex/v1` specs.

Importers build plain spec data and validate it like any file; what has no equivalent here is
not dropped silently but listed in `warnings`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coherex.spec import read_file
from coherex.spec.documents import SpecFormatError, decode
from coherex.spec.models import API_VERSION, KIND, AgentSpec
from coherex.spec.validation import load_spec


@dataclass
class ImportResult:
    specs: list[AgentSpec] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def slug(name: str) -> str:
    """A DNS-label agent name from any name ('Customer Service' -> 'customer-service')."""
    text = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63].strip("-")
    return text or "imported-agent"


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def build_spec(
    name: str, body: dict[str, Any], description: str | None = None, labels: dict[str, str] | None = None
) -> AgentSpec:
    metadata: dict[str, Any] = {"name": name}
    if description:
        metadata["description"] = description
    if labels:
        metadata["labels"] = labels
    return load_spec({"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": body})


def read_text(path: Path) -> str:
    """A source file's text (bounded like spec files); errors name the file."""
    try:
        return decode(read_file(path))
    except SpecFormatError as exc:
        raise SpecFormatError(f"{path}: {exc.message}", hint=exc.hint) from None
