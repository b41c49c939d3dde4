"""The data source types Coherex knows, by name."""

from __future__ import annotations

from coherex.errors import UserError
from coherex.integrations.base import Action, SourceType
from coherex.integrations.github import GITHUB
from coherex.integrations.gmail import GMAIL
from coherex.integrations.http_api import HTTP_API
from coherex.integrations.model import MODEL
from coherex.integrations.postgres import POSTGRES
from coherex.integrations.slack import SLACK
from coherex.spec.catalogue import closest

SOURCE_TYPES: dict[str, SourceType] = {t.name: t for t in (SLACK, GITHUB, GMAIL, HTTP_API, POSTGRES, MODEL)}


def source_type(name: str) -> SourceType:
    try:
        return SOURCE_TYPES[name]
    except KeyError:
        near = closest(name, list(SOURCE_TYPES))
        raise UserError(
            f"There is no data source type {name!r}.",
            hint=(f"Did you mean {near[0]!r}? " if near else "") + f"Types: {', '.join(SOURCE_TYPES)}.",
        ) from None


def find_action(tool_name: str) -> tuple[SourceType, Action]:
    for kind in SOURCE_TYPES.values():
        if tool_name in kind.actions:
            return kind, kind.actions[tool_name]
    raise UserError(f"{tool_name!r} is not an integration tool.")
