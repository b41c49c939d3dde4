"""What the CLI, API, chat and runtime call: add / list / test / remove sources, rotate the vault
key, and `invoke_tool` — the one entry point through which an agent reaches a service."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from jsonschema import Draft202012Validator
from pydantic import BaseModel, ValidationError

from coherex import egress
from coherex.errors import BackendError, NotFound, PermissionDenied, UserError
from coherex.integrations.base import Call, Check, Model, ServiceError, SourceType, bucket_for, call_service
from coherex.integrations.oauth import OAuthToken, provider, refresh
from coherex.integrations.vault import Vault, VaultError, redact, secret_values
from coherex.spec.catalogue import ToolInfo
from coherex.store.db import Database, Identity
from coherex.store.models import DataSource

if TYPE_CHECKING:
    from coherex.tools.port import ToolCall, ToolProvider

log = logging.getLogger("coherex.integrations")


def source_type(name: str) -> SourceType:
    from coherex.tools.registry import source_type  # the providers import this package

    return source_type(name)


class IntegrationError(BackendError):
    """A service call failed; the message says why in plain words and never holds a secret."""

    code = "integration_failed"


# ---------------------------------------------------------------- validation helpers


def _validate(model: type[Model], data: dict[str, Any], what: str, *, secret: bool) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            field = ".".join(str(p) for p in e["loc"]) or "(all)"
            if e["type"] == "extra_forbidden":
                allowed = ", ".join(model.model_fields) or "none"
                problems.append(f"{field}: unknown {what} key (allowed: {allowed})")
            else:
                # pydantic's messages never include the input, so secrets stay out of them
                problems.append(f"{field}: {e['msg']}")
        hint = (
            "Secrets go in --secret key=value (or --from-env), settings in --config key=value."
            if not secret
            else "Give credentials with --secret key=value or --from-env."
        )
        raise UserError(f"Invalid {what}: " + "; ".join(problems) + ".", hint=hint) from None


def credential_fields(type_name: str) -> dict[str, bool]:
    """Credential field → required?, for the CLI's --from-env and forms."""
    return {n: f.is_required() for n, f in source_type(type_name).credentials_model.model_fields.items()}


def env_name(type_name: str, field: str) -> str:
    """Where `--from-env` looks: SLACK_BOT_TOKEN, GITHUB_TOKEN, POSTGRES_DSN, HTTP_API_AUTH_VALUE…"""
    return f"{type_name}_{field}".upper()


# ---------------------------------------------------------------- CRUD


async def add_source(
    db: Database,
    identity: Identity,
    team_id: UUID,
    type_name: str,
    name: str,
    *,
    config: dict[str, Any] | None = None,
    credentials: dict[str, Any] | BaseModel | None = None,
    via: str = "secret",
    check: bool = False,
) -> DataSource:
    """Validate, encrypt the credentials, store the source and an audit row. Needs team admin.
    With `check`, the source's connection test must pass first (nothing is stored otherwise)."""
    kind = source_type(type_name)
    cfg = _validate(kind.config_model, config or {}, "config", secret=False)
    if isinstance(credentials, BaseModel):
        creds = credentials
    else:
        if not credentials and kind.connect == "oauth":
            raise UserError(
                f"{kind.title} connects through sign-in, not a pasted secret.",
                hint=f"Run `coherex sources connect {type_name} {name}` and open the link it prints.",
            )
        creds = _validate(kind.credentials_model, credentials or {}, "credentials", secret=True)
    await _check_destinations(kind, cfg, creds)
    if check:
        await _test_before_saving(db, team_id, kind, name, cfg, creds)
    sealed, key_id = Vault.from_settings().seal(creds, context=str(team_id))
    async with db.session(identity) as s:
        source = await s.sources.create(
            team_id,
            name,
            type_name,
            cfg.model_dump(mode="json"),
            credentials_encrypted=sealed,
            credentials_key_id=key_id,
        )
        await s.audit.record(
            team_id,
            "data_source.add",
            target_type="data_source",
            target_id=str(source.id),
            details={"name": name, "type": type_name, "via": via, "key_id": key_id},
        )
    log.info("data source %s (%s) added to team %s", name, type_name, team_id)
    return source


