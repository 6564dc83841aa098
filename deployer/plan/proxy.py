"""The edge proxy's nginx configuration, rendered on the controller.

The templates are those of the `deployer.core.proxy` role (templates/), but the role never
renders them: deployer renders them here and hands the role finished text, so no value
from a project or a host is ever templated by Ansible. Every value that reaches the config
is checked first (ValueError otherwise): names, prefixes, paths and addresses are kept to
characters that cannot end a directive or open a block (no `;`, `{`, `}`, quotes,
whitespace, `$` or `#`).

Each site (one app's environment) is two files: the server blocks, in conf.d, and its
upstream blocks, in a file of their own that the site file includes, so draining a host
rewrites only the upstreams file. nginx names (upstreams, log formats) are global to the
http block, so they carry the site's app and environment.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from deployer.paths import collections_dir

_ROLE = ("ansible_collections", "deployer", "core", "roles", "proxy")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")  # app, environment, host names
_IDENT = re.compile(r"[a-z][a-z0-9_]{0,62}")  # upstream names
_PREFIX = re.compile(r"/[A-Za-z0-9._~/-]*")
_PATH = re.compile(r"/[A-Za-z0-9._/@+-]*")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")

# Tries per request: the first backend and up to two others (see README of the role).
NEXT_UPSTREAM_TRIES = 3


@dataclass(frozen=True)
class Backend:
    """One app instance: where the proxy reaches it, and the inventory host that runs it."""

    address: str
    port: int
    host: str
    weight: int | None = None
    """nginx's `weight` (1-100) of this server among its upstream's; None: nginx's default
    (1). A canary's shift weights the live and the new slots of every host."""


@dataclass(frozen=True)
class Upstream:
    name: str
    backends: tuple[Backend, ...]


@dataclass(frozen=True)
class Route:
    """Requests under `prefix` go to the upstream named `upstream` (longest prefix wins)."""

    prefix: str
    upstream: str


@dataclass(frozen=True)
class Tls:
    """Paths on the proxy host of the PEM certificate chain and its key."""

    certificate: str
    key: str


@dataclass(frozen=True)
class ProxySite:
    app: str
    environment: str
    server_name: str | None
    routes: tuple[Route, ...]
    upstreams: tuple[Upstream, ...]
    static_root: str | None
    tls: Tls | None
    cdn: bool
    json_logs: bool
    acme_webroot: str | None
    http_port: int = 80
    https_port: int = 443


# --- where the files go ------------------------------------------------------------------


def site_paths(app: str, environment: str) -> dict[str, str]:
    """Paths on the proxy host: `site` (server blocks, read by nginx from conf.d),
    `upstreams` (upstream blocks, included by the site file), `maintenance` (what
    `deployer maintenance` writes; included by the site file when it exists), `access_log`
    (JSON logs)."""
    key = f"{_name(app, 'app')}-{_name(environment, 'environment')}"
    return {
        "site": f"/etc/nginx/conf.d/deployer-{key}.conf",
        "upstreams": f"/etc/nginx/deployer/{key}/upstreams.conf",
        "maintenance": f"/etc/nginx/deployer/{key}/maintenance.conf",
        "access_log": f"/var/log/nginx/deployer-{key}.access.log",
    }


# --- checks --------------------------------------------------------------------------------


def _name(value: str, what: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value) or ".." in value:
        raise ValueError(f"{what} {value!r}: letters, digits, '_', '.', '-' (1-63 chars)")
    return value


def _ident(value: str, what: str) -> str:
    if not isinstance(value, str) or not _IDENT.fullmatch(value):
        raise ValueError(f"{what} {value!r}: lowercase letters, digits, '_', a letter first")
    return value


def _port(value: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        raise ValueError(f"{what} {value!r}: a TCP port (1-65535)")
    return value


def _path(value: str, what: str) -> str:
    parts = value.split("/") if isinstance(value, str) else []
    if (
        not isinstance(value, str)
        or not _PATH.fullmatch(value)
        or value == "/"
        or "" in parts[1:]
        or "." in parts
        or ".." in parts
    ):
        raise ValueError(f"{what} {value!r}: an absolute path of letters, digits, '._/@+-'")
    return value


def _prefix(value: str) -> str:
    parts = value.split("/") if isinstance(value, str) else []
    if not isinstance(value, str) or not _PREFIX.fullmatch(value) or "." in parts or ".." in parts:
        raise ValueError(f"route prefix {value!r}: '/' then letters, digits, '._~/-'")
    if "//" in value:
        raise ValueError(f"route prefix {value!r}: empty path segments are not allowed")
    if value.startswith("/.well-known/acme-challenge") or value.startswith("/.deployer/"):
        raise ValueError(f"route prefix {value!r}: reserved for the proxy itself")
    return value


def _hostname(value: str, what: str, *, wildcard: bool = False) -> str:
    name = value[2:] if wildcard and isinstance(value, str) and value.startswith("*.") else value
    labels = name.split(".") if isinstance(name, str) else []
    if not labels or len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"{what} {value!r}: a hostname of letters, digits, '-' and '.'")
    return value


