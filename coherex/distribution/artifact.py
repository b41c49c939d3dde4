"""The agent artifact: an OCI image manifest with a config of our own media type and the spec as
its first layer (then any files a template ships). Pure functions: bytes in, bytes out.

    manifest ─ config   application/vnd.coherex.agent.config.v1+json  (what the agent needs)
             ─ layer 0  application/vnd.coherex.agent.spec.v1+yaml    (the coherex/v1 spec)
             ─ layer n  application/vnd.coherex.agent.file.v1         (prompts, sample inputs)

The config names data sources by name and type only: credentials never leave the vault.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from typing import Any

from coherex.distribution.registry import MANIFEST_MEDIA_TYPE, RegistryError, sha256
from coherex.errors import UserError

CONFIG_MEDIA_TYPE = "application/vnd.coherex.agent.config.v1+json"
SPEC_MEDIA_TYPE = "application/vnd.coherex.agent.spec.v1+yaml"
FILE_MEDIA_TYPE = "application/vnd.coherex.agent.file.v1"
ARTIFACT_TYPE = CONFIG_MEDIA_TYPE

MAX_MANIFEST = 256 * 1024
MAX_CONFIG = 256 * 1024
MAX_SPEC = 1024 * 1024  # the spec reader's own limit
MAX_FILE = 5 * 1024 * 1024
MAX_FILES = 20

TITLE = "org.opencontainers.image.title"


@dataclass
class Blob:
    media_type: str
    data: bytes
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return sha256(self.data)

    def descriptor(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data)}
        if self.annotations:
            d["annotations"] = self.annotations
        return d


@dataclass
class Artifact:
    config: Blob
    layers: list[Blob]
    annotations: dict[str, str]

    @property
    def manifest(self) -> bytes:
        doc = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "artifactType": ARTIFACT_TYPE,
            "config": self.config.descriptor(),
            "layers": [b.descriptor() for b in self.layers],
            "annotations": self.annotations,
        }
        return json.dumps(doc, indent=None, separators=(",", ":"), sort_keys=True).encode()

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    @property
    def blobs(self) -> list[Blob]:
        return [self.config, *self.layers]


def needs(
    spec: dict[str, Any], source_types: dict[str, str]
) -> tuple[list[str], list[dict[str, str]], list[str]]:
    """(tool names, data sources as {name, type}, collections) a spec uses. `source_types`: the
    pushing team's name → type; a source it does not know gets the type its tools need."""
    from coherex.spec.catalogue import event_types, get_tool

    body = spec.get("spec") or {}
    tools, sources, collections = [], {}, []
    for tool in body.get("tools") or []:
        tools.append(tool["use"])
        info = get_tool(tool["use"])
        if tool.get("dataSource"):
            sources.setdefault(
                tool["dataSource"],
                source_types.get(tool["dataSource"]) or (info.integration if info else "unknown"),
            )
        if tool.get("collection") and tool["collection"] not in collections:
            collections.append(tool["collection"])
    for trigger in body.get("triggers") or []:
        event = trigger.get("event") or {}
        if event.get("source"):
            sources.setdefault(
                event["source"],
                source_types.get(event["source"]) or event_types().get(event.get("type", ""), "unknown"),
            )
    return (sorted(set(tools)), [{"name": n, "type": t} for n, t in sorted(sources.items())], collections)


def build(
    spec: dict[str, Any],
    spec_yaml: str,
    *,
    version: int,
    created: str,
    source_types: dict[str, str],
    files: dict[str, bytes] | None = None,
    source: str | None = None,
    revision: str | None = None,
    licenses: str | None = None,
) -> Artifact:
    from coherex import __version__

    meta = spec.get("metadata") or {}
    tools, sources, collections = needs(spec, source_types)
    config = {
        "name": meta["name"],
        "description": meta.get("description") or "",
        "version": version,
        "apiVersion": spec.get("apiVersion"),
        "tools": tools,
        "dataSources": sources,
        "collections": collections,
        "coherexVersion": __version__,
    }
    layers = [Blob(SPEC_MEDIA_TYPE, spec_yaml.encode(), {TITLE: "spec.yaml"})]
    for name, data in sorted((files or {}).items()):
        layers.append(Blob(FILE_MEDIA_TYPE, data, {TITLE: safe_file_name(name)}))
    annotations = {
        TITLE: meta["name"],
        "org.opencontainers.image.description": meta.get("description") or "",
        "org.opencontainers.image.version": str(version),
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.licenses": licenses or (meta.get("labels") or {}).get("license", ""),
        "org.opencontainers.image.source": source or "",
        "org.opencontainers.image.revision": revision or "",
    }
    annotations = {k: v for k, v in annotations.items() if v}
    blob = json.dumps(config, separators=(",", ":"), sort_keys=True).encode()
    return Artifact(Blob(CONFIG_MEDIA_TYPE, blob), layers, annotations)


def safe_file_name(name: str) -> str:
    """A template file's name as stored: a plain base name (no directories, no dot files)."""
    base = posixpath.basename(name.replace("\\", "/"))
    if not base or base.startswith(".") or len(base) > 200 or any(ord(c) < 32 for c in base):
        raise UserError(f"File {name!r} cannot be shipped: give a plain file name (no leading dot).")
    return base


@dataclass
class Layout:
    """A checked manifest: the descriptors to fetch."""

    config: dict[str, Any]
    spec: dict[str, Any] | None
    files: list[dict[str, Any]]
    annotations: dict[str, str]
    media_type: str  # of the config: ours, or a foreign agent format (see `importers`)


def read_manifest(manifest: dict[str, Any], ref: str) -> Layout:
    if manifest.get("schemaVersion") != 2 or manifest.get("mediaType", MANIFEST_MEDIA_TYPE) not in (
        MANIFEST_MEDIA_TYPE,
        "application/vnd.docker.distribution.manifest.v2+json",
    ):
        raise UserError(
            f"{ref} is not an OCI image manifest (mediaType {manifest.get('mediaType')!r}); "
            "an index or a signature cannot be pulled as an agent."
        )
    config = manifest.get("config")
    layers = manifest.get("layers")
    if (
        not isinstance(config, dict)
        or not isinstance(layers, list)
        or not all(isinstance(x, dict) for x in layers)
    ):
        raise RegistryError(f"The manifest of {ref} has no config or layers.")
    spec = next((x for x in layers if x.get("mediaType") == SPEC_MEDIA_TYPE), None)
    files = [x for x in layers if x.get("mediaType") == FILE_MEDIA_TYPE][:MAX_FILES]
    annotations = manifest.get("annotations") if isinstance(manifest.get("annotations"), dict) else {}
    return Layout(
        config,
        spec,
        files,
        {str(k): str(v) for k, v in annotations.items()},
        str(config.get("mediaType", "")),
    )
