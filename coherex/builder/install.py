"""Installing an agent from an OCI registry in a conversation: "install this agent from
ghcr.io/acme/inbox-digest:1.2". The request is recognised by the platform (any model, the offline
one too), the artifact inspected through the distribution service (nothing saved), and the person
shown what the agent does, its tools, what to connect and its signature status. Only a confirm
saves it, pulling the exact digest that was shown (`coherex.distribution.service.pull`: the
team's signature policy and every check of a CLI pull apply).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from coherex.builder.draft import Connection, Draft
from coherex.builder.summary import summarize
from coherex.distribution.registry import Reference
from coherex.errors import CoherexError, UserError
from coherex.spec import parse

if TYPE_CHECKING:
    from coherex.builder.session import BuilderSession
    from coherex.distribution.service import PullResult

# "install (this|the|an) agent from REF", "install REF", "pull the agent REF", "add … from REF"
_REQUEST = re.compile(
    r"^\s*(?:please\s+)?(?:install|pull|import)\b(?:\s+(?:this|the|an?|that|my))?(?:\s+agent)?"
    r"(?:\s+(?:from|at))?\s+`?(?P<ref>[^\s`]+?)`?[\s.!]*$",
    re.IGNORECASE,
)


def install_reference(text: str) -> str | None:
    """The registry reference of an install request, else None (any other message). Only a text
    naming a registry host (`host/…`) counts: "install pandas" is a request for the builder."""
    match = _REQUEST.match(text.strip())
    if match is None:
        return None
    try:
        Reference.parse(match["ref"])
    except UserError:
        return None
    return match["ref"]


@dataclass
class InstallPreview:
    """What an artifact holds, as the person sees it before saving it."""

    ref: str  # pinned: registry/repository[:tag]@sha256:…
    digest: str
    name: str
    summary: str  # what the agent does, in plain words (its name and description first)
    tools: list[str]  # "gmail.list_unread (work-mail)", …
    signature: str  # "verified (key …)", "unsigned", "signed, not verified: …"
    verified: bool = False
    signature_required: bool = False
    connections: list[Connection] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def installable(self) -> bool:
        """Nothing stands in the way of saving it: valid, connected, and signed as the team requires."""
        return not self.problems and not self.connections and (self.verified or not self.signature_required)

    def text(self, team: str | None = None) -> str:
        """The preview in Markdown (`team`: the slug connect links use)."""
        lines = [f"The agent at `{self.ref}`:", "", self.summary or f"**{self.name}**"]
        if self.tools:
            lines += ["", "**Tools:** " + ", ".join(f"`{t}`" for t in self.tools)]
        lines += ["", f"**Signature:** {self.signature}"]
        if self.signature_required and not self.verified:
            lines.append(
                "This team only installs agents with a valid signature from one of its trusted keys "
                "(`coherex registry trust NAME KEY.pub`, team admins)."
            )
        if self.files:
            lines += ["", "**Files:** " + ", ".join(self.files)]
        if self.notes:
            lines += ["", "**Imported:**", *(f"- {n}" for n in self.notes)]
        if self.problems:
            lines += ["", "**It cannot be saved as it is:**", *(f"- {p}" for p in self.problems)]
        if self.connections:
            lines += [
                "",
                "**Connect before installing:**",
                *(f"- {c.instructions(team)}" for c in self.connections),
            ]
            lines.append("\nThen ask again to install it.")
        if self.installable:
            lines += ["", "Nothing is saved until you confirm with **Install**."]
        return "\n".join(lines)


async def preview(session: BuilderSession, ref: str) -> InstallPreview:
    """Inspect `ref` (nothing is saved) and check its spec against the team's data."""
    from coherex.distribution.service import inspect

    found = await inspect(session.db, session.identity, session.team_id, ref)
    data = parse(found["spec"], "yaml", found["ref"])
    if not isinstance(data, dict):
        raise UserError(f"The spec in {found['ref']} is not a YAML mapping; it cannot be installed.")
    draft = Draft.check(data, await session._refs())
    pinned = str(Reference.parse(found["ref"]).with_digest(found["digest"]))
    sig = found["signature"]
    common = {
        "signature": str(sig["summary"]),
        "verified": bool(sig["verified"]),
        "signature_required": bool(found["signature_required"]),
        "notes": list(found.get("import_notes") or []),
        "files": list(found.get("files") or []),
    }
    if not draft.valid:
        name = str((found.get("config") or {}).get("name") or draft.name or ref)
        problems = [str(p) for p in draft.problems]
        return InstallPreview(pinned, found["digest"], name, "", [], problems=problems, **common)
    spec = draft.spec
    tools = [t.use + (f" ({t.dataSource})" if t.dataSource else "") for t in spec.spec.tools or []]
    return InstallPreview(
        pinned,
        found["digest"],
        spec.metadata.name,
        summarize(spec),
        tools,
        connections=draft.connections,
        **common,
    )


async def install(session: BuilderSession, pinned_ref: str) -> PullResult:
    """Save the artifact shown in a preview (its exact digest) and open it as the conversation's agent."""
    from coherex.distribution.service import pull

    if Reference.parse(pinned_ref).digest is None:
        raise UserError(f"{pinned_ref!r} is not pinned by digest; ask to install it again to see it first.")
    result = await pull(session.db, session.identity, session.team_id, pinned_ref)
    try:
        await session.open_agent(result.agent)
    except CoherexError:  # saved; only opening it as the draft failed
        session.discard()
    return result
