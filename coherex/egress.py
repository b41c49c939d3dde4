"""The egress guard: every outbound connection made on an agent's or a data source's behalf.

An agent (or a team admin filling in a data source) chooses where the platform connects, so the
destination is hostile input: it must not be the platform itself (its database, sandbox server,
API, LLM endpoint on loopback), the cloud metadata service, or the operator's private network.

    addresses = await check("api.example.com", 443)   # → the checked IPs, or EgressDenied

The host is resolved once; the caller connects to the address that was checked, never resolving
the name again (no DNS-rebinding window):

- httpx: `async_client()` — its network backend checks each new connection (redirects included)
  and connects to the checked IP, keeping the Host header and TLS SNI of the name;
- aiohttp (slack_sdk): `aiohttp_connector()` — host resolution answers only checked addresses;
- Postgres: `coherex.tools.providers.postgres` pins `hostaddr` to the checked IP.

Refused unless `COHEREX_EGRESS_ALLOW` lists it: every address that is not globally routable
(loopback, link-local incl. 169.254.169.254, private 10/8 172.16/12 192.168/16, shared 100.64/10,
unique-local fc00::/7, fe80::/10, unspecified, reserved, multicast; IPv4-mapped and 6to4 forms are
judged by the IPv4 address inside), any address of this host itself, and the platform's own
database and PostgREST endpoints.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpcore
import httpx

from coherex.settings import get_settings

SETTING = "COHEREX_EGRESS_ALLOW"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class EgressDenied(Exception):
    """A destination the guard refuses; the message names the setting that would allow it."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


# ---------------------------------------------------------------- the allow list


