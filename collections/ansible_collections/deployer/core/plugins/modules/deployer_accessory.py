#!/usr/bin/python
# Copyright: deployer contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Set up (or report on) an environment's PostgreSQL database or Redis instance in one step."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deployer_accessory
short_description: Install, configure and start an environment's PostgreSQL database or Redis instance in one step
version_added: "0.4.0"
description:
  - One remote step per host, as root. Everything comes from Debian 12's packages; nothing
    is templated from what a host says, and every command is an argv, never a shell.
  - First the preflight, before anything is installed or written - the parameters, the
    major version of what is installed (or of what apt would install; another major
    version fails) and, with O(storage_bytes), the free space of the filesystem holding the
    data directory (its nearest existing parent when it does not exist yet).
  - When the packages are missing and O(install) is true, C(apt-get install -y
    --no-install-recommends) (C(DEBIAN_FRONTEND=noninteractive)); C(apt-get update) runs
    first only when apt knows no candidate for them (no package lists).
  - The password - O(password) when given, else the one stored, else a new
    one, from C(secrets.token_urlsafe) (32 bytes) - is kept in C(/etc/deployer/accessories/<name>/<kind>.password)
    (the directory root 0700, the file root 0600, never through a link).
  - C(postgresql) - the Debian cluster C(<version>/main). Writes
    C(/etc/postgresql/<version>/main/conf.d/deployer.conf) (C(listen_addresses) = O(listen)
    and 127.0.0.1, C(port)) and this environment's block of C(pg_hba.conf) (one C(host
    <database> <user> <client>/32 scram-sha-256) line per client; other lines and other
    environments' blocks are kept). Enables and starts C(postgresql@<version>-main.service),
    restarts it only when the listen addresses or the port changed and reloads it when
    C(pg_hba.conf) or C(wal_keep_size) changed. Then creates the LOGIN role O(user) and
    the database O(database) owned by it, with C(psql) run as C(postgres) (SQL on stdin, names and values
    as psql variables, never interpolated into SQL text). The password is sent as a
    SCRAM-SHA-256 verifier computed here, so the server, its log and pg_stat_activity never
    see the password itself; a stored verifier of the same password is left alone.
  - C(redis) - one instance per environment with Debian's template unit
    C(redis-server@<name>.service) and C(/etc/redis/redis-<name>.conf) (root:redis 0640, since it
    holds C(requirepass)) binding O(listen) and 127.0.0.1 with protected mode on, data in
    C(/var/lib/redis/<name>) (redis 0750), supervised by systemd, logging to the journal.
    Two environments on one host never share an instance. Its password is also written as
    C(REDIS_PASSWORD) to C(/etc/deployer/accessories/<name>/redis.exporter.env) (root 0600),
    the environment file of its Prometheus exporter when monitoring is on. Inside a container (where
    systemd cannot set up the user namespace of the template's C(PrivateUsers=true)) a
    drop-in C(deployer-container.conf) turns that one setting off; elsewhere the template
    runs as Debian ships it. Restarted when its
    configuration changed. When this run installed the package, Debian's default instance
    (C(redis-server.service)) is stopped and disabled. Redis has no per-address access
    control - O(clients) is not enforced, the password is the only gate (bind private
    addresses only).
  - C(postgresql) streaming replication - O(role=primary) with O(standbys) adds the
    REPLICATION LOGIN role C(<user>_replication) (its password a SCRAM verifier computed
    here; O(replication_password), else the one stored in
    C(/etc/deployer/accessories/<name>/postgresql.replication.password), root 0600, else one
    generated once), a C(host replication <that role> <standby>/32 scram-sha-256) line per
    standby in the environment's C(pg_hba.conf) block and C(wal_keep_size = 256MB) in
    C(deployer.conf) (Debian's defaults do the rest - C(wal_level replica),
    C(max_wal_senders 10), C(hot_standby on)).
  - O(role=standby) - when the data directory already is a standby of
    O(primary_address):O(primary_port) as that role (C(standby.signal), and
    C(primary_conninfo) in C(postgresql.auto.conf)) nothing changes. Otherwise, unless the
    cluster holds databases besides postgres, template0 and template1 (refused, naming them -
    they would be wiped), the cluster is stopped, its data directory emptied and
    C(pg_basebackup -R -X stream) run as postgres from the primary, the password in that
    child's environment only (C(PGPASSWORD)); C(-R) leaves it in C(primary_conninfo) in the
    data directory's C(postgresql.auto.conf) (postgres 0600), the one place the standby keeps
    it. Then the cluster starts and the step waits for C(pg_is_in_recovery()). A standby has
    no role, database, credentials file or C(env) of its own (apps use the primary).
  - O(state=backup) - C(pg_dump -Fc) of O(database) as postgres, its output written by root to
    C(<backup_dir>/.<file>.partial) (0600) while its sha256 is computed, then linked to
    C(<UTC timestamp>-<label>.dump) (never over an existing file); the oldest files named
    like that beyond O(backup_keep) are then removed. O(state=restore) - C(pg_restore --clean
    --if-exists --no-owner --role=<user>) into O(database), fed O(backup_file) on stdin (opened
    without following a link, its sha256 checked first with O(backup_sha256)). Their failures
    report C(stage) C(backup) and C(restore); a failed backup leaves no partial file.
  - A converged run changes nothing (C(changed=false)).
options:
  kind:
    description: Which accessory.
    type: str
    required: true
    choices: [postgresql, redis]
  state:
    description:
      - C(present) - install when missing, configure, start, ensure credentials, check storage.
      - C(status) - only report (installed version, running, free space, C(connections) or
        C(used_memory)); never changes anything, never generates a password.
      - C(restarted) - C(present), then a restart.
      - C(upgraded) - C(apt-get update), C(apt-get install --only-upgrade) of the packages
        (within the major version), then C(present) and a restart; reports the old and new
        package versions.
      - C(backup), C(restore) (postgresql) - see above; the cluster must be installed and
        running (nothing is installed or configured). A standby may be backed up, never
        restored into.
    type: str
    default: present
    choices: [present, status, restarted, upgraded, backup, restore]
  name:
    description:
      - The app's environment, e.g. C(shop-lab) (C(^[a-z0-9][a-z0-9_-]{0,62}$)). Names the
        credentials directory, the Redis instance and, with C(-) as C(_), the PostgreSQL role
        and database by default.
    type: str
    required: true
  version:
    description: Major version the environment asks for (C(15) for postgresql, C(7) for redis).
    type: str
    required: true
  address:
    description: Private address clients connect to (an IP address); in the returned URL.
    type: str
    required: true
  listen:
    description: Addresses to bind (default O(address)); 127.0.0.1 is always added.
    type: list
    elements: str
  port:
    description: TCP port (default 5432 for postgresql, 6379 for redis).
    type: int
  clients:
    description: Client addresses allowed to connect (postgresql only; see above for redis).
    type: list
    elements: str
    default: []
  database:
    description: PostgreSQL database (default O(name) with C(-) as C(_)); C(^[a-z0-9_]{1,63}$).
    type: str
  user:
    description: PostgreSQL role (default O(name) with C(-) as C(_)); C(^[a-z0-9_]{1,63}$).
    type: str
  password:
    description:
      - The password to set and store (1-1024 printable ASCII characters). Without it the
        stored one is used, or one is generated once.
    type: str
  rotate:
    description:
      - When O(password) (or a primary's O(replication_password)) differs from the one stored,
        replace it (true) or fail naming the file and change nothing (false - what a deploy
        asks, since the releases' env files and a rollback's target hold the stored one).
    type: bool
    default: true
  seal:
    description:
      - A one-time pad (base64 of 2048 random bytes) the controller keeps in memory. With it
        the result's C(deployer.accessory.sealed) holds the password and a primary's
        replication password, each XORed with its own half of the pad (base64), so the
        controller can keep them in the project's vault while every log and event carries only
        text that means nothing without the pad. No effect with O(state=status) or on a
        standby.
    type: str
  storage_bytes:
    description: Free bytes the data directory's filesystem must have (0 - no check).
    type: int
    default: 0
  install:
    description: Install the packages when missing (else fail).
    type: bool
    default: true
  timeout:
    description: Seconds to wait for PostgreSQL to accept connections after a (re)start.
    type: float
    default: 60
  role:
    description: C(primary) (the app's database) or C(standby) (a streaming replica of O(primary_address)); postgresql only.
    type: str
    default: primary
    choices: [primary, standby]
  standbys:
    description: On a primary, the standbys' addresses allowed to replicate (a C(pg_hba.conf) replication line each).
    type: list
    elements: str
    default: []
  primary_address:
    description: On a standby (required there), the primary's address to replicate from (an IP address).
    type: str
  primary_port:
    description: On a standby, the primary's port.
    type: int
    default: 5432
  replication_password:
    description:
      - The replication role's password (1-1024 printable ASCII characters). On a standby,
        required (the primary's result's C(replication.password)); on a primary, optional (else
        the stored one, or one generated once when O(standbys) is not empty).
    type: str
  backup_dir:
    description: Where backups are kept (root 0700; every component of the path root's and no link).
    type: str
    default: /var/lib/deployer/backups/<name>
  backup_label:
    description: With O(state=backup) (required), the file name's label, e.g. the app's version (C(^[A-Za-z0-9._-]{1,64}$)).
    type: str
  backup_keep:
    description: Backups of this environment kept after a successful one (the new one included); older ones are removed.
    type: int
    default: 7
  backup_file:
    description: With O(state=restore) (required), the name of a file in O(backup_dir) (no C(/), no C(..)).
    type: str
  backup_sha256:
    description: With O(state=restore), the sha256 the file must have (checked before anything is restored).
    type: str
author:
  - deployer contributors
notes:
  - Check mode reports like O(state=status) and changes nothing.
  - Run the task with C(no_log) - its result holds C(env) with the password (and a primary's
    C(replication) its replication password).
"""

EXAMPLES = r"""
- name: Set up the environment's database
  deployer.core.deployer_accessory:
    kind: postgresql
    name: shop-lab
    version: "15"
    address: 10.0.0.5
    clients: [10.0.0.11, 10.0.0.12]
    storage_bytes: 2000000000
  register: postgresql_result
  no_log: true

- name: Let 10.0.0.6 replicate from the primary (whose result holds the replication password)
  deployer.core.deployer_accessory:
    kind: postgresql
    name: shop-lab
    version: "15"
    address: 10.0.0.5
    clients: [10.0.0.11]
    standbys: [10.0.0.6]
  register: postgresql_result
  no_log: true

- name: Make 10.0.0.6 a standby of 10.0.0.5
  deployer.core.deployer_accessory:
    kind: postgresql
    name: shop-lab
    version: "15"
    address: 10.0.0.6
    role: standby
    primary_address: 10.0.0.5
    replication_password: "{{ hostvars['db1'].postgresql_result.replication.password }}"
  no_log: true

- name: Back up the database before a migration
  deployer.core.deployer_accessory:
    kind: postgresql
    name: shop-lab
    version: "15"
    address: 10.0.0.5
    state: backup
    backup_label: v42
  register: postgresql_backup
"""

RETURN = r"""
deployer:
  description: What was found and done; never a secret.
  returned: always
  type: dict
  contains:
    stage:
      description: C(accessory); C(backup) or C(restore) with those states.
      type: str
    accessory:
      description:
        - C(kind), C(name), C(version) (installed package version string, or null),
          C(port), C(address), C(data_dir), C(free_bytes), C(running) (bool),
          C(changed_parts) (list - package, upgraded, cluster, credentials, data_dir,
          config, pg_hba, unit, enabled, started, restarted, reloaded, role, password,
          database, replication_role, replication_password, basebackup, backup_dir, backup,
          restore; C(unit) is the drop-in below).
        - postgresql - C(role) (C(primary) or C(standby)); a standby's C(primary)
          (C(<address>:<port>)), C(in_recovery) (bool) and C(lag_bytes) (WAL received but not
          yet replayed); a primary's C(standbys) - a list of C({address, state, lag_bytes})
          from pg_stat_replication (C(lag_bytes) - its replay position behind the current WAL).
          A C(lag_bytes) is null while nothing was received (standby) or replayed (primary).
          Reported when the cluster runs (with O(state=present) and O(state=status)).
        - With O(state=backup), C(backup) - C(file), C(bytes), C(sha256), C(seconds),
          C(dir) and C(pruned) (the names removed). With O(state=restore), C(restore) -
          C(file) and C(seconds).
        - C(unit) (the systemd unit). With O(state=upgraded), C(upgrade) - for each
          package, C(from) and C(to) (its versions before and after).
        - With O(state=status) and the service running, C(connections) (postgresql -
          sessions on the database, from pg_stat_activity) or C(used_memory) (redis - bytes,
          from INFO memory).
        - With O(seal) (a primary, or redis, set up), C(sealed) - C(password) and, once it
          exists, C(replication_password), each sealed with its own half of the pad (see
          O(seal)); meaningless without the pad.
      type: dict
env:
  description:
    - C({"DATABASE_URL" - "postgresql://<user>:<password>@<address>:<port>/<database>"}) or
      C({"REDIS_URL" - "redis://:<password>@<address>:<port>/0"}), password URL-encoded.
    - Secret - register the result with C(no_log). Absent when no password is known (status of
      an accessory never set up).
  returned: success
  type: dict
replication:
  description:
    - A primary's C({"password" - <replication password>, "user" - <user>_replication}), for
      the play setting up its standbys. Secret - register the result with C(no_log). Absent
      when the primary has none (no standbys, none given or stored).
  returned: success
  type: dict
"""

import datetime
import hashlib
import os
import re
import secrets
import shutil
import stat
import subprocess
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.deployer.core.plugins.module_utils import accessory as acc
from ansible_collections.deployer.core.plugins.module_utils import envfile
from ansible_collections.deployer.core.plugins.module_utils.layout import (
    ensure_dir,
    free_bytes,
    write_atomic,
)
from ansible_collections.deployer.core.plugins.module_utils.systemd import Systemd, describe

STAGE = "accessory"
BACKUP_STAGE, RESTORE_STAGE = "backup", "restore"
PG_SOCKET_DIR = "/var/run/postgresql"
REDIS_TEMPLATE = "/lib/systemd/system/redis-server@.service"
_NOFOLLOW = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
APT_OPTS = ["-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"]

MODULE_SPEC = dict(
    argument_spec=dict(
        kind=dict(type="str", required=True, choices=list(acc.KINDS)),
        state=dict(type="str", default="present",
                   choices=["present", "status", "restarted", "upgraded", "backup", "restore"]),
        name=dict(type="str", required=True),
        version=dict(type="str", required=True),
        address=dict(type="str", required=True),
        listen=dict(type="list", elements="str"),
        port=dict(type="int"),
        clients=dict(type="list", elements="str", default=[]),
        database=dict(type="str"),
        user=dict(type="str"),
        password=dict(type="str", no_log=True),
        rotate=dict(type="bool", default=True),
        seal=dict(type="str", no_log=True),
        storage_bytes=dict(type="int", default=0),
        install=dict(type="bool", default=True),
        timeout=dict(type="float", default=60),
        role=dict(type="str", default="primary", choices=list(acc.ROLES)),
        standbys=dict(type="list", elements="str", default=[]),
        primary_address=dict(type="str"),
        primary_port=dict(type="int", default=5432),
        replication_password=dict(type="str", no_log=True),
        backup_dir=dict(type="str"),
        backup_label=dict(type="str"),
        backup_keep=dict(type="int", default=7),
        backup_file=dict(type="str"),
        backup_sha256=dict(type="str"),
    ),
    supports_check_mode=True,
)


def stage_of(state):
    """The `stage` a run reports: backup and restore have their own."""
    return {"backup": BACKUP_STAGE, "restore": RESTORE_STAGE}.get(state, STAGE)


def read_text(path):
    """A file's text, never through a link (nor from a fifo); None when missing."""
    try:
        fd = os.open(path, _NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise acc.AccessoryError("%s cannot be read safely (%s)" % (path, exc.strerror))
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise acc.AccessoryError("%s is not a regular file" % path)
        return handle.read(1 << 20).decode("utf-8", "replace")


class Accessory(object):
    """One run on one host: `p` is check_params' output."""

    def __init__(self, module, p):
        self.module = module
        self.p = p
        self.kind, self.name, self.version = p["kind"], p["name"], p["version"]
        self.read_only = p["state"] == "status" or module.check_mode
        self.unit = acc.unit(self.kind, self.name, self.version)
        self.data_dir = acc.data_dir(self.kind, self.name, self.version)
        self.password = None
        self.replication_password = None
        self.stage = stage_of(p["state"])
        self.changed_parts = []
        self.systemd = None
        self.info = dict(kind=self.kind, name=self.name, version=None, port=p["port"],
                         address=p["address"], data_dir=self.data_dir, free_bytes=None,
                         running=False, changed_parts=self.changed_parts, unit=self.unit)
        if self.kind == acc.POSTGRESQL:
            self.info["role"] = p["role"]
            if p["role"] == acc.STANDBY:
                self.info["primary"] = "%s:%d" % (p["primary_address"], p["primary_port"])

    def changed(self, part):
        if part not in self.changed_parts:
            self.changed_parts.append(part)

    # --- commands ------------------------------------------------------------------------

    def run(self, argv, env=None, what=None):
        rc, out, err = self.module.run_command(argv, environ_update=env or {})
        if rc != 0 and what:
            lines = [ln for ln in (err or out).strip().splitlines() if ln.strip()][-4:]
            raise acc.AccessoryError("%s failed (exit %d): %s" % (what, rc, " | ".join(lines)))
        return rc, out, err

    def installed(self, package):
        """Installed version of `package`, or None."""
        rc, out, _ = self.run(["dpkg-query", "-W", "-f", "${db:Status-Status}\t${Version}",
                               package])
        status, _, version = out.partition("\t")
        return version.strip() if rc == 0 and status == "installed" else None

    def candidate(self, package):
        rc, out, _ = self.run(["apt-cache", "policy", package], env=APT_ENV)
        match = re.search(r"^\s*Candidate:\s*(\S+)", out, re.M)
        if rc != 0 or not match or match.group(1) == "(none)":
            return None
        return match.group(1)

    def other_postgresql(self):
        """Installed PostgreSQL server majors other than the one asked for."""
        _, out, _ = self.run(["dpkg-query", "-W", "-f", "${Package}\t${db:Status-Status}\n",
                              "postgresql-[0-9]*"])
        found = []
        for line in out.splitlines():
            package, _, status = line.partition("\t")
            match = re.match(r"^postgresql-([0-9]+)$", package)
            if match and status == "installed" and match.group(1) != self.version:
                found.append(match.group(1))
        return found

    # --- preflight -----------------------------------------------------------------------

    def check_storage(self):
        free, measured = free_bytes(self.data_dir)
        self.info["free_bytes"] = free
        problem = acc.storage_error(self.data_dir, measured, free, self.p["storage_bytes"])
        if problem:
            raise acc.AccessoryError(problem)

    def package(self):
        """Check the installed major version; install when missing (and allowed)."""
        package = acc.packages(self.kind, self.version)[0]
        version = self.installed(package)
        if version is None and self.kind == acc.POSTGRESQL:
            others = self.other_postgresql()
            if others:
                acc.check_major(self.kind, self.version, others[0], "installed here")
        if version is not None:
            acc.check_major(self.kind, self.version, version, "installed here")
        elif self.read_only:
            return None
        elif not self.p["install"]:
            raise acc.AccessoryError("%s is not installed on this host and install is false"
                                     % package)
        else:
            version = self.install(package)
        self.info["version"] = version
        return version

    def install(self, package):
        candidate = self.candidate(package)
        if candidate is None:  # no package lists (or stale ones): fetch them once
            self.run(["apt-get", "update"], env=APT_ENV, what="apt-get update")
            candidate = self.candidate(package)
        if candidate is None:
            meta = self.candidate(acc.POSTGRESQL if self.kind == acc.POSTGRESQL else package)
            raise acc.AccessoryError(
                "apt has no %s to install%s" % (package, "; its postgresql is %s" % meta
                                                if meta and meta != package else ""))
        acc.check_major(self.kind, self.version, candidate, "what apt would install")
        self.run(["apt-get", "install", "-y", "--no-install-recommends"] + APT_OPTS + [package],
                 env=APT_ENV, what="apt-get install %s" % package)
        self.changed("package")
        version = self.installed(package)
        if version is None:
            raise acc.AccessoryError("%s is still not installed after apt-get install" % package)
        acc.check_major(self.kind, self.version, version, "installed here")
        if self.kind == acc.REDIS:
            # Debian's package starts its default instance (127.0.0.1:6379); this
            # environment has its own instance, which may want that port.
            self.systemd_().run("disable", "--now", "redis-server.service")
        return version

    def upgrade(self):
        """apt-get install --only-upgrade, within the major version."""
        self.run(["apt-get", "update"], env=APT_ENV, what="apt-get update")
        names = acc.packages(self.kind, self.version)
        before = dict((n, self.installed(n)) for n in names)
        self.run(["apt-get", "install", "-y", "--no-install-recommends", "--only-upgrade"]
                 + APT_OPTS + names, env=APT_ENV, what="apt-get install --only-upgrade")
        after = dict((n, self.installed(n)) for n in names)
        self.info["upgrade"] = dict((n, {"from": before[n], "to": after[n]}) for n in names)
        for n in names:
            if after[n]:
                acc.check_major(self.kind, self.version, after[n], "after the upgrade")
        if before != after:
            self.changed("upgraded")

    # --- credentials ---------------------------------------------------------------------

    def credentials(self):
        self.password = self.secret(acc.credentials_file(self.name, self.kind),
                                    self.p.get("password"), "credentials")

    def replication_credentials(self):
        """The primary's replication password: given, else stored, else generated once -
        only once replication is asked for (standbys listed or a password given); a status
        or a primary without standbys only reads the stored one."""
        p = self.p
        path = acc.replication_file(self.name)
        wanted = p["standbys"] or p.get("replication_password") is not None
        self.replication_password = self.secret(
            path, p.get("replication_password"), "credentials",
            create=bool(wanted) and not self.read_only)

    def secret(self, path, given, part, create=True):
        """`given`, else the value stored in `path`, else a new one (stored when `create`);
        the file root 0600 in root's 0700 directory, never read or written through a link."""
        stored = None
        try:
            fd = os.open(path, _NOFOLLOW)
        except FileNotFoundError:
            fd = None
        except OSError as exc:
            raise acc.AccessoryError("%s cannot be read safely (%s)" % (path, exc.strerror))
        if fd is not None:
            with os.fdopen(fd, "rb") as handle:
                st = os.fstat(handle.fileno())
                if not stat.S_ISREG(st.st_mode) or st.st_uid != 0:
                    raise acc.AccessoryError("%s is not a regular file of root's" % path)
                stored = handle.read(4096).decode("ascii", "replace").rstrip("\n") or None
                if stored is not None:
                    acc.check_password(stored, "the password stored in %s" % path)
        password = given or stored
        if self.read_only or not create:
            return stored
        if given and stored and given != stored and not self.p["rotate"]:
            raise acc.AccessoryError(
                "%s holds another password than the one given (the project's vault), and it is "
                "not replaced behind the releases that use it (rotate=false): nothing was "
                "changed; make the vault's value the host's, or remove it from the vault to "
                "have the host's read back" % path)
        if password is None:
            password = secrets.token_urlsafe(32)
        parent = acc.CREDENTIALS
        if not os.path.isdir(os.path.dirname(parent)):
            os.makedirs(os.path.dirname(parent), 0o755)
        for directory in (parent, os.path.dirname(path)):
            if os.path.islink(directory):
                raise acc.AccessoryError("%s is a symlink; deployer does not follow it" % directory)
            if ensure_dir(directory, 0o700):
                self.changed(part)
        if os.path.islink(path) or stored != password:
            write_atomic(path, (password + "\n").encode("ascii"), 0o600, 0, 0)
            self.changed(part)
        else:
            st = os.lstat(path)
            if stat.S_IMODE(st.st_mode) != 0o600 or (st.st_uid, st.st_gid) != (0, 0):
                os.chmod(path, 0o600)
                os.chown(path, 0, 0)
                self.changed(part)
        return password

    # --- files ---------------------------------------------------------------------------

    def write(self, path, text, mode, uid, gid, part):
        """Write `path` when its text, mode or owner differ; True when it did."""
        data = text.encode("utf-8")
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        current = read_text(path) if st is not None and stat.S_ISREG(st.st_mode) else None
        if (current is not None and current.encode("utf-8") == data
                and (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (mode, uid, gid)):
            return False
        write_atomic(path, data, mode, uid, gid)  # a link planted there is replaced, not followed
        self.changed(part)
        return True

    # --- services ------------------------------------------------------------------------

    def systemd_(self):
        if self.systemd is None:
            self.systemd = Systemd(self.module)
        return self.systemd

    def active(self):
        rc, _ = self.systemd_().run("is-active", "--quiet", self.unit)
        return rc == 0

    def service(self, restart, reload=False):
        """Enable and start the unit; restart or reload it as asked when it runs."""
        sd = self.systemd_()
        rc, out = sd.run("is-enabled", self.unit)
        if out.strip() != "enabled":
            self.check(sd.run("enable", self.unit), "enable")
            self.changed("enabled")
        if not self.active():
            self.check(sd.run("start", self.unit), "start")
            self.changed("started")
        elif restart or self.p["state"] in ("restarted", "upgraded"):
            self.check(sd.run("restart", self.unit), "restart")
            self.changed("restarted")
        elif reload:
            self.check(sd.run("reload", self.unit), "reload")
            self.changed("reloaded")
        self.info["running"] = self.active()
        if not self.info["running"]:
            self.check((1, ""), "keep running")

    def check(self, result, verb):
        rc, out = result
        if rc == 0:
            return
        props = self.systemd_().show(self.unit)[self.unit]
        _, log, _ = self.run(["journalctl", "-u", self.unit, "-n", "5", "--no-pager", "-o",
                              "cat"])
        lines = [ln for ln in log.strip().splitlines() if ln.strip()][-5:]
        raise acc.AccessoryError("systemctl %s %s failed: %s; %s%s" % (
            verb, self.unit, out or "no output", describe(props),
            ("; last log lines: " + " | ".join(lines)) if lines else ""))

    # --- PostgreSQL ----------------------------------------------------------------------

    def psql(self, sql, **variables):
        """Rows of `sql` run by psql as postgres over the local socket. Values travel in
        the environment (read only by root and postgres) and reach the SQL as psql
        variables (:'v' literals, :"v" identifiers), never as SQL text or argv."""
        env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "PGAPPNAME": "deployer"}
        head = ""
        for key, value in sorted(variables.items()):
            env["DEPLOYER_PG_" + key.upper()] = value
            head += "\\getenv %s DEPLOYER_PG_%s\n" % (key, key.upper())
        argv = ["psql", "-X", "-q", "-A", "-t", "-F", "\x1f", "-v", "ON_ERROR_STOP=1",
                "-h", PG_SOCKET_DIR, "-p", str(self.p["port"]), "-d", "postgres"]
        try:
            proc = subprocess.run(argv, input=head + sql, env=env, user="postgres",
                                  group="postgres", extra_groups=[], cwd="/",
                                  capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            raise acc.AccessoryError("psql could not run: %s" % exc)
        if proc.returncode != 0:
            hidden = [self.password, self.replication_password] + [
                v for v in variables.values() if v.startswith("SCRAM")]
            raise acc.AccessoryError("psql failed (exit %d): %s" % (
                proc.returncode, acc.scrub(proc.stderr.strip(), hidden)[-600:]))
        return [line.split("\x1f") for line in proc.stdout.splitlines() if line]

    def wait_ready(self):
        deadline = time.monotonic() + self.p["timeout"]
        while True:
            rc, out, err = self.run(["pg_isready", "-q", "-h", PG_SOCKET_DIR, "-p",
                                     str(self.p["port"])])
            if rc == 0:
                return
            if time.monotonic() > deadline:
                raise acc.AccessoryError("PostgreSQL did not accept connections on port %d "
                                         "within %ss" % (self.p["port"], self.p["timeout"]))
            time.sleep(0.5)

    def postgresql(self):
        v, p = self.version, self.p
        conf_dir = acc.pg_conf_dir(v)
        if not os.path.isfile(conf_dir + "/postgresql.conf"):
            self.run(["pg_createcluster", v, "main"], what="pg_createcluster %s main" % v)
            self.changed("cluster")
        owner = os.stat(conf_dir)
        uid, gid = owner.st_uid, owner.st_gid
        if not os.path.isdir(conf_dir + "/conf.d"):
            ensure_dir(conf_dir + "/conf.d", 0o755, uid, gid)
        standby = p["role"] == acc.STANDBY
        current = self.standby_of_primary() if standby else None
        copy = standby and current is None
        if copy:  # refused before anything is written when it would wipe databases
            self.refuse_to_wipe()
        replicating = standby or bool(p["standbys"])
        conf_path = conf_dir + "/conf.d/deployer.conf"
        old_conf = read_text(conf_path)
        conf = acc.pg_conf(self.name, p["listen"], p["port"], replicating)
        restart = reload = False
        if self.write(conf_path, conf, 0o644, uid, gid, "config"):
            restart = acc.pg_conf_needs_restart(old_conf, conf)
            reload = not restart
        hba_path = conf_dir + "/pg_hba.conf"
        hba = read_text(hba_path) or ""
        block = acc.hba_block(self.name, p["database"], p["user"], p["clients"],
                              p["standbys"], p["replication_user"])
        merged = acc.merge_hba(hba, self.name, block)
        reload = self.write(hba_path, merged, 0o640, uid, gid, "pg_hba") or reload
        if copy:
            self.make_standby()
            return
        if standby and current.get("password") != p["replication_password"]:
            restart = self.new_replication_password(current) or restart
        self.service(restart, reload)
        self.wait_ready()
        if standby:  # its role and database are the primary's, replicated
            return
        self.role_and_database()
        if self.replication_password:
            self.replication_role()

    # --- streaming replication -----------------------------------------------------------

    def replication_role(self):
        """The primary's REPLICATION LOGIN role, its password a SCRAM verifier."""
        user = self.p["replication_user"]
        rows = self.psql("SELECT rolcanlogin, rolreplication, coalesce(rolpassword, '') "
                         "FROM pg_authid WHERE rolname = :'user';\n", user=user)
        if not rows:
            self.psql('CREATE ROLE :"user" REPLICATION LOGIN PASSWORD :\'verifier\';\n',
                      user=user, verifier=acc.scram_verifier(self.replication_password))
            self.changed("replication_role")
            return
        row = rows[0] + ["", "", ""]
        if row[0] != "t" or row[1] != "t":
            self.psql('ALTER ROLE :"user" REPLICATION LOGIN;\n', user=user)
            self.changed("replication_role")
        if not acc.scram_matches(self.replication_password, row[2]):
            self.psql('ALTER ROLE :"user" PASSWORD :\'verifier\';\n', user=user,
                      verifier=acc.scram_verifier(self.replication_password))
            self.changed("replication_password")

    def standby_of_primary(self):
        """The parsed primary_conninfo when the data directory already is a standby of
        primary_address:port as the replication role (standby.signal, and primary_conninfo
        in postgresql.auto.conf), else None."""
        p = self.p
        try:
            st = os.lstat(self.data_dir + "/standby.signal")
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        auto = read_text(self.data_dir + "/postgresql.auto.conf") or ""
        value = acc.conf_value(auto, "primary_conninfo")
        if not value:
            return None
        try:
            conninfo = acc.parse_conninfo(value)
        except acc.AccessoryError:
            return None
        if not acc.conninfo_matches(conninfo, p["primary_address"], p["primary_port"],
                                    p["replication_user"]):
            return None
        return conninfo

    def new_replication_password(self, conninfo):
        """The primary's replication password changed: rewrite primary_conninfo in
        postgresql.auto.conf (postgres 0600, by rename: a link there is replaced, never
        followed) with it, the rest as it was. Then a restart, not a reload: on a reload
        PostgreSQL logs `parameter "primary_conninfo" changed to "..."`, password and all."""
        import pwd

        pg = pwd.getpwnam("postgres")
        path = self.data_dir + "/postgresql.auto.conf"
        conninfo = dict(conninfo, password=self.p["replication_password"])
        text = acc.set_conf_value(read_text(path) or "", "primary_conninfo",
                                  acc.render_conninfo(conninfo))
        write_atomic(path, text.encode("utf-8"), 0o600, pg.pw_uid, pg.pw_gid)
        self.changed("replication_password")
        return True

    def refuse_to_wipe(self):
        """Fail, naming them, when the cluster holds databases besides the system ones
        (pg_basebackup would wipe them); an existing cluster is started to be asked."""
        if not os.path.lexists(self.data_dir + "/PG_VERSION"):
            return  # no cluster data (an earlier copy failed half-way): nothing to lose
        self.service(False)
        self.wait_ready()
        rows = self.psql("SELECT datname FROM pg_database WHERE NOT (datname = ANY "
                         "(string_to_array(:'system', ',')::name[])) ORDER BY 1;\n",
                         system=",".join(acc.SYSTEM_DATABASES))
        if rows:
            raise acc.AccessoryError(
                "this cluster holds the databases %s; becoming a standby of %s would wipe "
                "them - deployer refuses (drop them or use another host)"
                % (", ".join(r[0] for r in rows), self.info["primary"]))

    def make_standby(self):
        """Replace the data directory with pg_basebackup's copy of the primary's, start the
        cluster and wait until it is in recovery."""
        sd = self.systemd_()
        if self.active():
            self.check(sd.run("stop", self.unit), "stop")
        self.empty_data_dir()
        self.changed("data_dir")
        self.basebackup()
        self.changed("basebackup")
        rc, out = sd.run("is-enabled", self.unit)
        if out.strip() != "enabled":
            self.check(sd.run("enable", self.unit), "enable")
            self.changed("enabled")
        self.check(sd.run("start", self.unit), "start")
        self.changed("started")
        self.info["running"] = self.active()
        self.wait_ready()
        self.wait_recovery()

    def empty_data_dir(self):
        """Remove everything in the data directory (postgres 0700), never following a link:
        the directory itself stays (its owner and mode are the cluster's)."""
        import pwd

        pg = pwd.getpwnam("postgres")
        path = self.data_dir
        if not os.path.lexists(path):
            ensure_dir(path, 0o700, pg.pw_uid, pg.pw_gid)
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != pg.pw_uid:
            raise acc.AccessoryError("%s is not a directory of postgres' (a link?); deployer "
                                     "does not follow it" % path)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            for entry in os.scandir(fd):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.name, dir_fd=fd)  # fd-based: links are removed, not followed
                else:
                    os.unlink(entry.name, dir_fd=fd)
        finally:
            os.close(fd)
        os.chmod(path, 0o700)

    def basebackup(self):
        """pg_basebackup as postgres, the password in the child's environment only; -R
        writes standby.signal and primary_conninfo (with the password) into the data
        directory's postgresql.auto.conf (postgres 0600)."""
        p = self.p
        argv = ["pg_basebackup", "-h", p["primary_address"], "-p", str(p["primary_port"]),
                "-U", p["replication_user"], "-D", self.data_dir, "-R", "-X", "stream",
                "-c", "fast", "-w"]
        # No PGAPPNAME: -R would write it into primary_conninfo, naming the standby's WAL
        # receiver "deployer" in the primary's pg_stat_replication.
        env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8",
               "PGPASSWORD": p["replication_password"], "PGCONNECT_TIMEOUT": "10"}
        try:
            proc = subprocess.run(argv, env=env, user="postgres", group="postgres",
                                  extra_groups=[], cwd="/", stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, check=False,
                                  timeout=max(600, p["timeout"]))
        except (OSError, subprocess.SubprocessError) as exc:
            raise acc.AccessoryError("pg_basebackup could not run: %s" % exc)
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()][-4:]
            raise acc.AccessoryError("pg_basebackup from %s failed (exit %d): %s" % (
                self.info["primary"], proc.returncode,
                acc.scrub(" | ".join(lines), [p["replication_password"]])))

    def wait_recovery(self):
        deadline = time.monotonic() + self.p["timeout"]
        while True:
            rows = self.psql("SELECT pg_is_in_recovery();\n")
            if rows and rows[0][0] == "t":
                self.info["in_recovery"] = True
                return
            if time.monotonic() > deadline:
                raise acc.AccessoryError("the cluster is not in recovery (a standby) %ss after "
                                         "pg_basebackup" % self.p["timeout"])
            time.sleep(0.5)

    def replication_status(self):
        """A primary: its standbys from pg_stat_replication; a standby: in_recovery and the
        bytes received but not yet replayed."""
        if self.p["role"] == acc.STANDBY:
            rows = self.psql("SELECT pg_is_in_recovery(), pg_wal_lsn_diff("
                             "pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint;\n")
            self.info["in_recovery"] = bool(rows) and rows[0][0] == "t"
            self.info["lag_bytes"] = int(rows[0][1]) if rows and rows[0][1] else None
            return
        rows = self.psql("SELECT coalesce(host(client_addr), ''), state, "
                         "pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint "
                         "FROM pg_stat_replication WHERE usename = :'user' ORDER BY 1;\n",
                         user=self.p["replication_user"])
        # lag_bytes null: nothing received (standby) or replayed (primary) yet
        self.info["standbys"] = [dict(address=r[0] or None, state=r[1],
                                      lag_bytes=int(r[2]) if len(r) > 2 and r[2] else None)
                                 for r in rows]

    def role_and_database(self):
        p = self.p
        rows = self.psql("SELECT rolcanlogin, coalesce(rolpassword, '') FROM pg_authid "
                         "WHERE rolname = :'user';\n", user=p["user"])
        if not rows:
            self.psql('CREATE ROLE :"user" LOGIN PASSWORD :\'verifier\';\n', user=p["user"],
                      verifier=acc.scram_verifier(self.password))
            self.changed("role")
        else:
            can_login, stored = rows[0][0], rows[0][1] if len(rows[0]) > 1 else ""
            if can_login != "t":
                self.psql('ALTER ROLE :"user" LOGIN;\n', user=p["user"])
                self.changed("role")
            if not acc.scram_matches(self.password, stored):
                self.psql('ALTER ROLE :"user" PASSWORD :\'verifier\';\n', user=p["user"],
                          verifier=acc.scram_verifier(self.password))
                self.changed("password")
        rows = self.psql("SELECT pg_get_userbyid(datdba) FROM pg_database "
                         "WHERE datname = :'db';\n", db=p["database"])
        if not rows:
            self.psql('CREATE DATABASE :"db" OWNER :"user";\n', db=p["database"], user=p["user"])
            self.changed("database")
        elif rows[0][0] != p["user"]:
            self.psql('ALTER DATABASE :"db" OWNER TO :"user";\n', db=p["database"],
                      user=p["user"])
            self.changed("database")

    # --- Redis ---------------------------------------------------------------------------

    def redis(self):
        if not os.path.isfile(REDIS_TEMPLATE):
            raise acc.AccessoryError("%s is missing: Debian's redis-server package ships it"
                                     % REDIS_TEMPLATE)
        import grp
        import pwd

        try:
            uid, gid = pwd.getpwnam("redis").pw_uid, grp.getgrnam("redis").gr_gid
        except KeyError:
            raise acc.AccessoryError("there is no redis user and group (Debian's redis-server "
                                     "package creates them)")
        parent = os.path.dirname(self.data_dir)
        if os.path.islink(parent) or os.path.islink(self.data_dir):
            raise acc.AccessoryError("%s is a symlink; deployer does not follow it"
                                     % (parent if os.path.islink(parent) else self.data_dir))
        if ensure_dir(self.data_dir, 0o750, uid, gid):
            self.changed("data_dir")
        p = self.p
        restart = self.write(acc.redis_conf_path(self.name),
                             acc.redis_conf(self.name, p["listen"], p["port"], self.password),
                             0o640, 0, gid, "config")
        restart = self.container_dropin() or restart
        self.write(acc.exporter_env_file(self.name),
                   envfile.render({"REDIS_PASSWORD": self.password}).decode("utf-8"),
                   0o600, 0, 0, "credentials")
        self.service(restart)

    def container_dropin(self):
        """Debian's template sets PrivateUsers=true, which systemd cannot set up inside a
        container (no user namespaces there: the unit fails at step USER). Only there a
        drop-in turns that one setting off; on a machine the template runs as shipped."""
        path = "/etc/systemd/system/%s.d/deployer-container.conf" % self.unit
        rc, out, _ = self.run(["systemd-detect-virt", "--container"])
        if rc == 0 and out.strip() not in ("", "none"):
            text = acc.redis_container_dropin(out.strip())
            ensure_dir(os.path.dirname(path), 0o755)
            changed = self.write(path, text, 0o644, 0, 0, "unit")
        elif os.path.lexists(path):
            os.unlink(path)
            self.changed("unit")
            changed = True
        else:
            changed = False
        if changed:
            self.check(self.systemd_().run("daemon-reload"), "daemon-reload")
        return changed

    def redis_cli(self, *args):
        return self.run(["redis-cli", "--no-auth-warning", "-h", acc.LOOPBACK, "-p",
                         str(self.p["port"])] + list(args), env={"REDISCLI_AUTH": self.password})

    # --- backups -------------------------------------------------------------------------

    def require_running(self):
        """A backup or restore needs the installed cluster running (never installs)."""
        package = acc.packages(self.kind, self.version)[0]
        version = self.installed(package)
        if version is None:
            raise acc.AccessoryError("%s is not installed on this host" % package)
        acc.check_major(self.kind, self.version, version, "installed here")
        self.info["version"] = version
        self.info["running"] = self.active()
        if not self.info["running"]:
            raise acc.AccessoryError("%s is not running" % self.unit)
        self.wait_ready()

    def backup_directory(self, create):
        """An fd of backup_dir (root 0700), walked from / one component at a time: every
        component root's and no link anywhere (created when missing and `create`)."""
        path = self.p["backup_dir"]
        probe = ""
        parts = path.strip("/").split("/")
        for i, part in enumerate(parts):
            probe += "/" + part
            last = i == len(parts) - 1
            try:
                st = os.lstat(probe)
            except FileNotFoundError:
                if not create:
                    raise acc.AccessoryError("the backup directory %s does not exist" % path)
                os.mkdir(probe, 0o700 if last else 0o755)
                os.chown(probe, 0, 0)
                if last:
                    self.changed("backup_dir")
                st = os.lstat(probe)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0:
                raise acc.AccessoryError("%s is not a directory of root's (a link?); deployer "
                                         "keeps backups only under root's directories" % probe)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        st = os.fstat(fd)
        if (stat.S_IMODE(st.st_mode), st.st_gid) != (0o700, 0):
            os.fchmod(fd, 0o700)
            os.fchown(fd, 0, 0)
            self.changed("backup_dir")
        return fd

    def pg_env(self):
        return {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "PGAPPNAME": "deployer"}

    def backup(self):
        """pg_dump -Fc as postgres, written by root to .<file>.partial (0600) in backup_dir
        with its sha256 computed on the way, then linked to <UTC timestamp>-<label>.dump (never
        over an existing file); older backups beyond backup_keep pruned."""
        p = self.p
        self.require_running()
        dfd = self.backup_directory(create=True)
        try:
            name = acc.backup_name(datetime.datetime.now(datetime.timezone.utc),
                                   p["backup_label"])
            self.info["backup"] = self.dump(dfd, name)
            self.changed("backup")
            pruned = []
            for old in acc.backups_to_prune(os.listdir(dfd), p["backup_keep"]):
                if stat.S_ISREG(os.lstat(old, dir_fd=dfd).st_mode):
                    os.unlink(old, dir_fd=dfd)
                    pruned.append(old)
            self.info["backup"]["pruned"] = pruned
            self.info["backup"]["dir"] = p["backup_dir"]
        finally:
            os.close(dfd)

    def dump(self, dfd, name):
        partial = acc.partial_name(name)
        started = time.monotonic()
        argv = ["pg_dump", "-Fc", "-h", PG_SOCKET_DIR, "-p", str(self.p["port"]),
                "-d", self.p["database"]]
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=dfd)
        try:
            digest, size = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as out, tempfile.TemporaryFile() as errors:
                os.fchown(out.fileno(), 0, 0)
                try:
                    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.PIPE, stderr=errors,
                                            env=self.pg_env(), user="postgres",
                                            group="postgres", extra_groups=[], cwd="/")
                except OSError as exc:
                    raise acc.AccessoryError("pg_dump could not run: %s" % exc)
                with proc:
                    while True:
                        chunk = proc.stdout.read(1 << 20)
                        if not chunk:
                            break
                        digest.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
                    rc = proc.wait()
                if rc != 0:
                    errors.seek(0)
                    lines = errors.read(1 << 16).decode("utf-8", "replace").strip().splitlines()
                    raise acc.AccessoryError("pg_dump %s failed (exit %d): %s" % (
                        self.p["database"], rc, " | ".join(lines[-4:])))
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(partial, name, src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=False)
            except FileExistsError:
                raise acc.AccessoryError("a backup named %s exists already (one a second); "
                                         "nothing was overwritten" % name)
        finally:
            try:
                os.unlink(partial, dir_fd=dfd)
            except FileNotFoundError:
                pass
        os.fsync(dfd)
        return dict(file=name, bytes=size, sha256=digest.hexdigest(),
                    seconds=round(time.monotonic() - started, 3))

    def restore(self):
        """pg_restore --clean --if-exists --no-owner --role=<user> of backup_file (opened
        without following a link, its sha256 checked first when given) fed on stdin."""
        p = self.p
        self.require_running()
        rows = self.psql("SELECT pg_is_in_recovery();\n")
        if rows and rows[0][0] == "t":
            raise acc.AccessoryError("this cluster is a standby (read-only); restore on its "
                                     "primary")
        started = time.monotonic()
        dfd = self.backup_directory(create=False)
        try:
            try:
                fd = os.open(p["backup_file"], _NOFOLLOW, dir_fd=dfd)
            except FileNotFoundError:
                raise acc.AccessoryError("there is no backup %s in %s"
                                         % (p["backup_file"], p["backup_dir"]))
            except OSError as exc:
                raise acc.AccessoryError("%s/%s cannot be opened safely (%s)" % (
                    p["backup_dir"], p["backup_file"], exc.strerror))
        finally:
            os.close(dfd)
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise acc.AccessoryError("%s is not a regular file" % p["backup_file"])
            if p.get("backup_sha256"):
                digest = hashlib.sha256()
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
                if digest.hexdigest() != p["backup_sha256"]:
                    raise acc.AccessoryError("%s has sha256 %s, not the %s asked for; nothing "
                                             "was restored" % (p["backup_file"],
                                                               digest.hexdigest(),
                                                               p["backup_sha256"]))
                os.lseek(fd, 0, os.SEEK_SET)
            argv = ["pg_restore", "--clean", "--if-exists", "--no-owner",
                    "--role=%s" % p["user"], "-h", PG_SOCKET_DIR, "-p", str(p["port"]),
                    "-d", p["database"]]
            try:
                proc = subprocess.run(argv, stdin=handle, env=self.pg_env(), user="postgres",
                                      group="postgres", extra_groups=[], cwd="/",
                                      capture_output=True, text=True, check=False)
            except (OSError, subprocess.SubprocessError) as exc:
                raise acc.AccessoryError("pg_restore could not run: %s" % exc)
        self.changed("restore")
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()][-4:]
            raise acc.AccessoryError("pg_restore of %s into %s failed (exit %d): %s" % (
                p["backup_file"], p["database"], proc.returncode, " | ".join(lines)))
        self.info["restore"] = dict(file=p["backup_file"],
                                    seconds=round(time.monotonic() - started, 3))

    # --- the whole step ------------------------------------------------------------------

    def status(self):
        self.package()
        self.credentials()
        if self.kind == acc.POSTGRESQL and self.p["role"] == acc.PRIMARY:
            self.replication_credentials()
        self.info["running"] = self.active()
        if self.info["running"] and self.kind == acc.POSTGRESQL:
            if self.password:
                rows = self.psql("SELECT count(*) FROM pg_stat_activity WHERE datname = :'db';\n",
                                 db=self.p["database"])
                self.info["connections"] = int(rows[0][0]) if rows else 0
            self.replication_status()
        elif self.info["running"] and self.password:
            rc, out, _ = self.redis_cli("INFO", "memory")
            match = re.search(r"^used_memory:([0-9]+)", out, re.M)
            if rc == 0 and match:
                self.info["used_memory"] = int(match.group(1))

    def present(self):
        if self.p["state"] == "upgraded":
            self.upgrade()
        self.package()
        if self.kind == acc.POSTGRESQL:
            if self.p["role"] == acc.PRIMARY:  # a standby's role and database are the primary's
                self.credentials()
                self.replication_credentials()
            self.postgresql()
            self.replication_status()
        else:
            self.credentials()
            self.redis()
        self.info["free_bytes"] = free_bytes(self.data_dir)[0]

    def result(self):
        out = dict(changed=bool(self.changed_parts),
                   deployer=dict(stage=self.stage, accessory=self.info))
        if self.password:
            out["env"] = acc.env_of(self.kind, self.p["address"], self.p["port"], self.password,
                                    self.p["database"], self.p["user"])
        if self.replication_password:
            out["replication"] = dict(password=self.replication_password,
                                      user=self.p["replication_user"])
        pad = self.p.get("seal")
        if pad and not self.read_only and self.p["role"] == acc.PRIMARY:
            values = dict(password=self.password, replication_password=self.replication_password)
            self.info["sealed"] = dict((k, acc.seal(v, pad, k)) for k, v in values.items() if v)
        return out


