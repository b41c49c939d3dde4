"""The egress guard's judgement of addresses, its allow list and the Postgres DSN checks (no I/O
beyond resolving literals and `localhost`)."""

from __future__ import annotations

import pytest

from coherex import egress
from coherex.settings import reset_settings_cache
from coherex.tools.providers.postgres import targets


@pytest.fixture
def allow_list(monkeypatch):
    def set_(value: str) -> None:
        monkeypatch.setenv("COHEREX_EGRESS_ALLOW", value)
        reset_settings_cache()

    set_("")
    yield set_
    reset_settings_cache()


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.1",
        "2130706433",
        "0x7f000001",
        "localhost",
        "::1",
        "[::1]",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "2002:7f00:1::",
        "0.0.0.0",
        "::",
        "169.254.169.254",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "100.64.0.1",
        "fc00::1",
        "fd12::1",
        "fe80::1",
        "224.0.0.1",
        "240.0.0.1",
    ],
)
async def test_inside_addresses_are_refused_naming_the_setting(allow_list, host):
    with pytest.raises(egress.EgressDenied, match="COHEREX_EGRESS_ALLOW="):
        await egress.check(host, 443)


async def test_public_addresses_pass_and_sockets_never_do(allow_list):
    assert [str(ip) for ip in await egress.check("8.8.8.8", 53)] == ["8.8.8.8"]
    for host in ("/var/run/postgresql", "@abstract", ""):
        with pytest.raises(egress.EgressDenied, match="Unix sockets"):
            await egress.check(host, 5432)


async def test_the_allow_list_opens_exactly_what_it_lists(allow_list):
    allow_list("10.0.0.0/8, localhost:8080,[::1]:9000,127.0.0.2")
    await egress.check("10.9.8.7", 1)
    await egress.check("localhost", 8080)
    await egress.check("::1", 9000)
    await egress.check("::ffff:127.0.0.2", 5)  # an IPv4 rule covers its IPv4-mapped form
    for host, port in [("localhost", 8081), ("127.0.0.1", 8080), ("::1", 9001), ("192.168.0.1", 1)]:
        with pytest.raises(egress.EgressDenied):
            await egress.check(host, port)


@pytest.mark.parametrize("bad", ["a b", "host:port", "10.0.0.0/33:1", "[::1]:0", "x/y"])
def test_a_bad_allow_entry_is_named(bad):
    with pytest.raises(ValueError, match="COHEREX_EGRESS_ALLOW"):
        egress.parse_allow(bad)


def test_postgres_dsns_name_network_hosts_only():
    assert targets("postgresql://u:p@db.example.com/x") == [("db.example.com", 5432)]
    assert targets("postgresql://u@h1,h2:6000/x") == [("h1", 5432), ("h2", 6000)]
    assert targets("host=db.example.com hostaddr=203.0.113.9 port=5433") == [("203.0.113.9", 5433)]
    for dsn in [
        "postgresql:///x",
        "postgresql://u@/x?host=/tmp",
        "host=/var/run/postgresql",
        "host=@abstract",
        "postgresql://u@%2Ftmp/x",
        "host=ok.example.com,/tmp",
        "postgresql://u@h/x?service=s",
        "postgresql://u@h/x?passfile=/root/.pgpass",
        "postgresql://u@h/x?sslkey=/etc/key",
    ]:
        with pytest.raises(ValueError):
            targets(dsn)


def test_a_url_is_checked_at_its_host_and_the_port_its_scheme_uses():
    from coherex.egress import destination

    assert destination("https://API.example.com/v1") == ("api.example.com", 443)
    assert destination("http://models.internal:8080/v1") == ("models.internal", 8080)
    assert destination("postgresql://u:p@db.example.com/x") == ("db.example.com", 5432)
    with pytest.raises(ValueError):
        destination("https://example.com:99999/")
