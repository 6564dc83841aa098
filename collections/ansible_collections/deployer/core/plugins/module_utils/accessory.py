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
PRIMARY, STANDBY = "primary", "standby"
ROLES = (PRIMARY, STANDBY)
REPLICATION_SUFFIX = "_replication"
WAL_KEEP_SIZE = "256MB"
BACKUPS = "/var/lib/deployer/backups"
LABEL_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
BACKUP_RE = re.compile(r"^([0-9]{8}T[0-9]{6}Z)-([A-Za-z0-9._-]{1,64})\.dump$")
FILE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,254}$")
SEAL_BYTES = 1024
"""Bytes of the one-time pad per sealed value (a password is at most 1024 characters)."""
SEALED = ("password", "replication_password")
"""The values a seal covers, each with its own segment of the pad (in this order)."""
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# What a fresh cluster holds; any other database on a host about to become a standby
# would be wiped by pg_basebackup, so its presence is a refusal.
SYSTEM_DATABASES = ("postgres", "template0", "template1")


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


def exporter_env_file(name):
    """Redis's password as REDIS_PASSWORD, for its Prometheus exporter's unit (systemd reads
    it as root; root 0600, next to the password)."""
    return "%s/redis.exporter.env" % credentials_dir(name)


def replication_file(name):
    """The primary's replication password (root 0600, next to the app's)."""
    return "%s/postgresql.replication.password" % credentials_dir(name)


def replication_user(user):
    return user + REPLICATION_SUFFIX


def backup_dir(name):
    return "%s/%s" % (BACKUPS, name)


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
    check_replication(p, out)
    check_backup(p, out)
    out["seal"] = check_seal(p["seal"]) if p.get("seal") else None
    return out


def check_seal(text):
    """The controller's one-time pad: base64 of SEAL_BYTES random bytes per SEALED value."""
    try:
        pad = base64.b64decode(text, validate=True)
    except (TypeError, ValueError):
        raise AccessoryError("seal: not base64 (the value is not shown)")
    if len(pad) != SEAL_BYTES * len(SEALED):
        raise AccessoryError("seal: must be %d bytes of base64 (the value is not shown)"
                             % (SEAL_BYTES * len(SEALED)))
    return pad


def seal(value, pad, field):
    """`value` (a checked password) XORed with SEALED[field]'s own segment of the one-time
    pad, base64. Without the pad, which only the controller keeps, it says nothing but the
    value's length; each value has a segment of its own, since a pad used twice would give
    away the XOR of the two values."""
    start = SEALED.index(field) * SEAL_BYTES
    data = value.encode("ascii")
    return base64.b64encode(bytes(a ^ b for a, b in zip(data, pad[start:start + len(data)]))
                            ).decode("ascii")


def check_replication(p, out):
    """role, standbys, primary_address/port, replication_password (postgresql only)."""
    role = p.get("role") or PRIMARY
    if role not in ROLES:
        raise AccessoryError("role: %r is not one of %s" % (role, ", ".join(ROLES)))
    out["role"] = role
    out["standbys"] = unique([_ip(a, "standbys") for a in (p.get("standbys") or [])])
    repl = p.get("replication_password")
    if repl is not None:
        check_password(repl, "replication_password")
    touched = role == STANDBY or out["standbys"] or repl is not None or p.get("primary_address")
    if touched and p["kind"] != POSTGRESQL:
        raise AccessoryError("role, standbys, primary_address and replication_password are "
                             "for kind postgresql only")
    out["replication_user"] = replication_user(out["user"]) if p["kind"] == POSTGRESQL else None
    if out["replication_user"] and not IDENT_RE.match(out["replication_user"]):
        raise AccessoryError("user: %r is too long for its replication role %r (63 characters "
                             "at most)" % (out["user"], out["replication_user"]))
    port = int(PORTS[POSTGRESQL] if p.get("primary_port") is None else p["primary_port"])
    if not 1 <= port <= 65535:
        raise AccessoryError("primary_port: %s is not a TCP port" % port)
    out["primary_port"] = port
    if role == PRIMARY:
        if p.get("primary_address"):
            raise AccessoryError("primary_address: only a standby replicates from a primary")
        out["primary_address"] = None
        return
    if not p.get("primary_address"):
        raise AccessoryError("primary_address: a standby needs the address of its primary")
    out["primary_address"] = _ip(p["primary_address"], "primary_address")
    if out["standbys"]:
        raise AccessoryError("standbys: only the primary lists its standbys (this host is one)")
    if repl is None and p.get("state", "present") in ("present", "restarted", "upgraded"):
        raise AccessoryError("replication_password: a standby needs the primary's replication "
                             "password (its result's replication.password)")