async def _test_before_saving(
    db: Database, team_id: UUID, kind: SourceType, name: str, cfg: Model, creds: Model
) -> None:
    """The connection test of a source that is not stored yet; a failure is the person's to fix."""
    now = datetime.now(UTC)
    unsaved = DataSource(
        id=uuid4(),
        team_id=team_id,
        name=name,
        type=kind.name,
        config=cfg.model_dump(mode="json"),
        credentials_key_id=None,
        status="active",
        last_error=None,
        failing_since=None,
        last_checked_at=None,
        created_by=None,
        created_at=now,
        updated_at=now,
    )
    secrets = secret_values(creds)
    try:
        result = await call_service(
            lambda: kind.test_connection(Call(unsaved, cfg, creds)),
            limiter=bucket_for(db, unsaved, kind),
            idempotent=True,
        )
    except ServiceError as exc:
        result = Check(False, exc.message)
    except IntegrationError as exc:
        result = Check(False, exc.message)
    if not result.ok:
        raise UserError(
            f"Not saved: the {kind.title} connection test failed: {redact(result.summary, secrets)}",
            hint="Check the credentials and settings, then try again.",
        )


def source_forms() -> list[dict[str, Any]]:
    """Every source type's fields as a form shows them: settings and credentials, secrets marked
    (the credential models' `writeOnly` strings), how it connects (pasted secret or sign-in)."""

    def fields(model: type[BaseModel], part: str) -> list[dict[str, Any]]:
        schema = model.model_json_schema()
        out = []
        for field_name, prop in schema.get("properties", {}).items():
            if prop.get("x-internal"):
                continue
            options = prop.get("anyOf", [prop])
            # a nested model or a mapping has no `type` of its own here: shown as an object (JSON)
            kinds = [o.get("type") or "object" for o in options if o.get("type") != "null"]
            out.append(
                {
                    "part": part,
                    "name": field_name,
                    "title": prop.get("title", field_name),
                    "description": prop.get("description"),
                    "type": kinds[0] if kinds else "string",
                    "secret": any(o.get("writeOnly") for o in options),
                    "multiline": bool(prop.get("x-multiline")),
                    "required": field_name in schema.get("required", []),
                    "default": prop.get("default"),
                }
            )
        return out

    from coherex.tools.registry import source_types

    return [
        {
            "type": k.name,
            "title": k.title,
            "connect": k.connect,
            "help": k.credentials_model.model_json_schema().get("description"),
            "fields": fields(k.config_model, "config") + fields(k.credentials_model, "credentials"),
        }
        for k in source_types().values()
    ]


async def _check_destinations(kind: SourceType, cfg: Model, creds: Model) -> None:
    """Refuse a source the egress guard would refuse before anything is stored (each connection is
    checked again: a name may resolve elsewhere later)."""
    try:
        destinations = kind.destinations(cfg, creds) if kind.destinations else []
    except ValueError as exc:  # e.g. a DSN naming a Unix socket
        raise UserError(str(exc), hint="Give the service's network address in the credentials.") from None
    for host, port in destinations:
        try:
            await asyncio.wait_for(egress.check(host, port), timeout=10)
        except egress.EgressDenied as exc:
            raise UserError(
                exc.message,
                hint="Point the data source at an address reachable from the internet, "
                f"or ask the operator to allow this one in {egress.SETTING}.",
            ) from None
        except OSError:  # TimeoutError included
            pass  # does not resolve now; the connection will say so


async def list_sources(db: Database, identity: Identity, team_id: UUID) -> list[DataSource]:
    async with db.session(identity) as s:
        return await s.sources.list(team_id)


async def get_source(db: Database, identity: Identity, team_id: UUID, name: str) -> DataSource:
    """The team's source `name` as `identity` may see it (NotFound, saying how to list them, if none)."""
    async with db.session(identity) as s:
        source = await s.sources.get_by_name(team_id, name)
    if source is None:
        raise NotFound(
            f"There is no data source {name!r} in this team.", hint="`coherex sources list` shows them."
        )
    return source


@dataclass
class Opened:
    """A source with its credentials decrypted: lives only for the duration of one call."""

    kind: SourceType
    call: Call

    @property
    def secrets(self) -> list[str]:
        return secret_values(self.call.credentials)


async def open_source(db: Database, source: DataSource, *, fresh: bool = True) -> Opened:
    """The source with its credentials decrypted (the one place they are): for a call, a check,
    a model client, an event's signature. With `fresh`, an expiring OAuth access token is swapped
    for a new one first."""
    kind = source_type(source.type)
    async with db.session(Identity.system()) as s:
        ciphertext, _ = await s.sources.credentials(source.id)
    if ciphertext is None:
        raise IntegrationError(
            f"Data source {source.name!r} has no stored credentials.", hint="Remove it and add it again."
        )
    creds = Vault.from_settings().open(
        ciphertext,
        kind.credentials_model,
        context=str(source.team_id),
        what=f"The credentials of data source {source.name!r}",
    )
    config = kind.config_model.model_validate(source.config)
    opened = Opened(kind, Call(source, config, creds))
    if fresh and isinstance(creds, OAuthToken) and creds.expires_soon():
        await _refresh(db, opened)
    return opened


