"""Agents as OCI artifacts against a real registry (docker-registry 2.8, htpasswd auth): push,
pull by tag and digest, signatures, the signature policy, and every refusal saving nothing."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from coherex.distribution import service, signing
from coherex.distribution.registry import sha256
from coherex.errors import NotFound, PermissionDenied, UserError
from coherex.integrations.oauth import OAuthToken
from coherex.integrations.service import add_source
from coherex.services.agents import apply_spec
from coherex.store.db import Identity
from coherex.testing.registry import LocalRegistry

from .conftest import PASSWORD, TEMPLATES, USER, docker_login

EMAIL = (TEMPLATES / "email-digest.yaml").read_text()
CSV = (TEMPLATES / "csv-analysis.yaml").read_text()


async def counts(db, team_id) -> tuple[int, int]:
    async with db.session(Identity.system()) as s, s.conn.cursor() as cur:
        await cur.execute(
            "select (select count(*) from public.agents where team_id = %s), "
            "(select count(*) from public.agent_versions where team_id = %s)",
            (team_id, team_id),
        )
        return tuple(await cur.fetchone())


async def save(db, tenant, text: str):
    async with db.session(tenant.identity) as s:
        return await apply_spec(s, tenant.team_id, text)


async def login(db, tenant, registry) -> None:
    await service.login(db, tenant.identity, tenant.team_id, registry.host, USER, PASSWORD)


async def connect_sources(db, tenant, saas, prefix: str = "") -> list[str]:
    """gmail + slack sources named as the email-digest template wants; → their secret values."""
    values = [saas.gmail_token + prefix, saas.gmail_refresh_token + prefix, saas.slack_token + prefix]
    await add_source(
        db,
        tenant.identity,
        tenant.team_id,
        "gmail",
        "work-mail",
        credentials=OAuthToken(access_token=values[0], refresh_token=values[1]),
    )
    await add_source(
        db, tenant.identity, tenant.team_id, "slack", "team-slack", credentials={"bot_token": values[2]}
    )
    return values


def raw_get(registry, path: str, accept: str | None = None) -> httpx.Response:
    headers = {"Accept": accept} if accept else {}
    return httpx.get(f"http://{registry.host}/v2/{path}", auth=(USER, PASSWORD), headers=headers, timeout=10)


async def test_push_then_pull_into_another_team_by_tag_and_by_digest(db, two_teams, oci_env, registry, saas):
    alpha, bravo = two_teams
    secrets = await connect_sources(db, alpha, saas)
    saved = await save(db, alpha, EMAIL)
    await login(db, alpha, registry)
    pushed = await service.push(
        db, alpha.identity, alpha.team_id, "email-digest", f"{registry.host}/acme/email-digest"
    )
    assert pushed.ref.endswith(":1")  # the tag defaults to the agent's version

    # the manifest is an OCI image manifest with our media types and the standard annotations
    manifest = raw_get(
        registry, "acme/email-digest/manifests/1", "application/vnd.oci.image.manifest.v1+json"
    )
    assert sha256(manifest.content) == pushed.digest
    doc = manifest.json()
    assert doc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert doc["config"]["mediaType"] == "application/vnd.coherex.agent.config.v1+json"
    assert doc["layers"][0]["mediaType"] == "application/vnd.coherex.agent.spec.v1+yaml"
    assert doc["annotations"]["org.opencontainers.image.title"] == "email-digest"
    assert doc["annotations"]["org.opencontainers.image.version"] == "1"
    config = raw_get(registry, f"acme/email-digest/blobs/{doc['config']['digest']}").json()
    assert config["dataSources"] == [
        {"name": "team-slack", "type": "slack"},
        {"name": "work-mail", "type": "gmail"},
    ]
    assert config["tools"] == ["gmail.read_message", "gmail.search_messages", "slack.post_message"]

    # no blob the registry holds carries a credential of the team
    blobs = registry.blob_files()
    assert len(blobs) >= 3
    for blob in blobs:
        data = blob.read_bytes()
        for secret in secrets + [PASSWORD]:
            assert secret.encode() not in data, f"{secret[:6]}… found in {blob}"

    # bravo has no gmail/slack yet: told what to connect, nothing saved
    before = await counts(db, bravo.team_id)
    await login(db, bravo, registry)
    with pytest.raises(UserError, match="coherex sources add gmail work-mail") as err:
        await service.pull(db, bravo.identity, bravo.team_id, pushed.ref)
    assert "nothing was saved" in str(err.value)
    assert await counts(db, bravo.team_id) == before

    await connect_sources(db, bravo, saas, prefix="-bravo")
    pulled = await service.pull(db, bravo.identity, bravo.team_id, pushed.ref)
    assert (pulled.agent, pulled.version, pulled.created_agent, pulled.digest) == (
        "email-digest",
        1,
        True,
        pushed.digest,
    )
    async with db.session(bravo.identity) as s:
        agent = await s.agents.require_by_name(bravo.team_id, "email-digest")
        version = await s.agents.require_version(agent)
        grants = sorted(g.access for g in await s.agents.data_sources(agent.id))
        async with s.conn.cursor() as cur:
            await cur.execute(
                "select source_ref, source_digest from public.agent_versions where id = %s", (version.id,)
            )
            source = await cur.fetchone()
    assert version.spec == saved.version.spec
    assert grants == ["read", "write"]  # bravo's own sources, granted like any saved spec
    assert source == (f"{pushed.ref}@{pushed.digest}", pushed.digest)

    # the same digest again: nothing changes
    after_first = await counts(db, bravo.team_id)
    again = await service.pull(
        db, bravo.identity, bravo.team_id, f"{registry.host}/acme/email-digest@{pushed.digest}"
    )
    assert again.already and (again.agent, again.version) == ("email-digest", 1)
    assert await counts(db, bravo.team_id) == after_first

    # a new version pushed under the same tag: the digest still pulls the old content exactly
    changed = EMAIL.replace("temperature: 0.2", "temperature: 0.7")
    await save(db, alpha, changed)
    second = await service.push(
        db, alpha.identity, alpha.team_id, "email-digest", f"{registry.host}/acme/email-digest:1"
    )
    assert second.digest != pushed.digest
    info = await service.inspect(
        db, bravo.identity, bravo.team_id, f"{registry.host}/acme/email-digest@{pushed.digest}"
    )
    assert "temperature: 0.2" in info["spec"] and info["digest"] == pushed.digest
    by_tag = await service.pull(db, bravo.identity, bravo.team_id, f"{registry.host}/acme/email-digest:1")
    assert by_tag.created_version and by_tag.version == 2 and by_tag.digest == second.digest


async def test_a_credential_pasted_into_a_spec_is_never_pushed(db, two_teams, oci_env, registry, saas):
    alpha, _ = two_teams
    secrets = await connect_sources(db, alpha, saas)
    leaky = EMAIL.replace("name: email-digest", "name: leaky-digest").replace(
        "Never send, delete", f"Use the token {secrets[2]} if asked. Never send, delete"
    )
    await save(db, alpha, leaky)
    await login(db, alpha, registry)
    blobs_before = registry.blob_files()
    with pytest.raises(UserError, match="credential of data source 'team-slack'") as err:
        await service.push(db, alpha.identity, alpha.team_id, "leaky-digest", f"{registry.host}/acme/leaky:1")
    assert secrets[2] not in str(err.value)
    assert registry.blob_files() == blobs_before
    assert raw_get(registry, "acme/leaky/manifests/1").status_code == 404


async def test_wrong_password_missing_tag_and_no_egress_each_save_nothing(
    db, two_teams, oci_env, registry, monkeypatch
):
    alpha, bravo = two_teams
    await save(db, alpha, CSV)
    await login(db, alpha, registry)
    pushed = await service.push(
        db, alpha.identity, alpha.team_id, "csv-analysis", f"{registry.host}/acme/csv:1"
    )
    before = await counts(db, bravo.team_id)

    # a wrong password is refused before it is stored
    with pytest.raises(PermissionDenied, match="refused the username or password"):
        await service.login(db, bravo.identity, bravo.team_id, registry.host, USER, "wrong")
    # and from the Docker credential file (CLI only): the same clear refusal
    docker_login(oci_env, registry.host, USER, "wrong")
    with pytest.raises(PermissionDenied, match="refused the username or password") as err:
        await service.pull(db, bravo.identity, bravo.team_id, pushed.ref, docker_config=True)
    assert "config.json" in str(err.value) and "coherex registry login" in str(err.value)
    # the API never reads the server's Docker file: no login at all
    docker_login(oci_env, registry.host, USER, PASSWORD)
    with pytest.raises(PermissionDenied, match="needs a login"):
        await service.pull(db, bravo.identity, bravo.team_id, pushed.ref)
    assert (
        await service.pull(db, bravo.identity, bravo.team_id, pushed.ref, docker_config=True)
    ).created_agent
    await service.logout(db, bravo.identity, bravo.team_id, registry.host)
    mid = await counts(db, bravo.team_id)
    assert mid == (before[0] + 1, before[1] + 1)

    await login(db, bravo, registry)
    with pytest.raises(NotFound, match="has no tag 'nope'"):
        await service.pull(db, bravo.identity, bravo.team_id, f"{registry.host}/acme/csv:nope")
    with pytest.raises(NotFound, match="has no digest"):
        await service.pull(db, bravo.identity, bravo.team_id, f"{registry.host}/acme/csv@sha256:{'0' * 64}")

    # without the operator's allowance the guard refuses the loopback registry
    monkeypatch.setenv("COHEREX_EGRESS_ALLOW", "")
    from coherex.settings import reset_settings_cache

    reset_settings_cache()
    with pytest.raises(UserError, match="COHEREX_EGRESS_ALLOW"):
        await service.pull(db, bravo.identity, bravo.team_id, pushed.ref)
    assert await counts(db, bravo.team_id) == mid


async def test_a_tampered_blob_is_refused(db, two_teams, oci_env, tmp_path, monkeypatch):
    alpha, bravo = two_teams
    with LocalRegistry(tmp_path / "reg", users={USER: PASSWORD}) as reg:
        monkeypatch.setenv("COHEREX_EGRESS_ALLOW", reg.host)
        from coherex.settings import reset_settings_cache

        reset_settings_cache()
        await save(db, alpha, CSV)
        await login(db, alpha, reg)
        pushed = await service.push(
            db, alpha.identity, alpha.team_id, "csv-analysis", f"{reg.host}/acme/csv:1"
        )
        manifest = raw_get(reg, "acme/csv/manifests/1", "application/vnd.oci.image.manifest.v1+json").json()
        spec_blob = reg.blob_path(manifest["layers"][0]["digest"])
        spec_blob.write_bytes(
            spec_blob.read_bytes().replace(b"careful data analyst", b"careless data analyst")
        )
        await login(db, bravo, reg)
        before = await counts(db, bravo.team_id)
        with pytest.raises(Exception, match="does not match its digest") as err:
            await service.pull(db, bravo.identity, bravo.team_id, pushed.ref)
        assert "Nothing was saved" in str(err.value)
        assert await counts(db, bravo.team_id) == before


async def test_signed_push_and_the_signature_policy(db, two_teams, oci_env, registry, tmp_path):
    alpha, bravo = two_teams
    key = tmp_path / "keys" / "release.key"
    pub = signing.generate_keys(key)
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    await save(db, alpha, CSV.replace("name: csv-analysis", "name: signed-csv"))
    await save(db, alpha, CSV.replace("name: csv-analysis", "name: unsigned-csv"))
    await login(db, alpha, registry)
    signed = await service.push(
        db, alpha.identity, alpha.team_id, "signed-csv", f"{registry.host}/acme/signed:1", sign_key=key
    )
    unsigned = await service.push(
        db, alpha.identity, alpha.team_id, "unsigned-csv", f"{registry.host}/acme/unsigned:1"
    )

    # the signature is cosign's: a `sha256-<hex>.sig` image of simple-signing payloads, each with
    # its base64 ECDSA signature in an annotation — checked here without our verifier
    sig = raw_get(
        registry,
        f"acme/signed/manifests/{signed.digest.replace(':', '-')}.sig",
        "application/vnd.oci.image.manifest.v1+json",
    ).json()
    layer = sig["layers"][0]
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    body = raw_get(registry, f"acme/signed/blobs/{layer['digest']}").content
    payload = json.loads(body)
    assert payload["critical"]["image"]["docker-manifest-digest"] == signed.digest
    assert payload["critical"]["type"] == "cosign container image signature"
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    serialization.load_pem_public_key(pub.read_bytes()).verify(
        base64.b64decode(layer["annotations"]["dev.cosignproject.cosign/signature"]),
        body,
        ec.ECDSA(hashes.SHA256()),
    )

    await login(db, bravo, registry)
    await service.require_signatures(db, bravo.identity, bravo.team_id, True)
    before = await counts(db, bravo.team_id)
    # required, but no key trusted yet: even the signed one is refused
    with pytest.raises(PermissionDenied, match="signed, not verified") as err:
        await service.pull(db, bravo.identity, bravo.team_id, signed.ref)
    assert "coherex registry trust" in str(err.value)
    await service.trust_key(db, bravo.identity, bravo.team_id, "acme-release", pub.read_text())
    with pytest.raises(PermissionDenied, match="is unsigned; this team requires a valid signature"):
        await service.pull(db, bravo.identity, bravo.team_id, unsigned.ref)
    # a signature by another key does not count
    other = tmp_path / "other.key"
    signing.generate_keys(other)
    await service.push(
        db, alpha.identity, alpha.team_id, "unsigned-csv", f"{registry.host}/acme/unsigned:1", sign_key=other
    )
    with pytest.raises(PermissionDenied, match="no signature verifies with a trusted key"):
        await service.pull(db, bravo.identity, bravo.team_id, unsigned.ref)
    assert await counts(db, bravo.team_id) == before

    info = await service.inspect(db, bravo.identity, bravo.team_id, signed.ref)
    assert info["signature"]["verified_by"] == ["acme-release"] and info["signature_required"]
    pulled = await service.pull(db, bravo.identity, bravo.team_id, signed.ref)
    assert pulled.created_agent and pulled.signature["verified"]
    # only admins change the policy
    async with db.session(Identity.system()) as s:
        member = await s.users.create("member@example.com", display_name="m")
        await s.members.add(bravo.team_id, member.id, "member")
    with pytest.raises(PermissionDenied, match="Only a team admin"):
        await service.require_signatures(db, Identity.user(member.id), bravo.team_id, False)


async def test_pull_of_a_docker_agent_artifact_converts_it(db, two_teams, oci_env, registry):
    """An artifact as Docker's agent runtime pushes it: config media type
    application/vnd.docker.cagent.config.v1+json, one application/yaml layer with its agent file."""
    from coherex.distribution.artifact import Blob
    from coherex.distribution.registry import Credentials, Reference, RegistryClient

    _, bravo = two_teams
    agent_file = (Path(__file__).parent / "fixtures" / "docker-agent.yaml").read_bytes()
    config = Blob(
        "application/vnd.docker.cagent.config.v1+json",
        b'{"architecture":"","created":"0001-01-01T00:00:00Z","os":"","rootfs":{"type":"layers",'
        b'"diff_ids":[]},"config":{}}',
    )
    layer = Blob("application/yaml", agent_file)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config.descriptor(),
            "layers": [layer.descriptor()],
            "annotations": {"io.docker.cagent.version": "v1.9.0"},
        }
    ).encode()
    ref = Reference.parse(f"{registry.host}/docker/pirate:latest")
    client = RegistryClient(ref.registry, True, Credentials(USER, PASSWORD, "test"))
    client.put_blobs(ref, [(config.media_type, config.data), (layer.media_type, layer.data)])
    client.put_manifest(ref, manifest)

    await login(db, bravo, registry)
    pulled = await service.pull(db, bravo.identity, bravo.team_id, str(ref))
    assert pulled.agent == "pirate" and pulled.created_agent
    assert any("toolsets[0] (mcp docker:duckduckgo)" in n for n in pulled.import_notes)
    async with db.session(bravo.identity) as s:
        version = await s.agents.require_version(await s.agents.require_by_name(bravo.team_id, "pirate"))
    assert version.spec["spec"]["instructions"].startswith("Talk like a pirate")
    assert version.spec["spec"]["model"] == {"name": "gpt-4o-mini", "temperature": 0.5}
    assert version.spec["metadata"]["labels"]["imported-from"] == "docker-agent"