def check_backup(p, out):
    """backup_dir, backup_label, backup_keep, backup_file, backup_sha256."""
    state = p.get("state")
    if state in ("backup", "restore") and p["kind"] != POSTGRESQL:
        raise AccessoryError("state: %s is for kind postgresql only" % state)
    directory = p.get("backup_dir") or backup_dir(out["name"])
    if (not directory.startswith("/") or os.path.normpath(directory) != directory
            or directory == "/" or any(c in directory for c in "\n\x00")):
        raise AccessoryError("backup_dir: %r must be an absolute, normalised path" % directory)
    out["backup_dir"] = directory
    label = p.get("backup_label")
    if state == "backup" and label is None:
        raise AccessoryError("backup_label: a backup needs a label (e.g. the version)")
    if label is not None and not LABEL_RE.match(label):
        raise AccessoryError("backup_label: %r must match %s" % (label, LABEL_RE.pattern))
    keep = p.get("backup_keep")
    keep = 7 if keep is None else int(keep)
    if keep < 1:
        raise AccessoryError("backup_keep: keep at least 1 backup (the new one)")
    out["backup_keep"] = keep
    if state == "restore":
        if p.get("backup_file") is None:
            raise AccessoryError("backup_file: a restore needs the name of a file in %s"
                                 % directory)
        check_backup_file(p["backup_file"])
        if out["role"] == STANDBY:
            raise AccessoryError("state: a standby is read-only; restore on its primary")
    sha = p.get("backup_sha256")
    if sha is not None:
        out["backup_sha256"] = sha.lower()
        if not SHA256_RE.match(out["backup_sha256"]):
            raise AccessoryError("backup_sha256: %r is not 64 hex digits" % sha)


def check_backup_file(name):
    """A plain name of a file in backup_dir: no path, no `..`, no hidden (partial) file."""
    if not FILE_RE.match(name or "") or ".." in name:
        raise AccessoryError("backup_file: %r must be a plain file name in the backup directory "
                             "(%s, no '..')" % (name, FILE_RE.pattern))
    return name


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


def pg_conf(name, listen, port, replication=False):
    """conf.d/deployer.conf of the cluster. With replication (a primary with standbys, or a
    standby), WAL is kept for a standby that falls behind for a while; Debian 15's defaults
    (wal_level replica, max_wal_senders 10, hot_standby on) do the rest."""
    text = ("# Managed by deployer (accessory %s): do not edit, the next deploy rewrites it.\n"
            "listen_addresses = '%s'\nport = %d\n" % (name, ",".join(listen), port))
    if replication:
        text += "wal_keep_size = '%s'\n" % WAL_KEEP_SIZE
    return text


RELOADABLE = ("wal_keep_size",)


def pg_conf_needs_restart(old, new):
    """True when deployer.conf went from `old` to `new` in a setting that takes a restart
    (listen_addresses, port); a change of wal_keep_size alone takes a reload."""
    def settings(text):
        return [ln for ln in (text or "").splitlines()
                if ln.strip() and not ln.startswith("#")
                and ln.split("=", 1)[0].strip() not in RELOADABLE]
    return settings(old) != settings(new)


def hba_block(name, database, user, clients, standbys=(), replication_user=None):
    """The managed pg_hba.conf lines of one environment ('' when it has no client and no
    standby): a line per client for the app's role, a `replication` line per standby for
    the replication role."""
    if not clients and not standbys:
        return ""
    lines = [HBA_BEGIN % name]
    for address in clients:
        prefix = 32 if ipaddress.ip_address(address).version == 4 else 128
        lines.append('host    "%s"    "%s"    %s/%d    scram-sha-256'
                     % (database, user, address, prefix))
    for address in standbys:  # `replication` unquoted: the keyword, not a database's name
        prefix = 32 if ipaddress.ip_address(address).version == 4 else 128
        lines.append('host    replication    "%s"    %s/%d    scram-sha-256'
                     % (replication_user, address, prefix))
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


