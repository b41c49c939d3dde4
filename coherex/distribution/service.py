"""Push, pull and inspect agents in OCI registries; registry logins and the signature policy.
The one path used by the CLI and the API.

A pulled artifact is data: its spec goes through the same validation and save path as a file
(`coherex.services.agents.apply_spec`), its files are never executed, and nothing is saved unless every
check passed (digests, sizes, the team's signature policy, the spec itself).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any
from uuid import UUID

from coherex.distribution import artifact as art
from coherex.distribution import signing
from coherex.distribution.registry import Credentials, Reference, RegistryClient, RegistryError
from coherex.errors import NotFound, PermissionDenied, UserError
from coherex.spec.importers import docker_agent
from coherex.store.db import Database, Identity

log = logging.getLogger("coherex.distribution")


# ---------------------------------------------------------------- credentials


def docker_config_path() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"


def _from_docker_config(registry: str) -> Credentials | None:
    """Inline `auths` entries of the Docker credential file. Credential helpers (`credsStore`) are
    not run: they are programs, and a pull must not start programs on the host."""
    path = docker_config_path()
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    auths = doc.get("auths") if isinstance(doc, dict) else None
    if not isinstance(auths, dict):
        return None
    hosts = [registry, f"https://{registry}", f"http://{registry}"]
    if registry == "registry-1.docker.io":
        hosts += ["docker.io", "https://index.docker.io/v1/", "index.docker.io"]
    for host in hosts:
        entry = auths.get(host)
        if isinstance(entry, dict) and isinstance(entry.get("auth"), str):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except ValueError:
                continue
            if user and password:
                return Credentials(user, password, str(path))
    return None


async def _credentials(
    db: Database, identity: Identity, team_id: UUID, registry: str, docker_config: bool
) -> Credentials | None:
    """The team's login for this registry (vault), else — for the CLI only — the Docker file of the
    person running it. The API never reads the server's Docker file: it would lend the operator's
    logins to every team."""
    from coherex.integrations.vault import Vault

    async with db.session(identity) as s:
        async with s.conn.cursor() as cur:
            await cur.execute(
                "select username, secret_encrypted from public.registry_credentials "
                "where team_id = %s and registry = %s",
                (team_id, registry),
            )
            row = await cur.fetchone()
    if row:
        secret = (
            Vault.from_settings()
            .decrypt(row[1], context=str(team_id), what=f"The registry login for {registry}")
            .decode()
        )
        from coherex.integrations.vault import remember_secrets

        remember_secrets([secret])
        return Credentials(row[0], secret, "the team's registry login")
    return _from_docker_config(registry) if docker_config else None


async def login(
    db: Database, identity: Identity, team_id: UUID, registry: str, username: str, password: str
) -> None:
    """Check the login against the registry, then store it sealed for the team (admins)."""
    from coherex.integrations.vault import Vault

    ref = Reference.parse(f"{registry}/probe")
    if not username or not password:
        raise UserError("A registry login needs a username and a password (or token).")
    client = RegistryClient(ref.registry, ref.plain_http, Credentials(username, password, "this login"))
    await asyncio.to_thread(client._client)  # wrong password → PermissionDenied, nothing stored
    sealed, key_id = Vault.from_settings().encrypt(password.encode(), context=str(team_id))
    async with db.session(identity) as s:
        await _require_admin(s, team_id, "store a registry login")
        async with s.conn.cursor() as cur:
            await cur.execute(
                "insert into public.registry_credentials (team_id, registry, username, secret_encrypted, "
                "key_id) values (%s, %s, %s, %s, %s) on conflict (team_id, registry) do update set "
                "username = excluded.username, secret_encrypted = excluded.secret_encrypted, key_id = "
                "excluded.key_id",
                (team_id, ref.registry, username, sealed, key_id),
            )
        await s.audit.record(
            team_id,
            "registry.login",
            target_type="registry",
            target_id=ref.registry,
            details={"username": username, "key_id": key_id},
        )


async def logout(db: Database, identity: Identity, team_id: UUID, registry: str) -> bool:
    ref = Reference.parse(f"{registry}/probe")
    async with db.session(identity) as s:
        await _require_admin(s, team_id, "remove a registry login")
        async with s.conn.cursor() as cur:
            await cur.execute(
                "delete from public.registry_credentials where team_id = %s and registry = %s",
                (team_id, ref.registry),
            )
            gone = cur.rowcount > 0
        if gone:
            await s.audit.record(team_id, "registry.logout", target_type="registry", target_id=ref.registry)
    return gone


async def _require_admin(s: Any, team_id: UUID, what: str) -> None:
    """A clear message first; row-level security enforces the same rule in the database."""
    if s.identity.user_id is None:
        return
    member = await s.members.get(team_id, s.identity.user_id)
    role = member.role if member else "none"
    if role not in ("admin", "owner"):
        raise PermissionDenied(f"Only a team admin can {what}; your role is {role}.")


# ---------------------------------------------------------------- signature policy


async def trusted_keys(db: Database, identity: Identity, team_id: UUID) -> tuple[bool, dict[str, str]]:
    """(signature required, trusted key name → PEM) of the team."""
    async with db.session(identity) as s, s.conn.cursor() as cur:
        await cur.execute("select require_signed_pulls from public.teams where id = %s", (team_id,))
        row = await cur.fetchone()
        await cur.execute(
            "select name, public_key from public.team_signing_keys where team_id = %s order by name",
            (team_id,),
        )
        keys = {name: pem for name, pem in await cur.fetchall()}
    return bool(row and row[0]), keys


async def trust_key(db: Database, identity: Identity, team_id: UUID, name: str, pem: str) -> str:
    signing.load_public_key(pem, f"the key {name!r}")
    import re

    from coherex.spec.models import NAME_PATTERN

    if not re.match(NAME_PATTERN, name):
        raise UserError(f"Key name {name!r} is not valid: lower-case letters, digits and '-' (at most 63).")
    async with db.session(identity) as s:
        await _require_admin(s, team_id, "trust a signing key")
        async with s.conn.cursor() as cur:
            await cur.execute(
                "insert into public.team_signing_keys (team_id, name, public_key) values (%s, %s, %s) "
                "on conflict (team_id, name) do update set public_key = excluded.public_key",
                (team_id, name, pem.strip() + "\n"),
            )
        await s.audit.record(
            team_id,
            "registry.trust_key",
            target_type="signing_key",
            target_id=name,
            details={"fingerprint": signing.key_fingerprint(pem)},
        )
    return signing.key_fingerprint(pem)


async def untrust_key(db: Database, identity: Identity, team_id: UUID, name: str) -> bool:
    async with db.session(identity) as s:
        await _require_admin(s, team_id, "remove a trusted key")
        async with s.conn.cursor() as cur:
            await cur.execute(
                "delete from public.team_signing_keys where team_id = %s and name = %s", (team_id, name)
            )
            gone = cur.rowcount > 0
        if gone:
            await s.audit.record(team_id, "registry.untrust_key", target_type="signing_key", target_id=name)
    return gone


async def require_signatures(db: Database, identity: Identity, team_id: UUID, required: bool) -> None:
    async with db.session(identity) as s:
        await _require_admin(s, team_id, "change the signature policy")
        async with s.conn.cursor() as cur:
            await cur.execute(
                "update public.teams set require_signed_pulls = %s where id = %s", (required, team_id)
            )
            if cur.rowcount == 0:
                raise PermissionDenied("Only a team admin can change the signature policy.")
        await s.audit.record(
            team_id,
            "registry.require_signatures",
            target_type="team",
            target_id=str(team_id),
            details={"required": required},
        )


# ---------------------------------------------------------------- push


@dataclass
class PushResult:
    ref: str
    digest: str
    size: int
    signed: bool
    version: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "digest": self.digest,
            "pinned": _pin(self.ref, self.digest),
            "size": self.size,
            "signed": self.signed,
            "version": self.version,
        }


def _pin(ref: str, digest: str) -> str:
    r = Reference.parse(ref)
    return str(Reference(r.registry, r.repository, None, digest))


async def push(
    db: Database,
    identity: Identity,
    team_id: UUID,
    name: str,
    ref_text: str,
    *,
    version: int | None = None,
    sign_key: Path | None = None,
    files: dict[str, bytes] | None = None,
    docker_config: bool = False,
    source: str | None = None,
    revision: str | None = None,
) -> PushResult:
    async with db.session(identity) as s:
        agent = await s.agents.require_by_name(team_id, name)
        saved = await s.agents.require_version(agent, version)
        source_types = await s.sources.names_and_types(team_id)
        sources = await s.sources.list(team_id)
    ref = Reference.parse(ref_text, default_tag=str(saved.version))
    if ref.digest:
        raise UserError(
            f"{ref_text}: a push names a tag, not a digest (the digest is computed from the content)."
        )
    if len(files or {}) > art.MAX_FILES:
        raise UserError(f"At most {art.MAX_FILES} files can ship with an agent.")
    for fname, data in (files or {}).items():
        if len(data) > art.MAX_FILE:
            raise UserError(
                f"File {fname!r} is {len(data)} bytes; at most {art.MAX_FILE} can ship with an agent."
            )
    created = saved.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    artifact = art.build(
        saved.spec,
        saved.spec_yaml,
        version=saved.version,
        created=created,
        source_types=source_types,
        files=files,
        source=source,
        revision=revision,
    )
    await _refuse_secrets(db, sources, artifact)
    key = signing.load_private_key(sign_key) if sign_key else None
    client = RegistryClient(
        ref.registry, ref.plain_http, await _credentials(db, identity, team_id, ref.registry, docker_config)
    )
    digest = await asyncio.to_thread(_push, client, ref, artifact, key)
    async with db.session(identity) as s:
        await s.audit.record(
            team_id,
            "agent.push",
            target_type="agent",
            target_id=str(agent.id),
            details={
                "name": agent.name,
                "version": saved.version,
                "ref": str(ref),
                "digest": digest,
                "signed": key is not None,
            },
        )
    return PushResult(
        str(ref),
        digest,
        len(artifact.manifest) + sum(len(b.data) for b in artifact.blobs),
        key is not None,
        saved.version,
    )


async def _refuse_secrets(db: Database, sources: list[Any], artifact: art.Artifact) -> None:
    """No credential of the team may travel in an artifact, even pasted into a spec by mistake."""
    from coherex.errors import CoherexError
    from coherex.integrations.service import open_source

    blobs = [(b.data, b.annotations.get(art.TITLE, "config")) for b in artifact.blobs]
    blobs.append((artifact.manifest, "manifest"))
    for source in sources:
        try:
            secrets = (await open_source(db, source, fresh=False)).secrets
        except CoherexError as exc:  # credentials this installation cannot open (another vault key)
            log.warning("push: cannot check data source %s for secrets: %s", source.name, exc)
            continue
        for value in secrets:
            if len(value) < 6:
                continue
            for data, where in blobs:
                if value.encode() in data:
                    raise UserError(
                        f"The artifact would contain a credential of data source {source.name!r} "
                        f"(in {where}); nothing was pushed.",
                        hint="Specs name data sources; credentials stay in the vault. Remove the "
                        "value from the spec and save a new version.",
                    )


def _push(client: RegistryClient, ref: Reference, artifact: art.Artifact, key: Any) -> str:
    client.put_blobs(ref, [(b.media_type, b.data) for b in artifact.blobs])
    digest = client.put_manifest(ref, artifact.manifest)
    if key is not None:
        sig = signing.sign(key, ref.name, digest)
        sig_ref = ref.with_tag(signing.signature_tag(digest))
        existing = client.get_manifest(sig_ref, max_bytes=art.MAX_MANIFEST)
        layers = [x for x in (existing[2].get("layers") or []) if isinstance(x, dict)] if existing else []
        if sig.descriptor() not in layers:
            layers.append(sig.descriptor())
        config, raw = signing.signature_manifest(layers)
        client.put_blobs(sig_ref, [(config.media_type, config.data), (sig.media_type, sig.data)])
        client.put_manifest(sig_ref, raw)
    return digest


# ---------------------------------------------------------------- fetch (pull and inspect)


@dataclass
class Fetched:
    ref: Reference  # with the digest
    digest: str
    manifest: dict[str, Any]
    config: dict[str, Any]
    spec_yaml: str
    files: dict[str, bytes]
    signature: signing.SignatureStatus
    media_type: str
    notes: list[str] = field(default_factory=list)  # what an importer could not map


def _fetch(client: RegistryClient, ref: Reference, keys: dict[str, str]) -> Fetched:
    got = client.get_manifest(ref, max_bytes=art.MAX_MANIFEST)
    if got is None:
        what = f"digest {ref.digest}" if ref.digest else f"tag {ref.tag!r}"
        raise NotFound(
            f"{ref.name} has no {what} (or the repository does not exist).",
            hint="Check the reference; the pusher's `coherex push` output names the tag and digest.",
        )
    _raw, digest, manifest = got
    layout = art.read_manifest(manifest, str(ref))
    pinned = ref.with_digest(digest)
    config_raw = client.get_blob(
        pinned,
        layout.config.get("digest"),
        layout.config.get("size"),
        max_bytes=art.MAX_CONFIG,
        what="the config",
    )
    notes: list[str] = []
    if layout.media_type == art.CONFIG_MEDIA_TYPE:
        if layout.spec is None:
            raise RegistryError(f"{ref} has no spec layer ({art.SPEC_MEDIA_TYPE}).")
        try:
            config = json.loads(config_raw)
        except ValueError:
            raise RegistryError(f"The config of {ref} is not JSON.") from None
        spec_raw = client.get_blob(
            pinned,
            layout.spec.get("digest"),
            layout.spec.get("size"),
            max_bytes=art.MAX_SPEC,
            what="the spec",
        )
        try:
            spec_yaml = spec_raw.decode("utf-8")
        except UnicodeDecodeError:
            raise RegistryError(f"The spec of {ref} is not UTF-8 text.") from None
    elif layout.media_type == docker_agent.CONFIG_MEDIA_TYPE:  # Docker's agent runtime: convert its YAML
        layer = next(
            (x for x in manifest["layers"] if x.get("mediaType") == docker_agent.LAYER_MEDIA_TYPE), None
        )
        if layer is None:
            raise RegistryError(
                f"{ref} is a Docker agent artifact without its {docker_agent.LAYER_MEDIA_TYPE} layer."
            )
        text = client.get_blob(
            pinned, layer.get("digest"), layer.get("size"), max_bytes=art.MAX_SPEC, what="the agent file"
        ).decode("utf-8", "replace")
        data, notes = docker_agent.convert(text, ref.repository.rsplit("/", 1)[-1], str(ref))
        from coherex.spec import to_yaml
        from coherex.spec.validation import load_spec

        spec_yaml = to_yaml(load_spec(data))
        config = {
            "name": data["metadata"]["name"],
            "importedFrom": "docker-agent",
            "dockerAgentVersion": layout.annotations.get(docker_agent.VERSION_ANNOTATION, ""),
        }
    else:
        raise UserError(
            f"{ref} is not an agent artifact: its config media type is {layout.media_type!r}, "
            f"not {art.CONFIG_MEDIA_TYPE} (Coherex) or {docker_agent.CONFIG_MEDIA_TYPE} (Docker agent)."
        )
    files = {}
    for d in layout.files:
        title = art.safe_file_name(str((d.get("annotations") or {}).get(art.TITLE, "")))
        files[title] = client.get_blob(
            pinned, d.get("digest"), d.get("size"), max_bytes=art.MAX_FILE, what=f"the file {title!r}"
        )
    return Fetched(
        pinned,
        digest,
        manifest,
        config if isinstance(config, dict) else {},
        spec_yaml,
        files,
        _signature(client, pinned, digest, keys),
        layout.media_type,
        notes,
    )


def _signature(
    client: RegistryClient, ref: Reference, digest: str, keys: dict[str, str]
) -> signing.SignatureStatus:
    got = client.get_manifest(ref.with_tag(signing.signature_tag(digest)), max_bytes=art.MAX_MANIFEST)
    if got is None:
        return signing.SignatureStatus()
    payloads = []
    for layer in (got[2].get("layers") or [])[: signing.MAX_SIGNATURES]:
        if not isinstance(layer, dict) or layer.get("mediaType") != signing.PAYLOAD_MEDIA_TYPE:
            continue
        sig = (layer.get("annotations") or {}).get(signing.SIGNATURE_ANNOTATION)
        if not isinstance(sig, str):
            continue
        body = client.get_blob(
            ref, layer.get("digest"), layer.get("size"), max_bytes=64 * 1024, what="a signature payload"
        )
        payloads.append((body, sig))
    if not payloads:
        return signing.SignatureStatus(
            signed=False, problems=["the signature image holds no cosign signature"]
        )
    return signing.verify(payloads, digest, keys)


async def _fetch_for(
    db: Database, identity: Identity, team_id: UUID, ref_text: str, docker_config: bool
) -> tuple[Fetched, bool]:
    ref = Reference.parse(ref_text, default_tag="latest")
    required, keys = await trusted_keys(db, identity, team_id)
    client = RegistryClient(
        ref.registry, ref.plain_http, await _credentials(db, identity, team_id, ref.registry, docker_config)
    )
    return await asyncio.to_thread(_fetch, client, ref, keys), required


async def inspect(
    db: Database, identity: Identity, team_id: UUID, ref_text: str, *, docker_config: bool = False
) -> dict[str, Any]:
    """What `pull` would save, without saving: manifest, config, digest, signature status."""
    fetched, required = await _fetch_for(db, identity, team_id, ref_text, docker_config)
    return {
        "ref": str(fetched.ref),
        "digest": fetched.digest,
        "manifest": fetched.manifest,
        "config": fetched.config,
        "spec": fetched.spec_yaml,
        "files": sorted(fetched.files),
        "signature": fetched.signature.as_dict(),
        "signature_required": required,
        "import_notes": fetched.notes,
    }


# ---------------------------------------------------------------- pull


@dataclass
class PullResult:
    agent: str
    version: int
    digest: str
    ref: str
    created_agent: bool
    created_version: bool
    already: bool  # this digest was pulled before: nothing changed
    signature: dict[str, Any]
    files: dict[str, bytes]
    import_notes: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "version": self.version,
            "digest": self.digest,
            "ref": self.ref,
            "created_agent": self.created_agent,
            "created_version": self.created_version,
            "already_pulled": self.already,
            "signature": self.signature,
            "files": sorted(self.files),
            "import_notes": self.import_notes,
        }


async def pull(
    db: Database, identity: Identity, team_id: UUID, ref_text: str, *, docker_config: bool = False
) -> PullResult:
    from coherex.builder.draft import TeamRefs, missing_connections
    from coherex.services.agents import apply_spec, team_references
    from coherex.spec.documents import parse

    fetched, required = await _fetch_for(db, identity, team_id, ref_text, docker_config)
    if required and not fetched.signature.verified:
        raise PermissionDenied(
            f"{fetched.ref} is {fetched.signature.summary()}; this team requires a valid signature from one "
            "of its trusted keys before a pull is saved. Nothing was saved.",
            hint="Ask the publisher to `coherex push --sign` (or `cosign sign --key`), trust their public "
            "key with `coherex registry trust NAME KEY.pub`, or turn the policy off with "
            "`coherex registry require-signature off` (team admins).",
        )
    data = parse(fetched.spec_yaml, "yaml", str(fetched.ref))
    sig = fetched.signature.as_dict()
    async with db.session(identity) as s:
        async with s.conn.cursor() as cur:
            await cur.execute(
                "select a.name, v.version from public.agent_versions v join public.agents a on a.id = "
                "v.agent_id where v.team_id = %s and v.source_digest = %s order by v.created_at desc limit 1",
                (team_id, fetched.digest),
            )
            row = await cur.fetchone()
        if row:
            return PullResult(
                row[0],
                row[1],
                fetched.digest,
                str(fetched.ref),
                False,
                False,
                True,
                sig,
                fetched.files,
                fetched.notes,
            )
        sources, collections = await team_references(s, team_id)
        missing = missing_connections(data, TeamRefs(sources, collections))
        if missing:
            steps = "\n".join(f"  - {c.instructions(cli=True)}" for c in missing)
            raise UserError(
                f"{fetched.ref} needs connections this team does not have yet; nothing was saved. "
                f"Connect them, then pull again:\n{steps}"
            )
        saved = await apply_spec(
            s, team_id, fetched.spec_yaml, filename=str(fetched.ref), message=f"pulled {fetched.ref}"
        )
        if saved.created_version:
            async with s.conn.cursor() as cur:
                await cur.execute(
                    "update public.agent_versions set source_ref = %s, source_digest = %s where id = %s",
                    (str(fetched.ref), fetched.digest, saved.version.id),
                )
        await s.audit.record(
            team_id,
            "agent.pull",
            target_type="agent",
            target_id=str(saved.agent.id),
            details={
                "name": saved.agent.name,
                "version": saved.version.version,
                "ref": str(fetched.ref),
                "digest": fetched.digest,
                "signature": fetched.signature.summary(),
            },
        )
    return PullResult(
        saved.agent.name,
        saved.version.version,
        fetched.digest,
        str(fetched.ref),
        saved.created_agent,
        saved.created_version,
        False,
        sig,
        fetched.files,
        fetched.notes,
    )
