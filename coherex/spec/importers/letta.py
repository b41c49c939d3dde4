"""Letta Agent File (`.af`, JSON) -> one spec per agent.

The system prompt and the memory blocks become the instructions (fixed: the agent cannot edit
them here), `llm_config.model` the model, tool rules a paragraph of the instructions. Real .af
files are sometimes a JSON string holding the JSON document (encoded twice); both are read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from coherex.spec.documents import SpecFormatError
from coherex.spec.importers import ImportResult, build_spec, one_line, read_text, slug

_MEMORY_TOOL_TYPES = {
    "letta_core",
    "letta_memory_core",
    "letta_sleeptime_core",
    "letta_multi_agent_core",
    "letta_voice_sleeptime_core",
}
_BUILTIN = {"run_code": "python"}
_MAX_INSTRUCTIONS = 100_000


def _load(path: Path) -> dict[str, Any]:
    text = read_text(path)
    try:
        value: Any = json.loads(text)
        for _ in range(3):  # some exported files are a JSON string of the JSON document
            if not isinstance(value, str):
                break
            value = json.loads(value)
    except json.JSONDecodeError as exc:
        raise SpecFormatError(
            f"{path}: line {exc.lineno}, column {exc.colno}: not a Letta agent file (JSON): {exc.msg}"
        ) from None
    except RecursionError:
        raise SpecFormatError(f"{path}: nested too deeply") from None
    if not isinstance(value, dict) or not isinstance(value.get("agents"), list) or not value["agents"]:
        raise SpecFormatError(f"{path}: not a Letta agent file: no 'agents' list")
    return value


def _rule(rule: dict[str, Any]) -> str | None:
    tool, kind = rule.get("tool_name"), rule.get("type")
    if kind == "run_first":
        return f"Call {tool} first."
    if kind in ("exit_loop", "terminal"):
        return f"Stop after calling {tool}."
    if kind == "constrain_child_tools":
        return f"After {tool}, call only: {', '.join(rule.get('children') or [])}."
    if kind == "conditional":
        cases = "; ".join(
            f"if it returns {k}, call {v}" for k, v in (rule.get("child_output_mapping") or {}).items()
        )
        default = f"; otherwise call {rule['default_child']}" if rule.get("default_child") else ""
        return f"After {tool}: {cases}{default}."
    if kind == "continue_loop":
        return f"After {tool}, keep going."
    if kind == "max_count_per_step":
        return f"Call {tool} at most {rule.get('max_count_limit')} times."
    return None


def import_letta(path: str | Path) -> ImportResult:
    path = Path(path)
    document = _load(path)
    blocks = {b.get("id"): b for b in document.get("blocks") or [] if isinstance(b, dict)}
    tools = {t.get("id"): t for t in document.get("tools") or [] if isinstance(t, dict)}
    result = ImportResult()
    for agent in document["agents"]:
        name = slug(str(agent.get("name") or path.stem))
        warn = result.warnings.append
        # an agent without a system prompt still needs to know what it is for
        sections = [str(agent.get("system") or "").strip() or str(agent.get("description") or "").strip()]
        agent_blocks = [blocks[i] for i in agent.get("block_ids") or [] if i in blocks]
        agent_blocks += [b for b in agent.get("memory_blocks") or [] if isinstance(b, dict)]
        for block in agent_blocks:
            text = f"## Memory: {block.get('label')}"
            if block.get("description"):
                text += f"\n({one_line(str(block['description']))})"
            if str(block.get("value") or "").strip():
                text += f"\n{str(block['value']).strip()}"
            sections.append(text)
        if any(not b.get("read_only") for b in agent_blocks):
            warn(f"{name}: Letta memory blocks are editable by the agent; here they are fixed instructions")
        rules = [r for r in map(_rule, agent.get("tool_rules") or []) if r]
        if rules:
            sections.append("## Tool rules\n" + "\n".join(f"- {r}" for r in rules))
            warn(f"{name}: {len(rules)} tool rule(s) are written into the instructions, not enforced")
        sections = [s for s in sections if s]
        if not sections:
            sections = [f"You are {name}."]
        instructions = "\n\n".join(sections) + "\n"
        if len(instructions) > _MAX_INSTRUCTIONS:
            instructions = instructions[:_MAX_INSTRUCTIONS]
            warn(f"{name}: instructions cut to {_MAX_INSTRUCTIONS} characters")
        body: dict[str, Any] = {"instructions": instructions}
        llm = agent.get("llm_config") or {}
        model_name = llm.get("model") or agent.get("model")
        if model_name:
            model: dict[str, Any] = {"name": str(model_name)}
            if isinstance(llm.get("temperature"), (int, float)) and 0 <= llm["temperature"] <= 2:
                model["temperature"] = llm["temperature"]
            if isinstance(llm.get("max_tokens"), int) and llm["max_tokens"] > 0:
                model["maxTokens"] = llm["max_tokens"]
            body["model"] = model
            provider = llm.get("model_endpoint_type")
            if provider and provider != "openai":
                warn(
                    f"{name}: model {model_name} is served by {provider}; point the LLM settings at an "
                    "OpenAI-compatible endpoint that serves it, or change spec.model.name"
                )
        spec_tools: list[dict[str, Any]] = []
        memory_tools = []
        for tool_id in agent.get("tool_ids") or []:
            tool = tools.get(tool_id) or {}
            tool_name = str(tool.get("name") or tool_id)
            if tool.get("tool_type") in _MEMORY_TOOL_TYPES:
                memory_tools.append(tool_name)
            elif tool_name in _BUILTIN:
                if {"use": _BUILTIN[tool_name]} not in spec_tools:
                    spec_tools.append({"use": _BUILTIN[tool_name]})
            elif tool.get("tool_type") == "custom":
                warn(
                    f"{name}: custom tool {tool_name!r} (Python source) was not imported; "
                    "run its code with the python tool or add it as an integration"
                )
            else:
                warn(f"{name}: Letta tool {tool_name!r} has no equivalent here; not imported")
        if memory_tools:
            warn(
                f"{name}: Letta's memory tools ({', '.join(sorted(memory_tools))}) have no equivalent; not "
                "imported"
            )
        if spec_tools:
            body["tools"] = spec_tools
        if agent.get("messages"):
            warn(f"{name}: the conversation history ({len(agent['messages'])} message(s)) is not imported")
        if agent.get("source_ids") or document.get("files"):
            warn(
                f"{name}: attached files are not imported; add them to a knowledge collection "
                "and list knowledge.search"
            )
        description = one_line(str(agent.get("description") or "")) or None
        result.specs.append(build_spec(name, body, description, {"imported-from": "letta"}))
    return result
