"""The person's settings in the chat: the settings panel (the team, when they belong to several,
and their time zone) and what saving it does; and the browser's time zone, kept for a person who
has none yet.

The browser's zone comes in a cookie: public/timezone.js (Chainlit's `custom_js`, loaded with the
chat page) sets `coherex_tz` from `Intl.DateTimeFormat().resolvedOptions().timeZone`, and the chat's
websocket, which carries the page's cookies (its sign-in among them), brings it to the chat start.
No endpoint of its own: the socket is signed in already, and nothing else reads the cookie.
"""

from __future__ import annotations

import logging
from urllib.parse import unquote

import chainlit as cl
from chainlit.input_widget import Select, TextInput
from starlette.requests import cookie_parser

from coherex.chat.context import database, identity
from coherex.errors import CoherexError, UserError
from coherex.services.users import remember_browser_timezone, set_my_timezone, timezone_of

log = logging.getLogger(__name__)

#: the cookie public/timezone.js sets
COOKIE = "coherex_tz"


def browser_timezone() -> str | None:
    """The zone the person's browser reported with this chat's connection (unchecked), if any."""
    environ = getattr(cl.context.session, "environ", None) or {}
    header = environ.get("HTTP_COOKIE")
    value = cookie_parser(header).get(COOKIE) if header else None
    return unquote(value)[:80] if value else None


async def adopt_browser_timezone() -> None:
    """At chat start: the browser's zone becomes the person's if they have none stored (one they set
    is never replaced). A failure here only loses the hint; the chat starts anyway."""
    try:
        if zone := await remember_browser_timezone(await database(), identity(), browser_timezone()):
            log.info("time zone %s taken from the browser", zone)
    except CoherexError:
        log.warning("could not keep the browser's time zone", exc_info=True)


async def send_settings(team_slugs: list[str], current: str | None) -> None:
    """The settings panel: the team (for a person in several) and the person's time zone."""
    widgets: list = []
    if len(team_slugs) > 1:
        widgets.append(
            Select(
                id="team",
                label="Team",
                values=team_slugs,
                initial_value=current,
                description="Agents, data and runs of this team (or type /team SLUG).",
            )
        )
    zone = await timezone_of(await database(), identity().user_id)
    widgets.append(
        TextInput(
            id="timezone",
            label="Time zone",
            initial=zone.name if zone.own else "",
            placeholder=zone.name,
            description="Schedules you make run in this time zone: an IANA name such as Europe/Berlin "
            "or America/New_York. Taken from your browser until you set it here.",
        )
    )
    await cl.ChatSettings(widgets).send()


async def settings_updated(values: dict) -> None:
    """The person saved the settings panel: apply what changed (the team, the time zone)."""
    from coherex.chat.teams import current_slug, switch_team

    builder = cl.user_session.get("builder")
    slug = values.get("team")
    if slug and (builder is None or slug != current_slug(builder)):
        await switch_team(slug)
    if "timezone" in values:
        await _timezone_changed(str(values.get("timezone") or ""))


async def _timezone_changed(value: str) -> None:
    from coherex.chat.teams import current_slug

    db, who = await database(), identity()
    stored = await timezone_of(db, who.user_id)
    before = stored.name if stored.own else None
    wanted = value.strip() or None
    if wanted == before:
        return
    builder = cl.user_session.get("builder")
    try:
        zone = await set_my_timezone(db, who, wanted)
    except UserError as exc:  # nothing stored changes; the panel shows the stored zone again
        await cl.Message(
            content=f"{exc.message} Your time zone stays {before or 'unset'}.", author="Coherex"
        ).send()
        teams = cl.user_session.get("teams") or {}
        await send_settings(list(teams), current_slug(builder) if builder else None)
        return
    if zone == before:  # the same zone in another spelling
        return
    if builder is not None:
        await builder.person_timezone()  # the draft's next schedule uses it
    if zone is None:
        fallback = (await timezone_of(db, who.user_id)).name
        text = (
            f"Your time zone is no longer set: schedules use {fallback} until your browser's is "
            "taken at your next visit."
        )
    else:
        text = f"Your time zone is now **{zone}**: new schedules run in it."
    await cl.Message(content=text, author="Coherex").send()
