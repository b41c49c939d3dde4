"""The OCI registry adapter: references, and the `oras` client behind the egress guard.

The `oras` SDK is used only here. Its requests session gets an adapter whose every new connection
(token endpoints and redirects to blob storage included) passes `coherex.egress.check` and connects
to the checked address, like the httpx and aiohttp paths of the guard. Environment proxies are not
used (a proxy would make the checked address the proxy's). The SDK's own retry (sleeps of 3 s to
83 s on any error, a refused destination included) is bypassed: a registry error is reported at once.

Plain HTTP is used for loopback registries only (`localhost`, `127.0.0.1:5000`, `[::1]:5000`),
the rule Docker applies; everything else is HTTPS with certificate checks. Reaching a loopback
registry at all needs `COHEREX_EGRESS_ALLOW` (e.g. `127.0.0.1:5000`).

Every call is synchronous (requests): callers run it in a worker thread (`asyncio.to_thread`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import ipaddress
import re
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import oras.container
import oras.provider
import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError
from urllib3.util import connection as _u3conn

from coherex import egress
from coherex.errors import BackendError, NotFound, PermissionDenied, UserError

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
ACCEPT = ", ".join([MANIFEST_MEDIA_TYPE, "application/vnd.docker.distribution.manifest.v2+json"])
TIMEOUT = 30.0

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPO_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
EXAMPLE = "ghcr.io/acme/inbox-digest:1.2 or 127.0.0.1:5000/acme/inbox-digest@sha256:…"


class RegistryError(BackendError):
    code = "registry_error"


class Unresolvable(Exception):
    """A registry host name that does not resolve."""


# ---------------------------------------------------------------- references


@dataclass(frozen=True)
class Reference:
    registry: str  # host[:port]
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str, *, default_tag: str | None = None) -> Reference:
        raw = text.strip()
        if not raw or any(c.isspace() for c in raw):
            raise UserError(f"{text!r} is not a registry reference.", hint=f"Give one like {EXAMPLE}.")
        rest, digest = raw, None
        if "@" in rest:
            rest, digest = rest.split("@", 1)
            if not _DIGEST_RE.match(digest):
                raise UserError(
                    f"{text!r}: the digest {digest!r} is not sha256: and 64 lower-case hex digits."
                )
        host, _, path = rest.partition("/")
        if not path or not ("." in host or ":" in host or host == "localhost"):
            raise UserError(
                f"{text!r} names no registry host.",
                hint=f"Start the reference with the registry, e.g. {EXAMPLE}.",
            )
        tag = None
        last = path.rsplit("/", 1)[-1]
        if ":" in last:
            path, tag = path.rsplit(":", 1)
            if not _TAG_RE.match(tag):
                raise UserError(
                    f"{text!r}: the tag {tag!r} is not valid (letters, digits, '_', '.', '-'; at most 128)."
                )
        if not _REPO_RE.match(path):
            raise UserError(
                f"{text!r}: the repository {path!r} is not valid (lower-case letters, digits and "
                "separators '.', '_', '-', '/')."
            )
        if host == "docker.io":  # Docker Hub's API host and its implicit "library/" namespace
            host = "registry-1.docker.io"
            path = path if "/" in path else f"library/{path}"
        if tag is None and digest is None:
            tag = default_tag
        return cls(host.lower(), path, tag, digest)

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, self.tag, digest)

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.registry, self.repository, tag, None)

    def __str__(self) -> str:
        return self.name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    @property
    def plain_http(self) -> bool:
        host = (
            self.registry.rsplit(":", 1)[0]
            if not self.registry.startswith("[")
            else self.registry[1:].split("]")[0]
        )
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- the guarded session


def _checked(host: str, port: int) -> list[Any]:
    """One resolution, every address checked. Callers run the client in a worker thread; called
    from a thread with a running event loop, the check runs in a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return anyio.run(egress.check, host.strip("[]"), port)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, egress.check, host.strip("[]"), port).result()


def _connect(conn: HTTPConnection) -> socket.socket:
    try:
        addresses = _checked(conn.host, conn.port)
    except (
        OSError
    ) as exc:  # the name does not resolve: the reference is wrong (not OSError: urllib3 would retry it)
        raise Unresolvable(str(exc)) from None
    last: OSError | None = None
    for ip in addresses:
        try:
            return _u3conn.create_connection(
                (str(ip), conn.port),
                conn.timeout,
                source_address=conn.source_address,
                socket_options=conn.socket_options,
            )
        except OSError as exc:
            last = exc
    raise NewConnectionError(conn, f"Failed to establish a new connection: {last}")


class _GuardedHTTP(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _connect(self)


class _GuardedHTTPS(HTTPSConnection):
    def _new_conn(self) -> socket.socket:  # TLS (SNI, certificate) still uses the URL's host name
        return _connect(self)


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTP


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPS


class _GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        assert hasattr(self.poolmanager, "pool_classes_by_scheme"), (
            "urllib3 changed: the egress guard cannot attach"
        )
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}

    def send(self, request: Any, **kwargs: Any) -> Any:
        kwargs["timeout"] = kwargs.get("timeout") or TIMEOUT
        return super().send(request, **kwargs)