def main():
    module = AnsibleModule(**MODULE_SPEC)
    job = None
    try:
        p = acc.check_params(module.params)
        job = Accessory(module, p)
        if p["state"] == "backup" and not module.check_mode:
            job.backup()
        elif p["state"] == "restore" and not module.check_mode:
            job.restore()
        elif job.read_only or p["state"] in ("backup", "restore"):
            job.info["free_bytes"] = free_bytes(job.data_dir)[0]
            job.status()
        else:
            job.check_storage()  # preflight: before anything is installed or written
            job.present()
        result = job.result()
    except (acc.AccessoryError, OSError) as exc:
        secret = [module.params.get("password"), module.params.get("replication_password")]
        secret += [job.password, job.replication_password] if job else []
        info = job.info if job else dict(kind=module.params["kind"], name=module.params["name"])
        module.fail_json(msg=acc.scrub("%s %s: %s" % (module.params["kind"], module.params["name"],
                                                      exc), secret),
                         changed=bool(job and job.changed_parts),
                         deployer=dict(stage=stage_of(module.params["state"]), accessory=info))
    # `env` carries the password on purpose (the task is no_log; later plays read it): keep
    # AnsibleModule from masking it there, and keep it out of the echoed arguments. (Run by
    # the lean action plugin, the controller leaves `env` unmasked: LeanAction.UNMASKED.)
    for key in ("password", "replication_password"):
        getattr(module, "no_log_values", set()).discard(module.params.get(key))
    hidden = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    args = dict(module.params, **dict(
        (key, hidden if module.params.get(key) else None)
        for key in ("password", "replication_password", "seal")))
    module.exit_json(invocation=dict(module_args=args), **result)


if __name__ == "__main__":
    main()
