"""Host addresses as ssh and Ansible can target them: hostnames (RFC 1123 labels), IPv4,
IPv6 with or without brackets (stored without), scoped link-local IPv6; `host:port` and
`user@host` refused with a hint."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from deployer.config.loader import load_project
from deployer.config.names import Address
from deployer.config.resolve import resolve
from deployer.plan.inventory import build_inventory

GOOD = Path(__file__).parents[2] / "fixtures" / "configs" / "good"
ADDRESS = TypeAdapter(Address)

pytestmark = pytest.mark.hostile


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("2001:db8::10", "2001:db8::10"),
        ("[2001:db8::10]", "2001:db8::10"),
        ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
        ("fe80::2%eth0", "fe80::2%eth0"),
        ("[fe80::2%eth0]", "fe80::2%eth0"),
        ("fe80::2%3", "fe80::2%3"),
        ("192.0.2.1", "192.0.2.1"),
        ("web1.example.net", "web1.example.net"),
        ("web1.example.net.", "web1.example.net."),
        ("localhost", "localhost"),
        ("a" * 63 + ".example", "a" * 63 + ".example"),
    ],
)
def test_accepted(given: str, stored: str) -> None:
    assert ADDRESS.validate_python(given) == stored


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("web.example:2222", "put the port in `port:` (address: web.example, port: 2222)"),
        ("192.0.2.1:22", "put the port in `port:` (address: 192.0.2.1, port: 22)"),
        ("[::1]:22", "put the port in `port:` (address: ::1, port: 22)"),
        ("[fe80::2%eth0]:22", "put the port in `port:`"),
        ("deploy@web.example", "put the user in `user:`"),
        ("2001:db8::1%eth0", "applies to link-local addresses (fe80::/10) only"),
        ("fe80::1%$(id)", "is not an interface name"),
        ("fe80::1%a;b", "is not an interface name"),
        ("fe80::1%" + "x" * 16, "is not an interface name"),
        ("fe80::1%", "not a valid IPv6 address"),
        (":::1", "not a valid IPv6 address"),
        ("[web.example]", "brackets are for IPv6 addresses only"),
        ("10.0.0.256", "not a valid IPv4 address"),
        ("010.0.0.1", "not a valid IPv4 address"),
        ("1234", "not a valid IPv4 address"),
        ("web_1.example", "a hostname of letters, digits and '-'"),
        ("-web.example", "a hostname of letters, digits and '-'"),
        ("web-.example", "a hostname of letters, digits and '-'"),
        ("web..example", "a hostname of letters, digits and '-'"),
        ("a" * 64 + ".example", "a hostname of letters, digits and '-'"),
        (("a" * 60 + ".") * 5 + "example", "a hostname of letters, digits and '-'"),
        ("", "a hostname of letters, digits and '-'"),
    ],
)
def test_refused_with_a_hint(value: str, hint: str) -> None:
    with pytest.raises(ValidationError) as info:
        ADDRESS.validate_python(value)
    message = info.value.errors()[0]["msg"]
    assert f"{value!r} is not a safe host address" in message
    assert hint in message


def test_ipv6_hosts_reach_the_inventory_unbracketed() -> None:
    target = resolve(load_project(GOOD / "ipv6_hosts.yml"), "staging")
    hosts = build_inventory(target)["all"]["children"]["env_staging"]["children"]["web"]["hosts"]
    assert {name: h["ansible_host"] for name, h in hosts.items()} == {
        "plain": "::1",
        "bracketed": "::1",
        "global": "2001:db8::10",
        "scoped": "fe80::2%eth0",
        "named": "web1.example.net",
    }
    private = {h.name: h.private_address for h in target.hosts}
    assert private["global"] == "fd00::10"
    assert private["scoped"] == "fe80::2%ens3"
