"""The credentials vault: AES-256-GCM with key ids, key rotation, and redaction.

Keys come from `COHEREX_SECRET_KEY`: one or more base64 (url-safe) 32-byte keys separated by
commas, newest first. Without it (the embedded default) a key is generated once into
`<data dir>/vault.key` with mode 0600 and a log line says so. The newest key encrypts; every
listed key decrypts, so a rotation is: put the new key first, keep the old one after it, run
`coherex sources rotate-key`, then drop the old key.

A ciphertext is `v1.<key id>.<base64(nonce | ciphertext+tag)>`; the key id is a fingerprint of
the key (not the key), so "which key do I need?" can be answered without decrypting. The team
id is bound in as associated data: a ciphertext copied into another team's row does not open.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import os
import re
import secrets as _secrets
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, SecretStr

from coherex.errors import BackendError
from coherex.settings import Settings, get_settings

log = logging.getLogger("coherex.vault")

M = TypeVar("M", bound=BaseModel)

KEY_FILE = "vault.key"
_SETTING = "COHEREX_SECRET_KEY"


class VaultError(BackendError):
    code = "vault_error"


def generate_key() -> str:
    return base64.urlsafe_b64encode(_secrets.token_bytes(32)).decode()


def key_id(raw: bytes) -> str:
    return hashlib.sha256(b"coherex-vault-key-id:" + raw).hexdigest()[:12]


def _parse_keys(text: str, origin: str) -> list[bytes]:
    keys = []
    for i, part in enumerate(p.strip() for p in re.split(r"[,\n]", text)):
        if not part:
            continue
        try:
            raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise VaultError(
                f"Key number {i + 1} in {origin} is not a base64-encoded 32-byte key.",
                hint="Generate one with `coherex sources rotate-key --generate` (or "
                '`python -c "import os,base64;print(base64.urlsafe_b64encode(os.urandom(32)).decode())"`).',
            )
        keys.append(raw)
    if not keys:
        raise VaultError(f"{origin} holds no key.", hint=f"Set {_SETTING} to one or more keys, newest first.")
    return keys


class Vault:
    """Encrypts with the first key, decrypts with any key it knows."""

    def __init__(self, keys: list[bytes], origin: str = _SETTING):
        self._keys = {key_id(k): AESGCM(k) for k in keys}
        self.current_key_id = key_id(keys[0])
        self.origin = origin

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Vault:
        settings = settings or get_settings()
        if settings.secret_key is not None:
            return cls(_parse_keys(settings.secret_key.get_secret_value(), _SETTING), _SETTING)
        path = settings.data_path / KEY_FILE
        if not path.exists():
            _write_key_file(path, [generate_key()])
            log.warning(
                "Generated a new credentials key in %s (mode 0600). Back it up: without it stored "
                "credentials cannot be decrypted. Set %s to manage the key yourself.",
                path,
                _SETTING,
            )
        return cls(_parse_keys(path.read_text(), str(path)), str(path))

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def encrypt(self, plaintext: bytes, *, context: str) -> tuple[str, str]:
        """→ (ciphertext, key id). `context` (the team id) must be given again to decrypt."""
        nonce = os.urandom(12)
        sealed = self._keys[self.current_key_id].encrypt(nonce, plaintext, context.encode())
        token = base64.urlsafe_b64encode(nonce + sealed).decode()
        return f"v1.{self.current_key_id}.{token}", self.current_key_id

    def decrypt(self, ciphertext: str, *, context: str, what: str = "These credentials") -> bytes:
        try:
            version, kid, token = ciphertext.split(".", 2)
            blob = base64.urlsafe_b64decode(token)
        except ValueError:
            raise VaultError(f"{what} are not a vault ciphertext (the stored value is damaged).") from None
        if version != "v1":
            raise VaultError(
                f"{what} use vault format {version!r}, which this version of Coherex cannot read."
            )
        aead = self._keys.get(kid)
        if aead is None:
            raise VaultError(
                f"{what} were encrypted with key {kid}, which is not among the keys in {self.origin} "
                f"(known: {', '.join(self._keys)}).",
                hint=f"Put the key with id {kid} back into {_SETTING} after the newest key (keys are "
                "comma-separated, newest first), then run `coherex sources rotate-key` to re-encrypt "
                "everything with the newest key.",
            )
        try:
            return aead.decrypt(blob[:12], blob[12:], context.encode())
        except InvalidTag:
            raise VaultError(
                f"{what} do not decrypt with key {kid}: the stored value was changed or belongs "
                "to another team."
            ) from None

    def seal(self, credentials: BaseModel, *, context: str) -> tuple[str, str]:
        return self.encrypt(_dump_secret_model(credentials).encode(), context=context)

    def open(self, ciphertext: str, model: type[M], *, context: str, what: str = "These credentials") -> M:
        creds = model.model_validate_json(self.decrypt(ciphertext, context=context, what=what))
        remember_secrets(secret_values(creds))
        return creds


def _write_key_file(path: Path, keys: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(keys) + "\n")
    os.chmod(path, 0o600)


def add_key_to_file(settings: Settings | None = None) -> str:
    """Put a fresh key first in the embedded key file (old ones stay, for decryption). → its id."""
    settings = settings or get_settings()
    if settings.secret_key is not None:
        raise VaultError(
            f"The keys come from {_SETTING}, so Coherex cannot add one itself.",
            hint=f"Put a new key first in {_SETTING} (keep the old one after it), e.g. "
            f"{generate_key()}, then run `coherex sources rotate-key` again.",
        )
    path = settings.data_path / KEY_FILE
    old = path.read_text().split() if path.exists() else []
    new = generate_key()
    _write_key_file(path, [new, *old])
    return key_id(_parse_keys(new, str(path))[0])


# ---------------------------------------------------------------- secret models and redaction


def _dump_secret_model(model: BaseModel) -> str:
    # SecretStr dumps as "**********" by default; only the vault sees real values.
    def reveal(v: Any) -> Any:
        if isinstance(v, SecretStr):
            return v.get_secret_value()
        if isinstance(v, BaseModel):
            return {k: reveal(getattr(v, k)) for k in type(v).model_fields}
        if isinstance(v, dict):
            return {k: reveal(x) for k, x in v.items()}
        if isinstance(v, list):
            return [reveal(x) for x in v]
        return v

    return json.dumps(reveal(model), default=str)


def secret_values(model: BaseModel) -> list[str]:
    out: list[str] = []

    def collect(v: Any) -> None:
        if isinstance(v, SecretStr):
            out.append(v.get_secret_value())
        elif isinstance(v, BaseModel):
            out.extend(secret_values(v))
        elif isinstance(v, dict):  # e.g. an MCP source's headers and environment: {name: SecretStr}
            for x in v.values():
                collect(x)
        elif isinstance(v, list):
            for x in v:
                collect(x)

    for name in type(model).model_fields:
        collect(getattr(model, name))
    return [s for s in out if s]


REDACTED = "[redacted]"
# Token shapes worth hiding even when we were never told the value (a pasted token in a log line).
# After "bearer/token/basic" only what looks random counts (a digit or base64 padding in it):
# "a basic understanding" in an agent's answer is prose, not a credential.
_PATTERNS = re.compile(
    r"(xox[abposr]-[A-Za-z0-9-]{8,}|gh[pousr]_[A-Za-z0-9]{16,}|github_pat_[A-Za-z0-9_]{20,}"
    r"|ya29\.[A-Za-z0-9._-]{10,}|(?i:bearer|token|basic)\s+(?=[A-Za-z._~+/-]*[0-9=])[A-Za-z0-9._~+/=-]{12,})"
)
_MIN_SECRET = 6
# Any run of this many characters of a known secret is hidden too: a service that echoes part of a
# credential ("Invalid API key: abc…" without its "Bearer " prefix) must not leak that part.
_MIN_RUN = 8
_STEP = _MIN_RUN // 2  # every run of _MIN_RUN characters holds a whole _STEP-aligned block


def redact(value: Any, secrets: Iterable[str] = ()) -> Any:
    """`value` (text, or dicts/lists of them) with every given secret (of a URL, its credentials:
    `secret_parts`), every run of 8 or more characters of one (also in its JSON-escaped forms) and
    every token-shaped string hidden."""
    return _redact(value, _index(frozenset(s for s in secrets if s)))


# query-string and keyword options of a URL or DSN whose value is a credential
_SECRET_OPTION = re.compile(r"pass|pwd|secret|token|key|auth|sig|credential", re.IGNORECASE)
# a libpq keyword DSN: `host=db.example dbname=shop user=bob password=…`
_KEYWORD_DSN = re.compile(r"\s*(?:host|hostaddr|dbname|user|port)\s*=")


def secret_parts(value: str) -> list[str]:
    """What of a secret must be hidden. Most secrets are hidden whole; a URL or DSN only by its
    credentials — the password (as written and decoded) with the userinfo around it, or a user
    that stands alone (a token), and the values of options like `password=`, `sslkey=`, `token=`.
    Its host, port and database name are addresses, not secrets: hidden, every message naming
    `127.0.0.1:5432` lost that address. An http(s) URL with no credentials in those places is
    hidden whole (its path may be the secret: a webhook URL)."""
    from urllib.parse import unquote, urlsplit

    if _KEYWORD_DSN.match(value):
        from psycopg.conninfo import conninfo_to_dict

        try:
            options = conninfo_to_dict(value)
        except Exception:  # not a DSN after all: hidden whole
            return [value]
        return [str(v) for k, v in options.items() if v and _SECRET_OPTION.search(k)]
    if "://" not in value or any(c.isspace() for c in value.strip()):
        return [value]
    try:
        parts = urlsplit(value.strip())
        password, user = parts.password, parts.username
    except ValueError:  # not a URL after all (e.g. a bad port)
        return [value]
    if not parts.netloc:
        return [value]
    found: list[str] = []
    if password:
        found += [password, unquote(password), parts.netloc.rpartition("@")[0]]
    elif user:
        found += [user, unquote(user)]
    for option in parts.query.split("&"):
        name, _, raw = option.partition("=")
        if raw and _SECRET_OPTION.search(name):
            found += [raw, unquote(raw)]
    if not found and parts.scheme.lower() in ("http", "https"):
        return [value]
    return list(dict.fromkeys(found))


class _Index:
    """The 8-character runs of some secrets (and of their JSON-escaped spellings), and the 4-character
    blocks in them, so a long text is scanned in steps of 4 with one set lookup per step."""

    def __init__(self, given: frozenset[str]):
        secrets = {p for s in given for p in secret_parts(s) if len(p) >= _MIN_SECRET}
        self.short = sorted((s for s in secrets if len(s) < _MIN_RUN), key=len, reverse=True)
        spellings = set()
        for s in secrets:
            if len(s) >= _MIN_RUN:
                once = json.dumps(s)[1:-1]
                spellings.update(
                    (
                        s,
                        once,
                        json.dumps(s, ensure_ascii=False)[1:-1],
                        once.replace("/", "\\/"),
                        json.dumps(once)[1:-1],
                    )
                )  # raw, JSON-escaped, and escaped twice
        self.runs = {w[i : i + _MIN_RUN] for w in spellings for i in range(len(w) - _MIN_RUN + 1)}
        self.blocks = {r[i : i + _STEP] for r in self.runs for i in range(_MIN_RUN - _STEP + 1)}

    def hide(self, text: str) -> str:
        for s in self.short:
            text = text.replace(s, REDACTED)
        if not self.runs:
            return text
        spans: list[list[int]] = []  # [start, end) of matched runs, merged as found (they come in order)
        runs, blocks, n = self.runs, self.blocks, len(text)
        for i in [i for i in range(0, n - _STEP + 1, _STEP) if text[i : i + _STEP] in blocks]:
            for j in range(max(0, i - _STEP), min(i, n - _MIN_RUN) + 1):  # runs holding this block
                if text[j : j + _MIN_RUN] in runs:
                    if spans and j <= spans[-1][1]:
                        spans[-1][1] = max(spans[-1][1], j + _MIN_RUN)
                    else:
                        spans.append([j, j + _MIN_RUN])
        if not spans:
            return text
        out, last = [], 0
        for start, end in spans:
            out += [text[last:start], REDACTED]
            last = end
        out.append(text[last:])
        return "".join(out)


@functools.lru_cache(maxsize=64)
def _index(secrets: frozenset[str]) -> _Index:
    return _Index(secrets)


def _redact(value: Any, index: _Index) -> Any:
    if isinstance(value, str):
        return _PATTERNS.sub(REDACTED, index.hide(value))
    if isinstance(value, dict):
        return {k: _redact(v, index) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact(v, index) for v in value]
    return value


# Every secret this process has decrypted, so the log filter can hide it wherever it turns up.
_seen: set[str] = set()
_seen_lock = threading.Lock()
_MAX_SEEN = 10_000


def remember_secrets(values: Iterable[str]) -> None:
    with _seen_lock:
        if len(_seen) > _MAX_SEEN:
            _seen.clear()
        _seen.update(v for v in values if v and len(v) >= _MIN_SECRET)


def known_secrets() -> list[str]:
    with _seen_lock:
        return list(_seen)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message with every known secret hidden (attach to handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        return True


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a broken format string is logging's problem, not ours
        return
    clean = redact(message, known_secrets())
    if clean != message or record.args:
        record.msg, record.args = clean, None
    if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info), known_secrets())


_installed = False


def install_log_redaction() -> None:
    """Redact every log record as it is created, whatever handler later receives it.

    A record factory rather than a handler filter: handlers added later (by an app, or pytest's
    log capture) are covered too. Idempotent."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _redact_record(record)
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