# --- streaming replication ---------------------------------------------------------------


def conf_value(text, key):
    """The last value of `key` in a postgresql.conf-style text (postgresql.auto.conf), with
    its quoting undone ('' and backslash escapes), or None."""
    found = None
    for line in text.splitlines():
        match = re.match(r"^\s*%s\s*=?\s*(.*)$" % re.escape(key), line)
        if not match:
            continue
        raw = match.group(1).strip()
        if raw.startswith("'"):
            out, i = [], 1
            while i < len(raw):
                c = raw[i]
                if c == "'" and raw[i + 1:i + 2] == "'":
                    out.append("'")
                    i += 2
                    continue
                if c == "'":
                    break
                if c == "\\" and i + 1 < len(raw):
                    nxt = raw[i + 1]
                    out.append({"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}.get(nxt, nxt))
                    i += 2
                    continue
                out.append(c)
                i += 1
            found = "".join(out)
        else:
            found = raw.split("#", 1)[0].strip()
    return found


def parse_conninfo(text):
    """A libpq `key=value ...` connection string as a dict (values unquoted: '...' with
    backslash escapes). AccessoryError when it cannot be read."""
    out, i, n = {}, 0, len(text or "")
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        start = i
        while i < n and text[i] not in "= \t\n":
            i += 1
        key = text[start:i]
        while i < n and text[i].isspace():
            i += 1
        if not key or i >= n or text[i] != "=":
            raise AccessoryError("primary_conninfo: cannot read it near %r" % key[:20])
        i += 1
        while i < n and text[i].isspace():
            i += 1
        value = []
        if i < n and text[i] == "'":
            i += 1
            while i < n and text[i] != "'":
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                value.append(text[i])
                i += 1
            if i >= n:
                raise AccessoryError("primary_conninfo: a quoted value of %s is not closed" % key)
            i += 1
        else:
            while i < n and not text[i].isspace():
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                value.append(text[i])
                i += 1
        out[key] = "".join(value)
    return out


def conninfo_quote(value):
    """A libpq conninfo value: bare when plain, else in '...' with \\ and ' escaped."""
    if value and re.match(r"^[A-Za-z0-9_.]+$", value):
        return value
    return "'%s'" % value.replace("\\", "\\\\").replace("'", "\\'")


def render_conninfo(conninfo):
    return " ".join("%s=%s" % (key, conninfo_quote(value)) for key, value in conninfo.items())


def set_conf_value(text, key, value):
    """A postgresql.conf-style `text` with `key` set to the quoted `value` (' and \\ doubled,
    as ALTER SYSTEM and pg_basebackup -R write it): its first line replaced, any later ones
    dropped, or a line appended."""
    line = "%s = '%s'\n" % (key, value.replace("\\", "\\\\").replace("'", "''"))
    out, done = [], False
    for old in text.splitlines(True):
        if re.match(r"^\s*%s\s*=" % re.escape(key), old):
            if not done:
                out.append(line)
                done = True
            continue
        out.append(old)
    if not done:
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
        out.append(line)
    return "".join(out)


def conninfo_matches(conninfo, host, port, user):
    """True when a parsed primary_conninfo replicates from host:port as `user`."""
    try:
        same_host = (conninfo.get("host") == host
                     or str(ipaddress.ip_address(conninfo.get("hostaddr") or conninfo.get("host")
                                                 or "")) == host)
    except ValueError:
        same_host = False
    return (same_host and str(conninfo.get("port") or PORTS[POSTGRESQL]) == str(port)
            and conninfo.get("user") == user)


# --- backups -----------------------------------------------------------------------------


def backup_name(when, label):
    """`<UTC timestamp>-<label>.dump` for a datetime `when` (UTC): name order is time order."""
    return "%s-%s.dump" % (when.strftime("%Y%m%dT%H%M%SZ"), label)


def partial_name(name):
    return ".%s.partial" % name


def backups_to_prune(names, keep):
    """The backup files (named by backup_name) beyond the newest `keep`, oldest first; every
    other name (partial files, anything else) is never selected."""
    dumps = sorted((BACKUP_RE.match(n).group(1), n) for n in names if BACKUP_RE.match(n))
    return [n for _, n in dumps[:max(0, len(dumps) - keep)]]


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