async def _refresh(db: Database, opened: Opened) -> None:
    """Swap an expiring OAuth access token for a fresh one and store it; a refusal marks the source
    failing."""
    source, token = opened.call.source, opened.call.credentials
    p = provider(opened.kind.oauth_provider or "")
    try:
        fresh = await refresh(p, token)
    except ServiceError as exc:
        message = (
            f"Refreshing the {p.title} access token failed: {exc.message} Reconnect the source with "
            f"`coherex sources connect {source.type} {source.name} --replace`."
        )
        await _record(db, source, ok=False, error=message)
        raise IntegrationError(redact(message, opened.secrets)) from None
    await save_credentials(db, source, fresh)
    opened.call.credentials = fresh
    log.info("refreshed the %s access token of data source %s", p.title, source.name)


async def save_credentials(db: Database, source: DataSource, credentials: BaseModel) -> None:
    """Seal changed credentials into the vault again (a refreshed OAuth token: a provider may rotate
    the refresh token too, and the old one then no longer works)."""
    sealed, key_id = Vault.from_settings().seal(credentials, context=str(source.team_id))
    async with db.session(Identity.system()) as s:
        await s.sources.set_credentials(source.id, sealed, key_id)


async def _record(db: Database, source: DataSource, *, ok: bool, error: str | None = None) -> DataSource:
    async with db.session(Identity.system()) as s:
        return await s.sources.record_check(source.id, ok=ok, error=error)


async def check_source(
    db: Database, identity: Identity, team_id: UUID, name: str
) -> tuple[DataSource, Check]:
    """Check the connection, say in plain words what works, and record the status."""
    source = await get_source(db, identity, team_id, name)
    opened = None
    try:
        opened = await open_source(db, source)
        check = await call_service(
            lambda: opened.kind.test_connection(opened.call),
            limiter=bucket_for(db, source, opened.kind),
            idempotent=True,
        )
        if check.ok:
            check = await _read_tools(db, opened, check)
        check = Check(check.ok, redact(check.summary, opened.secrets), check.details)
    except ServiceError as exc:
        check = Check(False, redact(exc.message, opened.secrets if opened else []))
    except (IntegrationError, VaultError) as exc:
        check = Check(False, exc.message)
    return await _record(db, source, ok=check.ok, error=None if check.ok else check.summary), check


async def _read_tools(db: Database, opened: Opened, check: Check) -> Check:
    """For a source whose provider discovers its tools: read them and keep them with the source
    (validation and the runtime use that list). → the check, saying how many it offers."""
    from coherex.tools.registry import discoverer_for

    provider = discoverer_for(opened.kind.name)
    if provider is None or provider.discover is None:
        return check
    source = opened.call.source
    tools = await call_service(
        lambda: provider.discover(opened), limiter=bucket_for(db, source, opened.kind), idempotent=True
    )
    async with db.session(Identity.system()) as s:
        await s.sources.set_tools(source.id, [t.to_json() for t in tools])
    names = ", ".join(t.name for t in tools[:10]) + (", …" if len(tools) > 10 else "")
    summary = f"{check.summary} It offers {len(tools)} tool(s)" + (f": {names}." if tools else ".")
    return Check(check.ok, summary, {**check.details, "tools": [t.name for t in tools]})


async def refresh_discovered_tools(db: Database, now: datetime) -> list[tuple[str, str | None]]:
    """Maintenance: read again the tools of every discovering source whose list is older than
    COHEREX_TOOLS_REFRESH_SECONDS. → (source name, error or None) per source; a failure is recorded
    on the source (its status) and the old list is kept."""
    from datetime import timedelta

    from coherex.settings import get_settings
    from coherex.tools.registry import discovering

    types = sorted(set(discovering().values()))
    if not types:
        return []
    older_than = now - timedelta(seconds=get_settings().tools_refresh_seconds)
    async with db.session(Identity.system()) as s:
        due = await s.sources.tools_due(types, older_than)
    done = []
    for source in due:
        try:
            opened = await open_source(db, source)
            await _read_tools(db, opened, Check(True, ""))
            done.append((source.name, None))
            if source.status != "active":
                await _record(db, source, ok=True)
        except ServiceError as exc:
            message = f"Reading the tools of {source.name!r} failed: {exc.message}"
            await _record(db, source, ok=False, error=message)
            done.append((source.name, message))
        except (IntegrationError, VaultError) as exc:
            done.append((source.name, exc.message))
    return done


