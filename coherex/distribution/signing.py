"""Keyed signatures in cosign's format, offline: ECDSA P-256 over a "simple signing" payload.

A signature of manifest `sha256:H` in repository R is an OCI manifest tagged `sha256-H.sig` in R
whose layers are payloads of media type `application/vnd.dev.cosign.simplesigning.v1+json`:

    {"critical": {"identity": {"docker-reference": R}, "image": {"docker-manifest-digest": "sha256:H"},
                  "type": "cosign container image signature"}, "optional": null}

each with the annotation `dev.cosignproject.cosign/signature` = base64(DER ECDSA-SHA256 signature).
That is what `cosign sign --key` writes and `cosign verify --key cosign.pub --insecure-ignore-tlog`
checks (no transparency log offline). Keys are PEM: a PKCS#8 private key (mode 0600) and a PKIX
public key, which cosign reads as is.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from coherex.distribution.artifact import Blob
from coherex.distribution.registry import MANIFEST_MEDIA_TYPE, sha256
from coherex.errors import UserError

PAYLOAD_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PAYLOAD_TYPE = "cosign container image signature"
MAX_SIGNATURES = 20


def signature_tag(digest: str) -> str:
    return digest.replace(":", "-") + ".sig"


def generate_keys(private_path: Path) -> Path:
    """Write a new key pair: `private_path` (0600) and the public key next to it (`.pub`)."""
    if private_path.exists():
        raise UserError(f"{private_path} already exists; refusing to overwrite a signing key.")
    key = ec.generate_private_key(ec.SECP256R1())
    private_path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = private_path.open("xb")
    private_path.chmod(0o600)
    with fd:
        fd.write(pem)
    public = private_path.with_suffix(".pub")
    public.write_bytes(public_pem(key))
    return public


def public_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise UserError(
            f"No signing key at {path}.", hint="Create one with `coherex registry keygen`."
        ) from None
    except (ValueError, TypeError) as exc:
        raise UserError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise UserError(f"{path} is not an ECDSA P-256 key (cosign's key type).")
    return key


def load_public_key(pem: str | bytes, where: str) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    except ValueError as exc:
        raise UserError(f"{where} is not a PEM public key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise UserError(f"{where} is not an ECDSA P-256 public key (cosign's key type).")
    return key


def payload(repository: str, digest: str) -> bytes:
    doc = {
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": digest},
            "type": PAYLOAD_TYPE,
        },
        "optional": None,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def sign(key: ec.EllipticCurvePrivateKey, repository: str, digest: str) -> Blob:
    body = payload(repository, digest)
    signature = base64.b64encode(key.sign(body, ec.ECDSA(hashes.SHA256()))).decode()
    return Blob(PAYLOAD_MEDIA_TYPE, body, {SIGNATURE_ANNOTATION: signature})


def signature_manifest(layers: list[dict[str, Any]]) -> tuple[Blob, bytes]:
    """(config blob, manifest bytes) of a signature image with these layer descriptors, as cosign
    writes it (a re-sign adds a layer to the existing image)."""
    config = {
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in layers]},
        "config": {},
    }
    config_blob = Blob(
        "application/vnd.oci.image.config.v1+json", json.dumps(config, separators=(",", ":")).encode()
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": config_blob.descriptor(),
        "layers": layers,
    }
    return config_blob, json.dumps(manifest, separators=(",", ":")).encode()


@dataclass
class SignatureStatus:
    signed: bool = False  # a signature image exists
    verified_by: list[str] = field(default_factory=list)  # names of trusted keys that verified it
    problems: list[str] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return bool(self.verified_by)

    def summary(self) -> str:
        if self.verified:
            return f"verified (key {', '.join(self.verified_by)})"
        if not self.signed:
            return "unsigned"
        return "signed, not verified" + (f": {'; '.join(self.problems)}" if self.problems else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "signed": self.signed,
            "verified": self.verified,
            "verified_by": self.verified_by,
            "problems": self.problems,
            "summary": self.summary(),
        }


def verify(payloads: list[tuple[bytes, str]], digest: str, keys: dict[str, str]) -> SignatureStatus:
    """Check (payload, base64 signature) pairs of a signature image against trusted PEM keys."""
    status = SignatureStatus(signed=bool(payloads))
    loaded = {name: load_public_key(pem, f"trusted key {name!r}") for name, pem in keys.items()}
    if payloads and not loaded:
        status.problems.append("the team trusts no public key (`coherex registry trust NAME FILE.pub`)")
    for body, signature in payloads:
        try:
            doc = json.loads(body)
            critical = doc["critical"]
            if critical["type"] != PAYLOAD_TYPE or critical["image"]["docker-manifest-digest"] != digest:
                status.problems.append("a signature is for another manifest")
                continue
            raw = base64.b64decode(signature, validate=True)
        except (ValueError, KeyError, TypeError):
            status.problems.append("a signature payload is malformed")
            continue
        for name, key in loaded.items():
            try:
                key.verify(raw, body, ec.ECDSA(hashes.SHA256()))
            except InvalidSignature:
                continue
            if name not in status.verified_by:
                status.verified_by.append(name)
    if payloads and loaded and not status.verified_by and not status.problems:
        status.problems.append("no signature verifies with a trusted key")
    return status


def key_fingerprint(pem: str) -> str:
    return sha256(pem.strip().encode())[7:23]
