"""Restricted string types for everything that reaches a shell, a path or an inventory.

Names end up in file paths on hosts, in systemd unit names, in Ansible group names and in
command lines. They are checked here, once, so no later layer has to quote its way out of
`a;touch /tmp/pwned` or `../../etc`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_IDENT = re.compile(r"[a-z][a-z0-9_]{0,62}")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_ZONE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")  # a Linux interface name (IFNAMSIZ)
_HOST_PORT = re.compile(r"(?:\[(?P<v6>[^\]]*)\]|(?P<host>[^:]+)):(?P<port>[0-9]+)")
_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_ENV_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_ABS_PATH = re.compile(r"/[A-Za-z0-9._/@+-]*")
_REL_PATH = re.compile(r"[A-Za-z0-9._@+-][A-Za-z0-9._/@+-]*")


def _matcher(pattern: re.Pattern[str], what: str, allowed: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"{value!r} is not a safe {what} (allowed: {allowed})")
        if ".." in value:
            raise ValueError(f"{value!r} is not a safe {what}: '..' is not allowed")
        return value

    return check


def _address(value: str) -> str:
    """A hostname (RFC 1123 labels) or an IP address, as ssh and Ansible take it: IPv6
    without brackets (`[::1]` is accepted and stored as `::1`: ssh refuses the bracketed
    form). A scoped link-local address (`fe80::2%eth0`) is accepted: OpenSSH and Ansible's
    ssh connection pass it to getaddrinfo, which connects through that interface of the
    control host (scp and sftp take it bracketed, as Ansible writes it)."""
    unsafe = f"{value!r} is not a safe host address"
    port = _HOST_PORT.fullmatch(value)
    if port:
        host = port["v6"] if port["v6"] is not None else port["host"]
        hint = f"address: {host}, port: {port['port']}"
        raise ValueError(f"{unsafe}: put the port in `port:` ({hint})")
    if "@" in value:
        raise ValueError(f"{unsafe}: put the user in `user:`")
    bracketed = value.startswith("[") and value.endswith("]")
    inner = value[1:-1] if bracketed else value
    if ":" in inner:
        return _ipv6(inner, unsafe)
    if bracketed:
        raise ValueError(f"{unsafe}: brackets are for IPv6 addresses only")
    with_dot = inner.removesuffix(".")  # a fully qualified name may end with its root
    labels = with_dot.split(".")
    if len(inner) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"{unsafe} (a hostname of letters, digits and '-', or an IP address)")
    if labels[-1].isdigit():
        try:
            ipaddress.IPv4Address(inner)
        except ValueError:
            raise ValueError(f"{unsafe}: not a valid IPv4 address") from None
    return inner


def _ipv6(value: str, unsafe: str) -> str:
    try:
        address = ipaddress.IPv6Address(value)
    except ValueError:
        raise ValueError(f"{unsafe}: not a valid IPv6 address") from None
    zone = address.scope_id
    if zone is not None:
        if not address.is_link_local:
            raise ValueError(
                f"{unsafe}: a scope (%{zone}) applies to link-local addresses (fe80::/10) only"
            )
        if not _ZONE.fullmatch(zone):
            raise ValueError(f"{unsafe}: the scope {zone!r} is not an interface name")
    return value


def _segments_ok(value: str, shown: str | None = None) -> str:
    parts = value.split("/")
    if ".." in parts or "." in parts[1:]:
        raise ValueError(f"{shown or value!r}: '.' and '..' path segments are not allowed")
    if "//" in value or value.endswith("/"):
        raise ValueError(f"{shown or value!r}: empty path segments are not allowed")
    return value


def _abs_path(value: str) -> str:
    if not _ABS_PATH.fullmatch(value) or value == "/":
        raise ValueError(f"{value!r} is not a safe absolute path")
    return _segments_ok(value)


def _rel_path(value: str) -> str:
    if not _REL_PATH.fullmatch(value):
        raise ValueError(f"{value!r} is not a safe relative path")
    _segments_ok("/" + value, repr(value))
    return value


def single_line(value: str) -> str:
    if any(ch in value for ch in "\n\r\x00"):
        raise ValueError("must be a single line")
    return value


Name = Annotated[
    str, AfterValidator(_matcher(_NAME, "name", "letters, digits, '_', '.', '-'; 1-63 chars"))
]
"""App, host and environment names."""

Ident = Annotated[
    str,
    AfterValidator(
        _matcher(_IDENT, "identifier", "lowercase letters, digits and '_', starting with a letter")
    ),
]
"""Component names: they become Ansible group names."""

Version = Annotated[
    str, AfterValidator(_matcher(_VERSION, "version", "letters, digits, '.', '_', '+', '-'"))
]
Address = Annotated[str, AfterValidator(_address)]
"""Host addresses: a hostname, an IPv4 address or an IPv6 address (see `_address`)."""
UserName = Annotated[
    str, AfterValidator(_matcher(_USER, "user name", "lowercase letters, digits, '_', '-'"))
]
EnvVarName = Annotated[
    str,
    AfterValidator(_matcher(_ENV_VAR, "environment variable name", "letters, digits and '_'")),
]
MetricName = Annotated[
    str,
    AfterValidator(
        _matcher(
            re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,199}"),
            "metric name",
            "letters, digits, '_' and ':', not starting with a digit",
        )
    ),
]
"""Prometheus metric and label names: they are spliced into PromQL."""
AbsPath = Annotated[str, AfterValidator(_abs_path)]
"""Absolute paths on hosts (deploy_to)."""
RelPath = Annotated[str, AfterValidator(_rel_path)]
"""Paths inside a release (shared dirs and files)."""
SingleLine = Annotated[str, AfterValidator(single_line)]

check_version = _matcher(_VERSION, "version", "letters, digits, '.', '_', '+', '-'")
"""The version rule, for values that arrive by flag rather than by config."""