async def discovered_tools(db: Database, team_id: UUID, name: str) -> list[ToolInfo] | None:
    """The tools the team's source `name` offered at its last check (None: none, or never read)."""
    async with db.session(Identity.system()) as s:
        source = await s.sources.get_by_name(team_id, name)
    if source is None or source.tools is None:
        return None
    return [ToolInfo.from_json(t, source.type) for t in source.tools]


async def remove_source(db: Database, identity: Identity, team_id: UUID, name: str) -> list[str]:
    """Revoke the credentials at the provider where that is possible, then delete. → notes for the person."""
    source = await get_source(db, identity, team_id, name)
    async with db.session(identity) as s:  # permission first: a member must not revoke an admin's token
        member = await s.members.get(team_id, identity.user_id) if identity.user_id else None
    if identity.user_id and (member is None or member.role not in ("owner", "admin")):
        raise PermissionDenied("Only a team owner or admin can remove data sources.")
    notes: list[str] = []
    try:
        opened = await open_source(db, source, fresh=False)  # revoking needs no fresh access token
        if opened.kind.revoke is not None:
            await opened.kind.revoke(opened.call)
            notes.append("credentials revoked at the provider")
    except (ServiceError, IntegrationError, VaultError) as exc:
        message = exc.message
        notes.append(
            f"could not revoke the credentials at the provider ({message}); revoke them there by hand"
        )
    async with db.session(identity) as s:
        await s.sources.delete(source.id)
        await s.audit.record(
            team_id,
            "data_source.remove",
            target_type="data_source",
            target_id=str(source.id),
            details={"name": name, "type": source.type, "notes": notes},
        )
    return notes


async def rotate_key(db: Database) -> tuple[int, str]:
    """Re-encrypt every stored credential with the newest vault key. → (how many, new key id).

    Old keys must still be configured (they decrypt); afterwards they can be dropped."""
    vault = Vault.from_settings()
    count = 0
    async with db.session(Identity.system()) as s:
        for source_id, team_id, ciphertext, key_id in await s.sources.all_credentials():
            if key_id == vault.current_key_id:
                continue
            plain = vault.decrypt(
                ciphertext, context=str(team_id), what=f"The credentials of data source {source_id}"
            )
            sealed, new_id = vault.encrypt(plain, context=str(team_id))
            await s.sources.set_credentials(source_id, sealed, new_id)
            count += 1
        await s.audit.record(
            None, "vault.rotate", details={"reencrypted": count, "key_id": vault.current_key_id}
        )
    return count, vault.current_key_id


# ---------------------------------------------------------------- the runtime's entry point


async def invoke_tool(
    db: Database,
    *,
    team_id: UUID,
    agent_id: UUID,
    tool_name: str,
    data_source: str,
    args: dict[str, Any],
    execution_id: UUID | None = None,
) -> Any:
    """Run one integration tool of the catalogue for an agent (see `invoke`)."""
    from coherex.spec.catalogue import get_tool
    from coherex.tools.port import ToolCall
    from coherex.tools.registry import provider_for_tool

    info, provider = get_tool(tool_name), provider_for_tool(tool_name)
    if info is None or provider is None or not info.needs_data_source:
        raise UserError(f"{tool_name!r} is not an integration tool.")
    call = ToolCall(db, team_id, agent_id, execution_id, info)
    return await invoke(call, provider, data_source, args)


