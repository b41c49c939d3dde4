"""References, the artifact's layout, signatures and the Docker agent importer, without a registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from coherex.distribution import artifact as art
from coherex.distribution import signing
from coherex.distribution.registry import Reference
from coherex.errors import UserError
from coherex.spec.importers import docker_agent

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    "text,expected",
    [
        ("ghcr.io/acme/inbox-digest:1.2", ("ghcr.io", "acme/inbox-digest", "1.2", None)),
        ("127.0.0.1:5000/a/b", ("127.0.0.1:5000", "a/b", "7", None)),
        ("localhost/a@sha256:" + "a" * 64, ("localhost", "a", None, "sha256:" + "a" * 64)),
        ("docker.io/pirate:latest", ("registry-1.docker.io", "library/pirate", "latest", None)),
    ],
)
def test_references(text, expected):
    r = Reference.parse(text, default_tag="7")
    assert (r.registry, r.repository, r.tag, r.digest) == expected


@pytest.mark.parametrize(
    "text,message",
    [
        ("acme/agent:1", "names no registry host"),
        ("ghcr.io/Acme/agent", "repository 'Acme/agent' is not valid"),
        ("ghcr.io/acme/agent@sha256:xyz", "is not sha256:"),
        ("ghcr.io/acme/agent:bad/tag", "not valid"),
        ("not a reference", "is not a registry reference"),
    ],
)
def test_bad_references_say_what_is_wrong(text, message):
    with pytest.raises(UserError, match=message):
        Reference.parse(text)


def test_plain_http_only_for_loopback():
    assert Reference.parse("127.0.0.1:5000/a").plain_http and Reference.parse("localhost:5000/a").plain_http
    assert not Reference.parse("ghcr.io/a").plain_http and not Reference.parse("10.0.0.5:5000/a").plain_http


def test_artifact_names_sources_by_name_and_type_and_is_deterministic():
    text = (ROOT / "templates" / "email-digest.yaml").read_text()
    spec = yaml.safe_load(text)

    def build():
        return art.build(
            spec,
            text,
            version=3,
            created="2026-12-01T00:00:00Z",
            source_types={"work-mail": "gmail"},
            files={"prompt.md": b"hi"},
        )

    a = build()
    assert a.digest == build().digest  # same version, same digest: a re-push changes nothing
    manifest = json.loads(a.manifest)
    assert [x["mediaType"] for x in manifest["layers"]] == [art.SPEC_MEDIA_TYPE, art.FILE_MEDIA_TYPE]
    assert manifest["layers"][1]["annotations"][art.TITLE] == "prompt.md"
    config = json.loads(a.config.data)
    assert config["dataSources"] == [
        {"name": "team-slack", "type": "slack"},
        {"name": "work-mail", "type": "gmail"},
    ]
    assert set(config) == {
        "name",
        "description",
        "version",
        "apiVersion",
        "tools",
        "dataSources",
        "collections",
        "coherexVersion",
    }


@pytest.mark.parametrize("name", ["../etc/passwd", ".bashrc", "a\x00b"])
def test_shipped_file_names_are_plain(name):
    if name == "../etc/passwd":
        assert art.safe_file_name(name) == "passwd"
    else:
        with pytest.raises(UserError):
            art.safe_file_name(name)


def test_signature_verifies_only_for_its_digest_and_key(tmp_path):
    pub = signing.generate_keys(tmp_path / "k.key")
    key = signing.load_private_key(tmp_path / "k.key")
    digest = "sha256:" + "b" * 64
    blob = signing.sign(key, "ghcr.io/acme/a", digest)
    pair = (blob.data, blob.annotations[signing.SIGNATURE_ANNOTATION])
    assert signing.verify([pair], digest, {"me": pub.read_text()}).verified_by == ["me"]
    assert not signing.verify([pair], "sha256:" + "c" * 64, {"me": pub.read_text()}).verified
    other = signing.generate_keys(tmp_path / "o.key")
    status = signing.verify([pair], digest, {"other": other.read_text()})
    assert status.signed and not status.verified and "no signature verifies" in status.summary()
    with pytest.raises(UserError, match="already exists"):
        signing.generate_keys(tmp_path / "k.key")


def test_docker_agent_file_converts_with_notes():
    text = (ROOT / "tests/integration/oci/fixtures/docker-agent.yaml").read_text()
    data, notes = docker_agent.convert(text, "Pirate Agent")
    assert data["metadata"]["name"] == "pirate-agent"
    assert data["spec"]["model"] == {"name": "gpt-4o-mini", "temperature": 0.5}
    assert any("sub-agent 'parrot'" in n for n in notes) and any("toolsets[1] (think)" in n for n in notes)
    with pytest.raises(UserError, match="no 'agents' mapping"):
        docker_agent.convert("version: '2'\n", "x")
