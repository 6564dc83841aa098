# Copyright: deployer contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The pure parts of deployer_accessory: names, paths, versions, rendered files, URLs and
PostgreSQL's SCRAM verifiers. Stdlib only (this runs on the target host); nothing here
touches the host, so the unit tests exercise all of it.

Every value that reaches a rendered file was checked by check_params first: names match
NAME_RE / IDENT_RE, addresses are IP literals, passwords printable ASCII.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import re

from urllib.parse import quote

POSTGRESQL, REDIS = "postgresql", "redis"
KINDS = (POSTGRESQL, REDIS)
PORTS = {POSTGRESQL: 5432, REDIS: 6379}
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
IDENT_RE = re.compile(r"^[a-z0-9_]{1,63}$")
MAJOR_RE = re.compile(r"^[0-9]{1,3}$")
CREDENTIALS = "/etc/deployer/accessories"
LOOPBACK = "127.0.0.1"
SCRAM_ITERATIONS = 4096
HBA_BEGIN = "# BEGIN deployer accessory %s (managed by deployer; do not edit)"
HBA_END = "# END deployer accessory %s"


class AccessoryError(Exception):
    """A failure whose message is safe to show (it never holds a secret)."""


# --- names and paths ---------------------------------------------------------------------


def default_ident(name):
    """The PostgreSQL role / database name an environment gets: `shop-lab` -> `shop_lab`."""
    return name.replace("-", "_")


def credentials_dir(name):
    return "%s/%s" % (CREDENTIALS, name)


def credentials_file(name, kind):
    return "%s/%s.password" % (credentials_dir(name), kind)


def data_dir(kind, name, version):
    if kind == POSTGRESQL:
        return "/var/lib/postgresql/%s/main" % version
    return "/var/lib/redis/%s" % name


def packages(kind, version):
    """Packages to install (and, for `upgraded`, upgrade)."""
    if kind == POSTGRESQL:
        return ["postgresql-%s" % version]
    return ["redis-server"]


def unit(kind, name, version):
    if kind == POSTGRESQL:
        return "postgresql@%s-main.service" % version
    return "redis-server@%s.service" % name


def pg_conf_dir(version):
    return "/etc/postgresql/%s/main" % version


def redis_conf_path(name):
    return "/etc/redis/redis-%s.conf" % name


# --- checking what the controller sent ---------------------------------------------------


def _ip(value, what):
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        raise AccessoryError("%s: %r is not an IP address" % (what, value))


def check_password(password, what="password"):
    """Printable ASCII only (also what PostgreSQL's SASLprep leaves unchanged, so the SCRAM
    verifier computed here is the one the server computes); never echoes the value."""
    if not password:
        raise AccessoryError("%s: must not be empty" % what)
    if len(password) > 1024 or any(not (0x20 <= ord(c) <= 0x7E) for c in password):
        raise AccessoryError("%s: use 1-1024 printable ASCII characters (the value is not shown)"
                             % what)
    return password


def check_params(p):
    """Normalised copy of the module parameters, or AccessoryError naming the bad one."""
    kind, name = p["kind"], p["name"]
    if not NAME_RE.match(name or ""):
        raise AccessoryError("name: %r must match %s" % (name, NAME_RE.pattern))
    version = str(p["version"] or "")
    if not MAJOR_RE.match(version):
        raise AccessoryError("version: %r is not a major version such as 15 or 7" % version)
    out = dict(p, version=version)
    out["address"] = _ip(p["address"], "address")
    listen = [_ip(a, "listen") for a in (p.get("listen") or [out["address"]])]
    out["listen"] = unique(listen + [LOOPBACK])
    out["clients"] = unique([_ip(a, "clients") for a in (p.get("clients") or [])])
    out["port"] = int(p.get("port") or PORTS[kind])
    if not 1 <= out["port"] <= 65535:
        raise AccessoryError("port: %s is not a TCP port" % out["port"])
    for key in ("database", "user"):
        value = p.get(key) or default_ident(name)
        if not IDENT_RE.match(value):
            raise AccessoryError("%s: %r must match %s" % (key, value, IDENT_RE.pattern))
        out[key] = value
    if p.get("password") is not None:
        check_password(p["password"])
    if int(p.get("storage_bytes") or 0) < 0:
        raise AccessoryError("storage_bytes: must be 0 (no check) or more")
    return out


def unique(items):
    seen = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


# --- versions ----------------------------------------------------------------------------


def major_of(kind, version):
    """Major version of a Debian package version string, or None.

    postgresql-15 `15.20-0+deb12u1` and the metapackage `15+248+deb12u2` -> "15";
    redis-server `5:7.0.15-1~deb12u10` (epoch 5) -> "7".
    """
    if not version:
        return None
    upstream = version.split(":", 1)[1] if ":" in version else version
    match = re.match(r"^([0-9]+)", upstream)
    return match.group(1) if match else None


def check_major(kind, wanted, found, where):
    """AccessoryError unless `found` (a package version) is of major version `wanted`."""
    major = major_of(kind, found)
    if major != wanted:
        raise AccessoryError(
            "%s %s is %s (%s), the environment asks for %s %s; deployer does not change a "
            "major version: upgrade the data by hand or ask for %s"
            % (kind, where, major or "unknown", found, kind, wanted, major or "the version there"))


# --- storage -----------------------------------------------------------------------------