def _address(value: str) -> str:
    """An IP address or a hostname, as nginx's `server` takes it (IPv6 bracketed)."""
    if not isinstance(value, str):
        raise ValueError(f"backend address {value!r}: an IP address or a hostname")
    bracketed = value.startswith("[") and value.endswith("]")
    bare = value[1:-1] if bracketed else value
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        if bracketed or bare.replace(".", "").isdigit():
            raise ValueError(f"backend address {value!r}: not a valid IP address") from None
        return _hostname(value, "backend address")
    if ip.version == 6:
        if "%" in bare:
            raise ValueError(f"backend address {value!r}: scoped addresses are not supported")
        return f"[{ip.compressed}]"
    return ip.compressed


def _server_names(value: str | None) -> str:
    if value is None:
        return "_"
    if not isinstance(value, str) or not value or value != " ".join(value.split()):
        raise ValueError(f"server_name {value!r}: hostnames separated by single spaces")
    for name in value.split(" "):
        _hostname(name, "server_name", wildcard=True)
    return value


def check(site: ProxySite) -> None:
    """Raise ValueError unless every value of the site is safe to write into nginx's config
    and the routes and upstreams make sense together."""
    _name(site.app, "app")
    _name(site.environment, "environment")
    _server_names(site.server_name)
    _port(site.http_port, "http_port")
    _port(site.https_port, "https_port")
    if site.tls is not None and site.http_port == site.https_port:
        raise ValueError("http_port and https_port must differ")
    for root, what in ((site.static_root, "static_root"), (site.acme_webroot, "acme_webroot")):
        if root is not None:
            _path(root, what)
    if site.tls is not None:
        _path(site.tls.certificate, "tls certificate")
        _path(site.tls.key, "tls key")
    names = [_ident(u.name, "upstream name") for u in site.upstreams]
    if len(set(names)) != len(names):
        raise ValueError(f"upstream names must be unique: {names}")
    for upstream in site.upstreams:
        if not upstream.backends:
            raise ValueError(f"upstream {upstream.name!r} has no backend")
        seen: set[tuple[str, int]] = set()
        for backend in upstream.backends:
            where = (_address(backend.address), _port(backend.port, "backend port"))
            _name(backend.host, "backend host")
            weight = backend.weight
            if weight is not None and (
                isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= 100
            ):
                raise ValueError(f"upstream {upstream.name!r}: weight {weight!r} is not 1-100")
            if where in seen:
                raise ValueError(f"upstream {upstream.name!r}: {where[0]}:{where[1]} twice")
            seen.add(where)
    prefixes = [_prefix(r.prefix) for r in site.routes]
    if len(set(prefixes)) != len(prefixes):
        raise ValueError(f"route prefixes must be unique: {prefixes}")
    for route in site.routes:
        if route.upstream not in names:
            raise ValueError(f"route {route.prefix!r}: no upstream named {route.upstream!r}")
    if site.static_root is not None and "/" in prefixes:
        raise ValueError("a route for '/' and static_root both claim '/': give one of them")


# --- rendering -----------------------------------------------------------------------------


def _role_dir() -> Any:
    return collections_dir().joinpath(*_ROLE)


