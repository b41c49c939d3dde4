"""Which team the chat works in: the person's first team on connect (or the thread's), the team
choice when they belong to several, and switching (`/team SLUG` or the settings panel) with the
draft in progress coming along."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import chainlit as cl

from coherex.builder import BuilderSession
from coherex.chat.context import database, identity, remember
from coherex.chat.data_layer import TEAM_KEY
from coherex.chat.preferences import send_settings
from coherex.errors import CoherexError
from coherex.services.teams import my_teams
from coherex.store.models import Team


async def connect(team_id: UUID | None, state: dict[str, Any] | None = None) -> BuilderSession | None:
    """Open the builder for the signed-in person in `team_id` (else their first team); the settings
    panel offers the team choice when they belong to several, and their time zone."""
    user = cl.user_session.get("user")
    teams = await my_teams(await database(), identity())
    if not teams:
        await cl.Message(
            content="You are not a member of any team yet. Ask an admin to add you: "
            f"`coherex users add {user.identifier} --team TEAM`."
        ).send()
        return None
    team = next((t for t in teams if t.id == team_id), teams[0])
    cl.user_session.set("teams", {t.slug: str(t.id) for t in teams})
    await send_settings([t.slug for t in teams], team.slug)  # the team choice and the time zone
    return await use_team(team, state)


async def use_team(team: Team, state: dict[str, Any] | None = None) -> BuilderSession:
    """Work in `team` from now on; a draft in progress comes along (checked against the team's data)."""
    builder = BuilderSession(await database(), identity(), team.id, team_name=team.name)
    if state:
        await builder.restore(
            {**state, "agent_id": state.get("agent_id") if state.get("team_id") == str(team.id) else None}
        )
    cl.user_session.set("builder", builder)
    cl.user_session.set(TEAM_KEY, str(team.id))
    await remember(builder)
    return builder


def current_slug(builder: BuilderSession) -> str | None:
    """The slug of the builder's team (as the chat knows the person's teams)."""
    teams = cl.user_session.get("teams") or {}  # slug -> id, set when the chat connected
    return next((slug for slug, tid in teams.items() if tid == str(builder.team_id)), None)


async def team_command(slug: str) -> None:
    """`/team`: the person's teams; `/team SLUG`: switch to that one."""
    if slug:
        await switch_team(slug)
        return
    teams = cl.user_session.get("teams") or {}
    current = cl.user_session.get("builder")
    await cl.Message(
        content="Your teams: "
        + ", ".join(f"`{t}`" for t in teams)
        + (f". Working in **{current.team_name}**." if current else ".")
        + " Switch with `/team SLUG`.",
        author="Coherex",
    ).send()


async def switch_team(slug: str) -> None:
    teams = cl.user_session.get("teams") or {}
    if slug not in teams:
        await cl.Message(
            content=f"You are not in a team {slug!r}. Your teams: "
            + ", ".join(f"`{t}`" for t in teams)
            + ".",
            author="Coherex",
        ).send()
        return
    current = cl.user_session.get("builder")
    if current is not None and current.team_id == UUID(teams[slug]):
        await cl.Message(content=f"You are working in team **{current.team_name}**.", author="Coherex").send()
        return
    # asked again: the person may have left the team since the chat connected
    team = next((t for t in await my_teams(await database(), identity()) if str(t.id) == teams[slug]), None)
    if team is None:
        raise CoherexError(f"The team {slug!r} is no longer available to you.")
    builder = await use_team(team, current.state() if current else None)
    await send_settings(list(teams), slug)  # the panel shows the team in use
    await cl.Message(
        content=f"Now working in team **{team.name}**"
        + (f"; the draft **{builder.draft.name}** came along." if builder.draft else "."),
        author="Coherex",
    ).send()