def guard(session: requests.Session) -> requests.Session:
    session.trust_env = False
    session.proxies.clear()
    adapter = _GuardedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class _Oras(oras.provider.Registry):
    # the SDK's retry decorator sleeps 3 s to 83 s between attempts on any exception
    do_request = oras.provider.Registry.do_request.__wrapped__  # type: ignore[attr-defined]
    #: the status of the registry's last answer: the SDK raises a bare ValueError when it cannot
    #: answer a 401/403 with a login, and this tells that one apart from other ValueErrors
    last_status: int | None = None


# ---------------------------------------------------------------- the client


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    origin: str  # "vault" or the Docker config file it came from


class RegistryClient:
    """One registry (host) with optional credentials; every method is blocking."""

    def __init__(self, registry: str, plain_http: bool, creds: Credentials | None):
        self.registry = registry
        self.creds = creds
        self.scheme = "http" if plain_http else "https"
        self._oras: _Oras | None = None

    # --- connection and auth

    def _client(self) -> _Oras:
        if self._oras is None:
            probe = guard(requests.Session())
            try:
                r = self._call(lambda: probe.get(f"{self.scheme}://{self.registry}/v2/", timeout=TIMEOUT))
            finally:
                probe.close()
            challenge = r.headers.get("Www-Authenticate", "")
            backend = "basic" if challenge.lower().startswith("basic") else "token"
            client = _Oras(hostname=self.registry, insecure=self.scheme == "http", auth_backend=backend)
            guard(client.session)
            client.session.hooks["response"].append(
                lambda r, *args, **kwargs: setattr(client, "last_status", r.status_code)
            )
            client.auth._auth_config = {"auths": {}}  # credentials come from us, never the SDK's own lookup
            if self.creds:
                client.auth.set_basic_auth(self.creds.username, self.creds.password)
            if r.status_code == 401 and backend == "basic":
                if not self.creds:
                    raise self._denied("needs a login")
                check = guard(requests.Session())
                try:
                    r2 = self._call(
                        lambda: check.get(
                            f"{self.scheme}://{self.registry}/v2/",
                            timeout=TIMEOUT,
                            auth=(self.creds.username, self.creds.password),
                        )
                    )
                finally:
                    check.close()
                if r2.status_code == 401:
                    raise self._denied("refused the username or password")
            self._oras = client
        return self._oras

    def _denied(self, what: str, repository: str | None = None) -> PermissionDenied:
        whose = f" (from {self.creds.origin}, user {self.creds.username!r})" if self.creds else ""
        on = f" for {repository}" if repository else ""
        return PermissionDenied(
            f"The registry {self.registry} {what}{on}{whose}.",
            hint=f"Log in with `coherex registry login {self.registry}` (or `docker login`), "
            "with an account that may read and write this repository.",
        )

    def _call(self, fn: Any) -> Any:
        try:
            return fn()
        except egress.EgressDenied as exc:
            raise UserError(
                exc.message,
                hint=f"Registries are reached through the egress guard: an operator allows "
                f"a private or local one with {egress.SETTING}.",
            ) from None
        except Unresolvable as exc:
            raise UserError(
                f"The registry host in the reference does not resolve: {exc}.",
                hint="Check the host name at the start of the reference.",
            ) from None
        except requests.exceptions.SSLError as exc:
            raise RegistryError(
                f"TLS with the registry {self.registry} failed: {_short(exc)}",
                hint="Check the registry's certificate; only loopback registries use plain HTTP.",
            ) from None
        except requests.exceptions.RequestException as exc:
            raise RegistryError(
                f"Cannot reach the registry {self.registry}: {_short(exc)}",
                hint="Check the host and port in the reference and that the registry is up.",
            ) from None
        except ValueError as exc:  # the SDK: "Cannot respond to request for authentication."
            if self._oras is not None and self._oras.last_status in (401, 403):
                raise self._denied("refused the login") from None
            raise RegistryError(
                f"The registry {self.registry} answered something unexpected: {exc}"
            ) from None

    def _request(self, ref: Reference, method: str, url: str, **kwargs: Any) -> requests.Response:
        client = self._client()
        r = self._call(lambda: client.do_request(url, method, **kwargs))
        if r.status_code in (401, 403):
            raise self._denied("refused access", ref.repository)
        return r

    def _container(self, ref: Reference) -> oras.container.Container:
        c = oras.container.Container(f"{ref.registry}/{ref.repository}:{ref.tag or 'latest'}")
        c.registry, c.digest = ref.registry, ref.digest
        return c

    # --- reading

    def get_manifest(self, ref: Reference, *, max_bytes: int) -> tuple[bytes, str, dict[str, Any]] | None:
        """→ (raw bytes, digest, parsed) or None when the tag/digest does not exist. A digest given
        in the reference is checked against the bytes received."""
        url = f"{self.scheme}://{self._container(ref).manifest_url()}"
        r = self._request(ref, "GET", url, headers={"Accept": ACCEPT}, stream=True)
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise RegistryError(
                f"The registry {self.registry} answered {r.status_code} for the manifest of {ref}: "
                f"{_errors(r)}"
            )
        raw = _read_limited(r, max_bytes, f"the manifest of {ref}")
        digest = sha256(raw)
        if ref.digest and digest != ref.digest:
            raise RegistryError(
                f"The manifest of {ref} does not match its digest: the registry sent content "
                f"with digest {digest}. Nothing was saved."
            )
        try:
            import json

            parsed = json.loads(raw)
        except ValueError:
            raise RegistryError(f"The manifest of {ref} is not JSON.") from None
        if not isinstance(parsed, dict):
            raise RegistryError(f"The manifest of {ref} is not a JSON object.")
        return raw, digest, parsed

    def get_blob(self, ref: Reference, digest: str, size: int, *, max_bytes: int, what: str) -> bytes:
        """The blob's bytes, checked against the digest and size of its descriptor."""
        if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
            raise RegistryError(f"{what} of {ref} has no valid sha256 digest ({digest!r}).")
        if not isinstance(size, int) or size < 0 or size > max_bytes:
            raise UserError(f"{what} of {ref} is {size} bytes; at most {max_bytes} are accepted.")
        client = self._client()
        container = self._container(ref)
        r = self._call(lambda: client.get_blob(container, digest, stream=True))
        if r.status_code in (401, 403):
            raise self._denied("refused access", ref.repository)
        if r.status_code == 404:
            raise NotFound(f"{what} of {ref} ({digest}) is missing from the registry.")
        if r.status_code != 200:
            raise RegistryError(f"The registry answered {r.status_code} for {what} of {ref}: {_errors(r)}")
        data = _read_limited(r, max_bytes, f"{what} of {ref}")
        if sha256(data) != digest or len(data) != size:
            raise RegistryError(
                f"{what[0].upper() + what[1:]} of {ref} does not match its digest {digest} (the registry "
                f"sent {len(data)} bytes with digest {sha256(data)}): it was changed in the registry "
                "or in transit. Nothing was saved."
            )
        return data

    # --- writing

    def put_blobs(self, ref: Reference, blobs: list[tuple[str, bytes]]) -> None:
        """Upload (media type, bytes) blobs not yet in the repository."""
        client = self._client()
        container = self._container(ref)
        with tempfile.TemporaryDirectory(prefix="coherex-oci-") as tmp:
            for i, (media_type, data) in enumerate(blobs):
                path = Path(tmp) / f"blob{i}"
                path.write_bytes(data)
                layer = {"mediaType": media_type, "digest": sha256(data), "size": len(data)}
                r = self._call(lambda path=path, layer=layer: client.upload_blob(str(path), container, layer))
                if r.status_code in (401, 403):
                    raise self._denied("refused the upload", ref.repository)
                if r.status_code not in (200, 201, 202):
                    raise RegistryError(
                        f"The registry {self.registry} refused a blob of {ref} "
                        f"({r.status_code}): {_errors(r)}"
                    )

    def put_manifest(self, ref: Reference, raw: bytes, media_type: str = MANIFEST_MEDIA_TYPE) -> str:
        """Store a manifest under the reference's tag; → its digest."""
        url = f"{self.scheme}://{self._container(ref).manifest_url(ref.tag)}"
        r = self._request(ref, "PUT", url, headers={"Content-Type": media_type}, data=raw)
        if r.status_code not in (200, 201, 202):
            raise RegistryError(
                f"The registry {self.registry} refused the manifest of {ref} ({r.status_code}): {_errors(r)}"
            )
        digest = sha256(raw)
        answered = r.headers.get("Docker-Content-Digest")
        if answered and answered != digest:
            raise RegistryError(f"The registry stored the manifest of {ref} as {answered}, not {digest}.")
        return digest


def _read_limited(r: requests.Response, max_bytes: int, what: str) -> bytes:
    out = bytearray()
    try:
        for chunk in r.iter_content(65536):
            out += chunk
            if len(out) > max_bytes:
                raise UserError(f"{what} is larger than {max_bytes} bytes; refused.")
    except requests.exceptions.RequestException as exc:
        raise RegistryError(f"Reading {what} failed: {_short(exc)}") from None
    finally:
        r.close()
    return bytes(out)


def _errors(r: requests.Response) -> str:
    try:
        errors = r.json().get("errors") or []
        return (
            "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors if isinstance(e, dict))
            or r.reason
        )
    except ValueError:
        return r.reason or str(r.status_code)


def _short(exc: Exception) -> str:
    text = str(exc)
    # urllib3 wraps the cause in several layers of "HTTPConnectionPool(...): Max retries exceeded ..."
    m = re.search(r"\(Caused by \w+\([^,]*, '?(.*?)'?\)\)", text)
    return (m.group(1) if m else text)[:300]
