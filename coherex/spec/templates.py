"""The template library: ready-to-run specs in the repository's `templates/` directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from coherex import resources
from coherex.errors import NotFound
from coherex.spec.catalogue import closest
from coherex.spec.documents import parse

TEMPLATES_DIR = resources.path("templates")


@dataclass(frozen=True)
class Template:
    name: str
    description: str
    path: Path

    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")


def list_templates(directory: Path = TEMPLATES_DIR) -> list[Template]:
    result = []
    for path in sorted(directory.glob("*.yaml")):
        metadata = parse(path.read_bytes(), "yaml").get("metadata") or {}
        result.append(Template(path.stem, str(metadata.get("description", "")), path))
    return result


def get_template(name: str, directory: Path = TEMPLATES_DIR) -> Template:
    templates = {t.name: t for t in list_templates(directory)}
    if name not in templates:
        close = closest(name, list(templates))
        hint = (
            f"did you mean {', '.join(close)}?" if close else f"templates: {', '.join(templates) or 'none'}"
        )
        raise NotFound(
            f"no template named {name!r}", hint=hint + " (list them with `coherex templates list`)"
        )
    return templates[name]
