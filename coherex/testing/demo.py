"""`coherex demo seed`: realistic synthetic activity so the dashboard can be seen (and benchmarked)
on a fresh machine — people, agents with several versions (from the template library), data
sources in every state, thousands of executions with their steps and costs (generated in SQL,
in batches), a knowledge collection and audit entries.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from coherex.llm.pricing import price_for
from coherex.spec.documents import dump_yaml, parse
from coherex.spec.templates import list_templates
from coherex.store.db import Database, Identity
from coherex.store.repos.analytics import DemoSeedRepo

DEMO_PASSWORD = "demo password"
MEMBERS = [
    ("maria@demo.coherex.dev", "Maria Analyst", "member"),
    ("jon@demo.coherex.dev", "Jon Ops", "member"),
    ("li@demo.coherex.dev", "Li Viewer", "viewer"),
]
# the model each agent runs on (cycled over the templates), so cost by model has several rows
MODELS = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-5-mini", "gpt-4o-mini", "gpt-4.1"]
TOOLS = [
    "gmail.search_messages",
    "github.list_issues",
    "http.request",
    "knowledge.search",
    "slack.read_channel",
    "python",
]
ERRORS = [
    "RateLimitError: the model provider answered 429 four times (retry budget used up).",
    "ToolFailed: slack.post_message: channel_not_found (#ops-alerts).",
    "Stopped: the run cost $0.5012, reaching limits.maxCostUsd ($0.5).",
    "Stopped after 20 steps without a final answer (limits.maxSteps).",
    "ToolFailed: github.list_issues: 401 Bad credentials (data source team-github).",
    "SandboxError: the code used more than 512 MB of memory.",
]
HANDBOOK = {
    "Expense policy": [
        "Employees may expense travel, meals with customers and software subscriptions approved by their "
        "manager.",
        "Receipts must be uploaded within 30 days. Meals are reimbursed up to 60 EUR per person.",
        "Flights longer than six hours may be booked in premium economy; all other flights in economy.",
    ],
    "On-call handbook": [
        "The on-call engineer acknowledges a page within 15 minutes and opens an incident channel.",
        "Severity 1 incidents need a status page update every 30 minutes until resolved.",
        "After each incident the on-call engineer writes a postmortem within five working days.",
    ],
    "Onboarding guide": [
        "New joiners get a laptop, accounts for Slack, GitHub and Gmail, and a buddy for the first month.",
        "During the first week, read the security policy and finish the privacy training.",
    ],
    "Security policy": [
        "Passwords are stored in the team vault; never paste credentials into chat or tickets.",
        "Laptops use full-disk encryption and lock after five minutes without activity.",
        "Report a suspected phishing email to security within one hour.",
    ],
    "Release process": [
        "Releases ship on Tuesdays and Thursdays after the test suite and the canary deploy pass.",
        "A rollback is started by the release manager when error rates double within an hour.",
    ],
}


@dataclass(frozen=True)
class SeedReport:
    agents: int
    executions: int
    documents: int
    members: int


async def seed(
    db: Database,
    team_id: UUID,
    owner_id: UUID,
    *,
    executions: int = 5000,
    days: int = 30,
    batch: int = 20_000,
    rng: random.Random | None = None,
) -> SeedReport:
    """Fill `team_id` (owned by `owner_id`) with demo activity; `executions` runs over `days` days."""
    rng = rng or random.Random(7)
    system = Identity.system()
    member_ids = [owner_id]
    async with db.session(system) as s:
        for email, name, role in MEMBERS:
            user = await s.users.get_by_email(email) or await s.users.create(
                email, display_name=name, password=DEMO_PASSWORD
            )
            await s.members.add(team_id, user.id, role)  # type: ignore[arg-type]
            if role != "viewer":
                member_ids.append(user.id)

    agent_ids, versions, models, prices = [], [], [], []
    async with db.session(Identity.user(owner_id)) as s:
        for i, template in enumerate(list_templates()):
            spec = parse(template.path.read_bytes(), "yaml")
            spec["spec"]["model"] = {**spec["spec"].get("model", {}), "name": MODELS[i % len(MODELS)]}
            for v in range(1 + i % 3):
                spec["spec"]["limits"] = {**spec["spec"].get("limits", {}), "maxSteps": 10 + 5 * v}
                saved = await s.agents.save_spec(
                    team_id, spec, dump_yaml(spec), message=f"demo version {v + 1}"
                )
            agent_ids.append(saved.agent.id)
            versions.append(saved.agent.current_version)
            models.append(MODELS[i % len(MODELS)])
            prices.append(price_for(models[-1]))
        await _seed_sources(s, team_id, rng)
        documents = await _seed_knowledge(s, team_id)
        for action in ("agent.apply", "agent.run", "data_source.create", "member.add", "api_key.create"):
            await s.audit.record(team_id, action, target_type=action.split(".")[0], details={"demo": True})

    done = 0
    while done < executions:
        n = min(batch, executions - done)
        async with db.session(system) as s:
            await DemoSeedRepo(s.conn, system).executions_batch(
                team_id,
                n=n,
                active=3 if done == 0 else 0,
                days=days,
                agent_ids=agent_ids,
                versions=versions,
                models=models,
                tools=[TOOLS[i % len(TOOLS)] for i in range(len(agent_ids))],
                price_in=[p.input_per_m if p else 0 for p in prices],
                price_out=[p.output_per_m if p else 0 for p in prices],
                member_ids=member_ids,
                errors=ERRORS,
            )
        done += n
    return SeedReport(len(agent_ids), executions, documents, len(member_ids))


async def _seed_sources(s, team_id: UUID, rng: random.Random) -> None:
    now = datetime.now(UTC)
    health = [
        ("work-mail", "gmail", "active", None),
        ("team-slack", "slack", "active", None),
        ("team-github", "github", "failing", "401 Bad credentials: the token was revoked or expired."),
        ("crm-api", "http_api", "disconnected", "The OAuth refresh token was revoked; reconnect the source."),
    ]
    for name, kind, status, error in health:
        source = await s.sources.get_by_name(team_id, name) or await s.sources.create(team_id, name, kind, {})
        await DemoSeedRepo(s.conn, s.identity).set_source_health(
            source.id, status, error, now - timedelta(minutes=rng.randint(1, 90))
        )


async def _seed_knowledge(s, team_id: UUID) -> int:
    collection = await s.knowledge.get_collection(team_id, "handbook") or await s.knowledge.create_collection(
        team_id, "handbook", description="Company handbook (demo)"
    )
    for title, paragraphs in HANDBOOK.items():
        text = "\n\n".join(paragraphs)
        digest = hashlib.sha256(text.encode()).hexdigest()
        doc, created = await s.knowledge.add_document(
            collection,
            source=title.lower().replace(" ", "-") + ".md",
            title=title,
            mime_type="text/markdown",
            content_hash=digest,
            size_bytes=len(text.encode()),
        )
        if created:
            await s.knowledge.add_chunks(
                doc, [(p, hashlib.sha256(p.encode()).hexdigest(), {"title": title}, None) for p in paragraphs]
            )
            await s.knowledge.set_document_status(doc.id, "ready")
    return len(HANDBOOK)