def storage_error(path, measured, free, required):
    """Message when `free` bytes at `measured` (the data directory `path` or its nearest
    existing parent) are fewer than `required`, else None. required 0: no check."""
    if required <= 0 or free >= required:
        return None
    where = path if measured == path else "%s (measured at %s, the nearest existing parent)" % (
        path, measured)
    return ("not enough room for the data directory %s: %d bytes free, %d bytes required"
            % (where, free, required))


# --- rendered files ----------------------------------------------------------------------


def pg_conf(name, listen, port):
    """conf.d/deployer.conf of the cluster."""
    return ("# Managed by deployer (accessory %s): do not edit, the next deploy rewrites it.\n"
            "listen_addresses = '%s'\nport = %d\n" % (name, ",".join(listen), port))


def hba_block(name, database, user, clients):
    """The managed pg_hba.conf lines of one environment ('' when it has no client)."""
    if not clients:
        return ""
    lines = [HBA_BEGIN % name]
    for address in clients:
        prefix = 32 if ipaddress.ip_address(address).version == 4 else 128
        lines.append('host    "%s"    "%s"    %s/%d    scram-sha-256'
                     % (database, user, address, prefix))
    lines.append(HBA_END % name)
    return "\n".join(lines) + "\n"


def merge_hba(text, name, block):
    """pg_hba.conf `text` with this environment's managed block replaced by `block` (or
    appended; removed when `block` is ''); every other line kept as it was. A begin line
    without its end line is refused rather than guessed at."""
    begin, end = HBA_BEGIN % name, HBA_END % name
    lines = text.splitlines(True)
    starts = [i for i, ln in enumerate(lines) if ln.rstrip("\n") == begin]
    if not starts:
        if not block:
            return text
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        return "".join(lines) + block
    start = starts[0]
    stops = [i for i, ln in enumerate(lines) if i > start and ln.rstrip("\n") == end]
    if not stops:
        raise AccessoryError("pg_hba.conf has deployer's begin line for %s but not its end "
                             "line; fix the file by hand" % name)
    return "".join(lines[:start]) + block + "".join(lines[stops[0] + 1:])


def redis_quote(value):
    """A redis.conf argument: double-quoted, with \\ and \" escaped (printable ASCII only)."""
    return '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"')


def redis_conf(name, listen, port, password):
    """/etc/redis/redis-<name>.conf for Debian's redis-server@<name>.service. Holds the
    password (requirepass), hence root:redis 0640."""
    return "\n".join([
        "# Managed by deployer (accessory %s): do not edit, the next deploy rewrites it." % name,
        "bind %s" % " ".join(listen),
        "port %d" % port,
        "protected-mode yes",
        "requirepass %s" % redis_quote(password),
        "dir %s" % data_dir(REDIS, name, None),
        'dbfilename "dump.rdb"',
        "supervised systemd",
        "daemonize no",
        "pidfile /run/redis-%s/redis-server.pid" % name,
        'logfile ""',
        "loglevel notice",
        "databases 16",
        "save 3600 1 300 100 60 10000",
        "",
    ])


def redis_container_dropin(virt):
    return ("# Managed by deployer: this host is a %s container, where systemd cannot set up\n"
            "# the user namespace of Debian's PrivateUsers=true; the rest of the unit's\n"
            "# hardening stays.\n[Service]\nPrivateUsers=false\n" % virt)


# --- URLs --------------------------------------------------------------------------------


def _host(address):
    return "[%s]" % address if ":" in address else address


def env_of(kind, address, port, password, database=None, user=None):
    """The variables a client app gets: DATABASE_URL or REDIS_URL (password URL-encoded)."""
    secret = quote(password, safe="")
    if kind == POSTGRESQL:
        return {"DATABASE_URL": "postgresql://%s:%s@%s:%d/%s"
                % (quote(user, safe=""), secret, _host(address), port, quote(database, safe=""))}
    return {"REDIS_URL": "redis://:%s@%s:%d/0" % (secret, _host(address), port)}


# --- PostgreSQL SCRAM-SHA-256 verifiers --------------------------------------------------


def scram_verifier(password, salt=None, iterations=SCRAM_ITERATIONS):
    """The `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>` string PostgreSQL stores
    in pg_authid.rolpassword (RFC 5802 / 7677). Sending it instead of the password keeps
    the password itself out of the server, its logs and pg_stat_activity."""
    salt = os.urandom(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = lambda raw: base64.b64encode(raw).decode("ascii")  # noqa: E731
    return "SCRAM-SHA-256$%d:%s$%s:%s" % (iterations, b64(salt), b64(stored_key), b64(server_key))


def scram_matches(password, stored):
    """True when `stored` (pg_authid.rolpassword) is a SCRAM verifier of `password`."""
    match = re.match(r"^SCRAM-SHA-256\$([0-9]+):([A-Za-z0-9+/=]+)\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$",
                     stored or "")
    if not match:
        return False
    try:
        salt = base64.b64decode(match.group(2), validate=True)
    except ValueError:
        return False
    expected = scram_verifier(password, salt, int(match.group(1)))
    return hmac.compare_digest(expected, stored)


def scrub(text, secrets):
    """`text` with every non-empty secret (and its URL-encoded form) replaced."""
    for secret in secrets:
        if secret:
            for form in {secret, quote(secret, safe="")}:
                text = text.replace(form, "********")
    return text
