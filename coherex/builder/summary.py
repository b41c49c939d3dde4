"""A plain-language summary of a spec, built from the spec alone (no model): what the agent does,
with which data and permissions, and when it runs."""

from __future__ import annotations

from croniter import croniter

from coherex.llm import model_in_use
from coherex.spec import AgentSpec
from coherex.spec.catalogue import get_tool

_DAYS = {
    "0": "Sunday",
    "1": "Monday",
    "2": "Tuesday",
    "3": "Wednesday",
    "4": "Thursday",
    "5": "Friday",
    "6": "Saturday",
    "7": "Sunday",
    "1-5": "weekday",
    "0-6": "day",
    "*": "day",
}


def describe_cron(cron: str) -> str:
    """'0 8 * * 1-5' → 'every weekday at 08:00'; anything unusual is given as the expression."""
    minute, hour, dom, month, dow = cron.split()
    if minute.isdigit() and hour == "*" and dom == month == dow == "*":
        return f"every hour at :{int(minute):02d}"
    if minute.isdigit() and hour.isdigit() and dom == "*" and month == "*":
        at = f"{int(hour):02d}:{int(minute):02d}"
        if dow in _DAYS:
            return f"every {_DAYS[dow]} at {at}"
        days = [_DAYS.get(d) for d in dow.split(",")]
        if all(days):
            return f"every {', '.join(days)} at {at}"  # type: ignore[arg-type]
    if minute.startswith("*/") and hour == dom == month == dow == "*":
        return f"every {minute[2:]} minutes"
    return f"on the schedule `{cron}`" + ("" if croniter.is_valid(cron) else " (invalid)")


def triggers_text(spec: AgentSpec) -> list[str]:
    lines = []
    for trigger in spec.spec.triggers or []:
        if trigger.schedule:
            lines.append(f"{describe_cron(trigger.schedule.cron)} ({trigger.schedule.timezone})")
        elif trigger.webhook:
            lines.append("when its webhook is called")
        elif trigger.event:
            where = f" matching {trigger.event.filter}" if trigger.event.filter else ""
            lines.append(f"on each `{trigger.event.type}` event from **{trigger.event.source}**{where}")
    return lines


def summarize(spec: AgentSpec, *, model: str | None = None) -> str:
    """Markdown: a few short lines a non-technical person can check before saving. `model`: the
    label of the model its runs use (the team's model; default: the install's)."""
    meta, body = spec.metadata, spec.spec
    lines = [f"**{meta.name}** — {meta.description or 'no description yet'}", ""]
    uses: list[str] = []
    by_source: dict[str, tuple[str, list[str]]] = {}  # data source → (strongest access, what it does there)
    for ref in body.tools or []:
        info = get_tool(ref.use)
        if ref.use == "csv.summarize":
            uses.append("summarises the uploaded CSV with the platform's fixed analysis (in the sandbox)")
        elif ref.use == "python":
            uses.append("runs Python code in an isolated sandbox" + _network(spec))
        elif info and info.uses_collection:
            where = (
                f"the knowledge collection **{ref.collection}**"
                if ref.collection
                else "the team's knowledge base"
            )
            uses.append(f"searches {where}")
        else:
            access = ref.access or (info.access if info else "read")
            what = ref.use.split(".", 1)[-1].replace("_", " ")
            what += "".join(f" ({k} {v})" for k, v in (ref.with_ or {}).items())
            old_access, actions = by_source.get(ref.dataSource or "?", ("read", []))
            by_source[ref.dataSource or "?"] = (
                "write" if "write" in (access, old_access) else "read",
                actions + [what],
            )
    for source, (access, actions) in by_source.items():
        verb = "reads and changes" if access == "write" else "reads"
        uses.append(f"{verb} **{source}** ({', '.join(actions)})")
    uses = list(dict.fromkeys(uses))  # knowledge.answer and knowledge.search read the same collection
    lines.append("**Uses:** " + ("; ".join(uses) if uses else "no tools — it only writes text"))
    runs = triggers_text(spec)
    lines.append("**Runs:** " + (", and ".join(runs) if runs else "only when you start it"))
    if body.inputs:
        parts = [
            f"`{name}`" + (f" (default {decl.default!r})" if decl.default is not None else " (required)")
            for name, decl in body.inputs.items()
        ]
        lines.append("**Inputs:** " + ", ".join(parts))
    limits = spec.limits
    # the offline model when no key is set
    model = model or model_in_use(body.model.name if body.model else None)
    lines.append(
        f"**Limits:** at most {limits.maxSteps} steps, {limits.timeoutSeconds} s and "
        f"${limits.maxCostUsd:g} per run, on {model}"
    )
    return "\n".join(lines)


def _network(spec: AgentSpec) -> str:
    runtime = spec.spec.runtime
    return " with internet access" if runtime and runtime.network else " without internet access"
