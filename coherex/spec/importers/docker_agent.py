"""Docker's agent runtime (cagent) YAML -> one `coherex/v1` spec, for `coherex pull` of its artifacts.

What Docker's runtime pushes (`cagent push agent.yaml REF`, read from its source): an OCI image
manifest whose config has media type `application/vnd.docker.cagent.config.v1+json` (an empty
image config) and one layer `application/yaml` holding the agent file, annotated
`io.docker.cagent.version`. The file (`version: "2"`):

    agents:
      root: {model: openai/gpt-4o | <name in models>, description, instruction, toolsets, sub_agents}
    models: {<name>: {provider, model, temperature, max_tokens}}
    metadata: {author, license, version, readme}

The root agent (`root`, else the first) becomes the spec: its instruction the instructions, its
model the model. Toolsets (MCP servers, shell, filesystem, memory, think, todo) and sub-agents have
no direct equivalent here and are listed in the notes, never run: a pulled agent is data.
"""

from __future__ import annotations

from typing import Any

from coherex.spec.documents import SpecFormatError, parse
from coherex.spec.importers import build_spec, one_line, slug

CONFIG_MEDIA_TYPE = "application/vnd.docker.cagent.config.v1+json"
LAYER_MEDIA_TYPE = "application/yaml"
VERSION_ANNOTATION = "io.docker.cagent.version"


def convert(text: str, name: str, where: str = "the agent file") -> tuple[dict[str, Any], list[str]]:
    """(coherex/v1 spec data, notes on what did not map)."""
    doc = parse(text, "yaml", where)
    agents = doc.get("agents")
    if not isinstance(agents, dict) or not agents:
        raise SpecFormatError(f"{where}: not a Docker agent file: no 'agents' mapping")
    key = "root" if "root" in agents else next(iter(agents))
    agent = agents[key]
    if not isinstance(agent, dict):
        raise SpecFormatError(f"{where}: agents.{key} is not a mapping")
    notes: list[str] = []
    instruction = str(agent.get("instruction") or "").strip()
    description = str(agent.get("description") or "").strip()
    if not instruction:
        instruction = description or "Help the user."
        notes.append(f"agents.{key} has no instruction; its description is used instead")
    body: dict[str, Any] = {"instructions": instruction}
    models = doc.get("models")
    model = _model(agent.get("model"), models if isinstance(models, dict) else {}, notes)
    if model:
        body["model"] = model
    for i, toolset in enumerate(agent.get("toolsets") or []):
        kind = toolset.get("type") if isinstance(toolset, dict) else toolset
        ref = toolset.get("ref") or toolset.get("command") if isinstance(toolset, dict) else None
        notes.append(
            f"agents.{key}.toolsets[{i}] ({kind}{f' {ref}' if ref else ''}) has no Coherex equivalent "
            "and was left out; add tools from `coherex spec catalogue` instead"
        )
    for other in agent.get("sub_agents") or []:
        notes.append(
            f"sub-agent {other!r} was not imported (import it as its own agent and call it as a tool)"
        )
    for other in agents:
        if other != key and other not in (agent.get("sub_agents") or []):
            notes.append(f"agent {other!r} of the file was not imported (only {key!r} is)")
    meta = doc.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    labels = {"imported-from": "docker-agent"}
    if meta.get("license"):
        labels["license"] = str(meta["license"])[:200]
    spec = build_spec(
        slug(name), body, description=one_line(description, 2000) if description else None, labels=labels
    )
    from coherex.spec import to_data

    return to_data(spec), notes


def _model(value: Any, models: dict[str, Any], notes: list[str]) -> dict[str, Any] | None:
    if not isinstance(value, str) or not value:
        return None
    if value in models and isinstance(models[value], dict):
        m = models[value]
        out: dict[str, Any] = {"name": str(m.get("model") or value)}
        if isinstance(m.get("temperature"), (int, float)):
            out["temperature"] = float(m["temperature"])
        if m.get("provider") and m.get("provider") != "openai":
            notes.append(
                f"model {value!r} is served by {m['provider']!r}; here it runs on the platform's "
                "OpenAI-compatible endpoint"
            )
        return out
    provider, _, name = value.partition("/")
    if not name:
        return {"name": provider}
    if provider != "openai":
        notes.append(
            f"model {value!r}: provider {provider!r} becomes the platform's OpenAI-compatible endpoint"
        )
    return {"name": name}