async def invoke(call: ToolCall, provider: ToolProvider, data_source: str, args: dict[str, Any]) -> Any:
    """Run one call of a tool that needs a data source and return its result (JSON-able or a
    ToolResult), secrets redacted.

    Checked at every call: the source exists in the team, has the provider's type, and the agent
    holds a grant on it with the access the tool needs (read < write). Credentials are decrypted here
    and go nowhere else. Calls are rate limited per source and retried on 429 (honouring
    Retry-After) and, for reads, on 5xx. Every write attempt leaves an audit_log row.

    Raises UserError (bad arguments, unknown source), PermissionDenied (no grant / read-only
    grant for a write), IntegrationError (the service failed; the message is secret-free)."""
    db, team_id, agent_id, info = call.db, call.team_id, call.agent_id, call.tool
    tool_name, kind = info.name, provider.source_type
    assert kind is not None, f"{provider.name} serves no data source"
    problems = [
        f"{'.'.join(map(str, e.absolute_path)) or '(arguments)'}: {e.message}"
        for e in Draft202012Validator(info.parameters).iter_errors(args)
    ]
    if problems:
        raise UserError(f"Invalid arguments for {tool_name}: " + "; ".join(problems))

    async with db.session(Identity.system()) as s:
        source = await s.sources.get_by_name(team_id, data_source)
        grants = await s.agents.data_sources(agent_id) if source else []
    if source is None:
        raise NotFound(f"There is no data source {data_source!r} in this team.")
    if source.type != kind.name:
        raise UserError(f"{tool_name} needs a {kind.name} data source; {data_source!r} is {source.type}.")
    grant = next((g for g in grants if g.data_source_id == source.id and g.team_id == team_id), None)
    if grant is None:
        raise PermissionDenied(
            f"This agent has no access to data source {data_source!r}.",
            hint="Name the source in the tool's `dataSource` in the agent spec and save it.",
        )
    if info.access == "write" and grant.access != "write":
        raise PermissionDenied(
            f"This agent declared `access: read` on {data_source!r}; {tool_name} needs write.",
            hint="Change the tool's access to write in the agent spec if it should do this.",
        )

    outcome, secrets = "failed", []
    try:
        call.source = opened = await open_source(db, source)
        secrets = opened.secrets
        result = await call_service(
            lambda: provider.call(call, args),
            limiter=bucket_for(db, source, kind),
            idempotent=info.access == "read",
        )
        outcome = "ok"
        if source.status != "active":
            await _record(db, source, ok=True)
        return _redact_result(result, secrets)
    except ServiceError as exc:
        message = redact(f"{tool_name} on {data_source!r} failed: {exc.message}", secrets)
        if exc.auth:
            await _record(db, source, ok=False, error=message)
            raise IntegrationError(
                message,
                hint=f"Reconnect the data source: `coherex sources test {data_source}` tells what is wrong.",
            ) from None
        raise IntegrationError(message) from None
    finally:
        call.source = None  # the decrypted credentials live only for the call
        if info.access == "write":
            await _audit_write(
                db, team_id, agent_id, tool_name, source, args, outcome, call.execution_id, secrets
            )


def _redact_result(result: Any, secrets: list[str]) -> Any:
    from coherex.tools.port import ToolResult

    if isinstance(result, ToolResult):
        return replace(
            result,
            text=redact(result.text, secrets),
            data=redact(result.data, secrets),
            resources=redact(result.resources, secrets),
        )
    return redact(result, secrets)


def _summary(args: dict[str, Any], secrets: list[str]) -> dict[str, Any]:
    # enough to tell what was done (channel, repo, recipients), not whole message bodies
    short = {k: (v[:200] + "…" if isinstance(v, str) and len(v) > 200 else v) for k, v in args.items()}
    return redact(short, secrets)


async def _audit_write(
    db: Database,
    team_id: UUID,
    agent_id: UUID,
    tool_name: str,
    source: DataSource,
    args: dict[str, Any],
    outcome: str,
    execution_id: UUID | None,
    secrets: list[str],
) -> None:
    async with db.session(Identity.system()) as s:
        await s.audit.record(
            team_id,
            f"tool.{tool_name}",
            target_type="data_source",
            target_id=str(source.id),
            actor_kind="agent",
            details={
                "agent_id": str(agent_id),
                "execution_id": str(execution_id or ""),
                "data_source": source.name,
                "outcome": outcome,
                "args": _summary(args, secrets),
            },
        )


async def notify_team(db: Database, team_id: UUID, data_source: str, channel: str, text: str) -> None:
    """A message of the platform itself (not an agent's tool call) to a Slack channel of the team,
    through the team's Slack data source: approval requests. Rate limited and audited like tool
    writes; raises IntegrationError/NotFound like them."""
    async with db.session(Identity.system()) as s:
        source = await s.sources.get_by_name(team_id, data_source)
    if source is None or source.type != "slack":
        raise NotFound(f"There is no Slack data source {data_source!r} in this team.")
    from coherex.spec.catalogue import get_tool
    from coherex.tools.port import ToolCall
    from coherex.tools.registry import provider_for_source_type

    slack = provider_for_source_type("slack")
    post = get_tool("slack.post_message")
    assert slack is not None and slack.source_type is not None and post is not None
    opened = await open_source(db, source)
    call = ToolCall(db, team_id, None, None, post, source=opened)
    try:
        await call_service(
            lambda: slack.call(call, {"channel": channel, "text": text}),
            limiter=bucket_for(db, source, slack.source_type),
            idempotent=False,
        )
    except ServiceError as exc:
        raise IntegrationError(
            redact(f"notifying {channel} on {data_source!r} failed: {exc.message}", opened.secrets)
        ) from None
    async with db.session(Identity.system()) as s:
        await s.audit.record(
            team_id,
            "approval.notify",
            target_type="data_source",
            target_id=str(source.id),
            actor_kind="system",
            details={"channel": channel},
        )