@cache
def _templates() -> Environment:
    return Environment(  # noqa: S701 - nginx configuration, not markup; values are checked
        loader=FileSystemLoader(str(_role_dir() / "templates")),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _upstream_name(site: ProxySite, name: str) -> str:
    return f"deployer-{site.app}-{site.environment}-{name}"


def _locations(site: ProxySite) -> list[dict[str, str]]:
    """The route locations, longest prefix first (nginx picks the longest match anyway;
    the order only makes the file read that way). `/api` also takes `/api/...` but not
    `/apiary`: a prefix without a trailing slash is an exact location plus `/api/`."""
    out = []
    for route in sorted(site.routes, key=lambda r: (-len(r.prefix), r.prefix)):
        target = _upstream_name(site, route.upstream)
        if route.prefix == "/":
            out.append({"match": "/", "upstream": target})
        elif route.prefix.endswith("/"):
            out.append({"match": f"^~ {route.prefix}", "upstream": target})
        else:
            out.append({"match": f"= {route.prefix}", "upstream": target})
            out.append({"match": f"^~ {route.prefix}/", "upstream": target})
    return out


def render_site(site: ProxySite) -> dict[str, str]:
    """{path on the proxy host: content}: the site file and its upstreams file (no host
    drained)."""
    check(site)
    paths = site_paths(site.app, site.environment)
    values = {
        "site": site,
        "paths": paths,
        "server_names": _server_names(site.server_name),
        "default_server": site.server_name is None,
        "locations": _locations(site),
        "has_root_route": any(r.prefix == "/" for r in site.routes),
        "log_format": f"deployer-{site.app}-{site.environment}-json",
        "tries": NEXT_UPSTREAM_TRIES,
    }
    text = _templates().get_template("site.conf.j2").render(values)
    return {
        paths["site"]: re.sub(r"\n{3,}", "\n\n", text),  # optional sections leave blank runs
        paths["upstreams"]: render_upstreams(site),
    }


def render_upstreams(site: ProxySite, drained: frozenset[str] = frozenset()) -> str:
    """The upstreams file, with every backend on a `drained` host marked `down`, unless
    that would leave an upstream with no live backend: then all of that upstream's
    backends stay in service (a comment says so), since an upstream whose servers are all
    down fails every request."""
    check(site)
    for host in drained:
        _name(host, "drained host")
    upstreams = []
    for upstream in site.upstreams:
        live = [b for b in upstream.backends if b.host not in drained]
        kept = sorted({b.host for b in upstream.backends if b.host in drained}) if not live else []
        servers = [
            {
                "address": _address(b.address),
                "port": b.port,
                "host": b.host,
                "down": bool(live) and b.host in drained,
                "weight": b.weight,
            }
            for b in upstream.backends
        ]
        upstreams.append(
            {"name": _upstream_name(site, upstream.name), "servers": servers, "kept": kept}
        )
    values = {"site": site, "upstreams": upstreams, "drained": sorted(drained)}
    return _templates().get_template("upstreams.conf.j2").render(values)


MAINTENANCE_MESSAGE = "This site is down for maintenance and will be back shortly."


def _html(text: str) -> str:
    """`text` as HTML whose every character but letters, digits, spaces and . , - is an
    entity: nothing in it can end nginx's quoted string, name a variable ($) or open markup."""
    return "".join(
        ch if ch.isascii() and (ch.isalnum() or ch in " .,-") else f"&#{ord(ch)};" for ch in text
    )


def render_maintenance(
    app: str, environment: str, *, on: bool, retry_after: int = 300, message: str = ""
) -> str:
    """The site's maintenance file: with `on`, every request but the proxy's health check
    and ACME challenges is answered 503 with a small page and Retry-After; off, a comment."""
    head = (
        f"# Managed by deployer: maintenance mode of {_name(app, 'app')} "
        f"({_name(environment, 'environment')}).\n"
    )
    if not on:
        return head + "# Off: requests go to the app.\n"
    if not 1 <= retry_after <= 86_400:
        raise ValueError(f"retry_after: {retry_after} is not 1-86400 seconds")
    message = message or MAINTENANCE_MESSAGE
    if len(message) > 500 or any(ch in message for ch in "\r\n\x00"):
        raise ValueError("message: one line of at most 500 characters")
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Maintenance</title></head>"
        f"<body><h1>Down for maintenance</h1><p>{_html(message)}</p></body></html>"
    )
    return head + "\n".join(
        [
            "# On: `deployer maintenance off` ends it; deploys and health checks go on.",
            'if ($uri !~ "^/(\\.deployer/proxy-health|\\.well-known/acme-challenge/)") {',
            "    return 503;",
            "}",
            "error_page 503 @deployer_maintenance;",
            "location @deployer_maintenance {",
            "    default_type text/html;",
            f"    add_header Retry-After {retry_after} always;",
            '    add_header Cache-Control "no-store" always;',
            f'    return 503 "{page}";',
            "}",
            "",
        ]
    )
