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
    C(pg_hba.conf) changed. Then creates the LOGIN role O(user) and the database
    O(database) owned by it, with C(psql) run as C(postgres) (SQL on stdin, names and values
    as psql variables, never interpolated into SQL text). The password is sent as a
    SCRAM-SHA-256 verifier computed here, so the server, its log and pg_stat_activity never
    see the password itself; a stored verifier of the same password is left alone.
  - C(redis) - one instance per environment with Debian's template unit
    C(redis-server@<name>.service) and C(/etc/redis/redis-<name>.conf) (root:redis 0640, since it
    holds C(requirepass)) binding O(listen) and 127.0.0.1 with protected mode on, data in
    C(/var/lib/redis/<name>) (redis 0750), supervised by systemd, logging to the journal.
    Two environments on one host never share an instance. Inside a container (where
    systemd cannot set up the user namespace of the template's C(PrivateUsers=true)) a
    drop-in C(deployer-container.conf) turns that one setting off; elsewhere the template
    runs as Debian ships it. Restarted when its
    configuration changed. When this run installed the package, Debian's default instance
    (C(redis-server.service)) is stopped and disabled. Redis has no per-address access
    control - O(clients) is not enforced, the password is the only gate (bind private
    addresses only).
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
    type: str
    default: present
    choices: [present, status, restarted, upgraded]
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
author:
  - deployer contributors
notes:
  - Check mode reports like O(state=status) and changes nothing.
  - Run the task with C(no_log) - its result holds C(env) with the password.
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
"""

RETURN = r"""
deployer:
  description: What was found and done; never a secret.
  returned: always
  type: dict
  contains:
    stage:
      description: C(accessory).
      type: str
    accessory:
      description:
        - C(kind), C(name), C(version) (installed package version string, or null),
          C(port), C(address), C(data_dir), C(free_bytes), C(running) (bool),
          C(changed_parts) (list - package, upgraded, cluster, credentials, data_dir,
          config, pg_hba, unit, enabled, started, restarted, reloaded, role, password,
          database; C(unit) is the drop-in below).
        - C(unit) (the systemd unit). With O(state=upgraded), C(upgrade) - for each
          package, C(from) and C(to) (its versions before and after).
        - With O(state=status) and the service running, C(connections) (postgresql -
          sessions on the database, from pg_stat_activity) or C(used_memory) (redis - bytes,
          from INFO memory).
      type: dict
env:
  description:
    - C({"DATABASE_URL" - "postgresql://<user>:<password>@<address>:<port>/<database>"}) or
      C({"REDIS_URL" - "redis://:<password>@<address>:<port>/0"}), password URL-encoded.
    - Secret - register the result with C(no_log). Absent when no password is known (status of
      an accessory never set up).
  returned: success
  type: dict
"""

import os
import re
import secrets
import stat
import subprocess
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.deployer.core.plugins.module_utils import accessory as acc
from ansible_collections.deployer.core.plugins.module_utils.layout import (
    ensure_dir,
    free_bytes,
    write_atomic,
)
from ansible_collections.deployer.core.plugins.module_utils.systemd import Systemd, describe

STAGE = "accessory"
PG_SOCKET_DIR = "/var/run/postgresql"
REDIS_TEMPLATE = "/lib/systemd/system/redis-server@.service"
_NOFOLLOW = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
APT_OPTS = ["-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"]

MODULE_SPEC = dict(
    argument_spec=dict(
        kind=dict(type="str", required=True, choices=list(acc.KINDS)),
        state=dict(type="str", default="present",
                   choices=["present", "status", "restarted", "upgraded"]),
        name=dict(type="str", required=True),
        version=dict(type="str", required=True),
        address=dict(type="str", required=True),
        listen=dict(type="list", elements="str"),
        port=dict(type="int"),
        clients=dict(type="list", elements="str", default=[]),
        database=dict(type="str"),
        user=dict(type="str"),
        password=dict(type="str", no_log=True),
        storage_bytes=dict(type="int", default=0),
        install=dict(type="bool", default=True),
        timeout=dict(type="float", default=60),
    ),
    supports_check_mode=True,
)


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
        self.changed_parts = []
        self.systemd = None
        self.info = dict(kind=self.kind, name=self.name, version=None, port=p["port"],
                         address=p["address"], data_dir=self.data_dir, free_bytes=None,
                         running=False, changed_parts=self.changed_parts, unit=self.unit)

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
        path = acc.credentials_file(self.name, self.kind)
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
        password = self.p.get("password") or stored
        if self.read_only:
            self.password = stored
            return
        if password is None:
            password = secrets.token_urlsafe(32)
        self.password = password
        parent = acc.CREDENTIALS
        if not os.path.isdir(os.path.dirname(parent)):
            os.makedirs(os.path.dirname(parent), 0o755)
        for directory in (parent, acc.credentials_dir(self.name)):
            if os.path.islink(directory):
                raise acc.AccessoryError("%s is a symlink; deployer does not follow it" % directory)
            if ensure_dir(directory, 0o700):
                self.changed("credentials")
        if os.path.islink(path) or stored != password:
            write_atomic(path, (password + "\n").encode("ascii"), 0o600, 0, 0)
            self.changed("credentials")
        else:
            st = os.lstat(path)
            if stat.S_IMODE(st.st_mode) != 0o600 or (st.st_uid, st.st_gid) != (0, 0):
                os.chmod(path, 0o600)
                os.chown(path, 0, 0)
                self.changed("credentials")

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
            hidden = [self.password] + [v for v in variables.values() if v.startswith("SCRAM")]
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
        restart = self.write(conf_dir + "/conf.d/deployer.conf",
                             acc.pg_conf(self.name, p["listen"], p["port"]), 0o644, uid, gid,
                             "config")
        hba_path = conf_dir + "/pg_hba.conf"
        hba = read_text(hba_path) or ""
        merged = acc.merge_hba(hba, self.name, acc.hba_block(self.name, p["database"],
                                                             p["user"], p["clients"]))
        reload = self.write(hba_path, merged, 0o640, uid, gid, "pg_hba")
        self.service(restart, reload)
        self.wait_ready()
        self.role_and_database()

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

    # --- the whole step ------------------------------------------------------------------

    def status(self):
        self.package()
        self.credentials()
        self.info["running"] = self.active()
        if self.info["running"] and self.password:
            if self.kind == acc.POSTGRESQL:
                rows = self.psql("SELECT count(*) FROM pg_stat_activity WHERE datname = :'db';\n",
                                 db=self.p["database"])
                self.info["connections"] = int(rows[0][0]) if rows else 0
            else:
                rc, out, _ = self.redis_cli("INFO", "memory")
                match = re.search(r"^used_memory:([0-9]+)", out, re.M)
                if rc == 0 and match:
                    self.info["used_memory"] = int(match.group(1))

    def present(self):
        if self.p["state"] == "upgraded":
            self.upgrade()
        self.package()
        self.credentials()
        if self.kind == acc.POSTGRESQL:
            self.postgresql()
        else:
            self.redis()
        self.info["free_bytes"] = free_bytes(self.data_dir)[0]

    def result(self):
        out = dict(changed=bool(self.changed_parts), deployer=dict(stage=STAGE, accessory=self.info))
        if self.password:
            out["env"] = acc.env_of(self.kind, self.p["address"], self.p["port"], self.password,
                                    self.p["database"], self.p["user"])
        return out


def main():
    module = AnsibleModule(**MODULE_SPEC)
    job = None
    try:
        p = acc.check_params(module.params)
        job = Accessory(module, p)
        if job.read_only:
            job.info["free_bytes"] = free_bytes(job.data_dir)[0]
            job.status()
        else:
            job.check_storage()  # preflight: before anything is installed or written
            job.present()
        result = job.result()
    except (acc.AccessoryError, OSError) as exc:
        secret = [module.params.get("password")] + ([job.password] if job else [])
        info = job.info if job else dict(kind=module.params["kind"], name=module.params["name"])
        module.fail_json(msg=acc.scrub("%s %s: %s" % (module.params["kind"], module.params["name"],
                                                      exc), secret),
                         changed=bool(job and job.changed_parts),
                         deployer=dict(stage=STAGE, accessory=info))
    # `env` carries the password on purpose (the task is no_log; later plays read it): keep
    # AnsibleModule from masking it there, and keep it out of the echoed arguments. (Run by
    # the lean action plugin, the controller leaves `env` unmasked: LeanAction.UNMASKED.)
    getattr(module, "no_log_values", set()).discard(module.params.get("password"))
    args = dict(module.params, password="VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
                if module.params.get("password") else None)
    module.exit_json(invocation=dict(module_args=args), **result)


if __name__ == "__main__":
    main()