@dataclass(frozen=True)
class Rule:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    host: str | None = None
    port: int | None = None

    def allows(self, name: str, ip: IPAddress, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
            return ip in self.network or (mapped is not None and mapped in self.network)
        return self.host == name


def parse_allow(value: str) -> list[Rule]:
    """`10.0.0.0/8,db.internal:5432,[::1]:8080,api.internal` → rules; ValueError names the bad entry."""
    rules = []
    for raw in (v.strip() for v in value.split(",")):
        if not raw:
            continue
        entry, port = raw, None
        if raw.startswith("["):  # [v6]:port or [v6]
            inside, _, rest = raw[1:].partition("]")
            entry = inside
            if rest.startswith(":"):
                port = _port(rest[1:], raw)
        elif raw.count(":") == 1:
            entry, port_text = raw.rsplit(":", 1)
            port = _port(port_text, raw)
        try:
            network = ipaddress.ip_network(entry, strict=False)
            rules.append(Rule(network=network, port=port))
        except ValueError:
            if not entry or "/" in entry or " " in entry:
                raise ValueError(f"{SETTING}: {raw!r} is not a CIDR, host:port or host") from None
            rules.append(Rule(host=entry.lower().rstrip("."), port=port))
    return rules


def _port(text: str, raw: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{SETTING}: {raw!r} has no valid port")
    return int(text)


def _rules() -> list[Rule]:
    return parse_allow(get_settings().egress_allow)


# ---------------------------------------------------------------- the check


def _why_refused(ip: IPAddress) -> str | None:
    inner: IPAddress = ip
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour or ip
    for addr in (inner, ip):  # the IPv4 address inside a mapped or 6to4 one decides first
        if addr.is_unspecified:
            return "the unspecified address"
        if addr.is_loopback:
            return "a loopback address (this host)"
        if addr.is_link_local:
            return "a link-local address (e.g. the cloud metadata service)"
        if addr.is_multicast:
            return "a multicast address"
        if not addr.is_global:
            return "a private or reserved address"
    if _is_own_address(ip):
        return "an address of this host"
    return None


def _is_own_address(ip: IPAddress) -> bool:
    """True when `ip` is one of this host's interface addresses (it can be bound to)."""
    family = socket.AF_INET6 if isinstance(ip, ipaddress.IPv6Address) else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.bind((str(ip), 0))
            return True
        except OSError:
            return False


_DEFAULT_PORTS = {"https": 443, "http": 80, "postgres": 5432, "postgresql": 5432}


def destination(url: str) -> tuple[str, int]:
    """The (host, port) a URL connects to: its port, else its scheme's (https 443, postgres 5432, 80).
    ValueError for a port that is not one."""
    parts = urlsplit(url)
    return (parts.hostname or "", parts.port or _DEFAULT_PORTS.get(parts.scheme.lower(), 80))


def _platform_endpoints() -> list[tuple[str, int]]:
    """The platform's own services that may sit on a public address (a hosted database, PostgREST)."""
    s = get_settings()
    out = []
    urls = [s.database_url.get_secret_value() if s.database_url else None, s.supabase_url]
    for url in filter(None, urls):
        try:
            host, port = destination(url)
        except ValueError:
            continue
        if host:
            out.append((host, port))
    return out


def _name(host: str) -> str:
    return host.strip("[]").lower().rstrip(".")


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise OSError(f"cannot resolve {host!r}: {exc}") from None
    out: list[IPAddress] = []
    for *_, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if ip not in out:
            out.append(ip)
    return out


async def check(host: str, port: int) -> list[IPAddress]:
    """Resolve `host` once and → its addresses, every one of them allowed; EgressDenied otherwise.

    OSError when the name does not resolve (the caller reports it as an unreachable service)."""
    name = _name(host)
    if not name or name.startswith(("/", "@")):
        raise EgressDenied(
            f"Connecting to {host!r} is not allowed: Unix sockets and empty hosts are never "
            "used for data sources; give a network host name or address."
        )
    addresses = await _resolve(name, port)
    rules = _rules()
    platform = _platform_endpoints()
    for ip in addresses:
        if any(r.allows(name, ip, port) for r in rules):
            continue
        why = _why_refused(ip)
        if why is None:
            for p_host, p_port in platform:
                if p_port == port and (p_host == name or ip in await _resolve_quiet(p_host, p_port)):
                    why = "the platform's own database or API"
                    break
        if why is not None:
            shown = f"[{name}]" if ":" in name else name
            at = f" ({ip})" if str(ip) != name else ""
            raise EgressDenied(
                f"Connecting to {shown}:{port}{at} is not allowed: it is {why}. An operator can allow it "
                f"with {SETTING}={shown}:{port} (a comma list of CIDRs, host:port or hosts) in the "
                "environment or .env of the platform."
            )
    return addresses


async def _resolve_quiet(host: str, port: int) -> list[IPAddress]:
    try:
        return await _resolve(host, port)
    except OSError:
        return []


# ---------------------------------------------------------------- httpx


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Checks every new connection and connects to the checked address; httpcore keeps the
    request's Host header and uses the URL's name for TLS SNI and certificate checks."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await check(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from None
        last: Exception | None = None
        for ip in addresses:
            try:
                return await self._inner.connect_tcp(str(ip), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        raise EgressDenied("Connecting to a Unix socket is not allowed for data sources.")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def transport() -> httpx.AsyncHTTPTransport:
    t = httpx.AsyncHTTPTransport()
    # httpx offers no parameter for the network backend; its pool has one (httpcore 1.x)
    pool = t._pool
    assert hasattr(pool, "_network_backend"), "httpcore changed: the egress guard cannot attach"
    pool._network_backend = _GuardedBackend()
    return t


def async_client(**kwargs: Any) -> httpx.AsyncClient:
    """An httpx client whose every connection (redirects included) passes the guard. Proxies from
    the environment are not used (a proxy would make the checked address the proxy's)."""
    return httpx.AsyncClient(transport=transport(), **kwargs)


# ---------------------------------------------------------------- aiohttp (slack_sdk)


def aiohttp_connector() -> Any:
    """An aiohttp connector whose every connection (IP literals included) resolves through the guard,
    for `ClientSession(connector=...)`."""
    import aiohttp

    class GuardedConnector(aiohttp.TCPConnector):
        # aiohttp answers IP literals without asking its resolver, so the hook is the host resolution
        # itself (aiohttp 3.x, pinned in requirements.txt)
        async def _resolve_host(self, host: str, port: int, traces: Any = None) -> list[dict[str, Any]]:
            addresses = await check(host, port)  # OSError: aiohttp reports a DNS failure
            return [
                {
                    "hostname": host,
                    "host": str(ip),
                    "port": port,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST,
                    "family": socket.AF_INET6 if ip.version == 6 else socket.AF_INET,
                }
                for ip in addresses
            ]

    assert hasattr(aiohttp.TCPConnector, "_resolve_host"), "aiohttp changed: the egress guard cannot attach"
    return GuardedConnector(use_dns_cache=False)
