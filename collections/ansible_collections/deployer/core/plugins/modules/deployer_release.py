#!/usr/bin/python
# Copyright: deployer contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Stage a release on a host in one step; never switches `current`."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deployer_release
short_description: Stage a release (verify, unpack, link shared paths, env, units, prune) in one step
version_added: "0.1.0"
description:
  - Creates the service user when missing (system user, no login shell).
  - Verifies the sha256 of the uploaded O(archive), unpacks it into
    C(releases/<version>.partial-<random>) and renames that to C(releases/<version>).
    The whole archive is refused, before anything is written, when a member has an
    absolute name or a C(..) segment, repeats an earlier name, sits under C(.deployer/), is
    a device, fifo or other special file, would be written through a symlink, is a symlink
    whose target (followed through the archive's other symlinks) leaves the release or is
    absolute, or is a hard link that leaves the release, goes through a symlink or names
    anything but an earlier regular file. Entries are created without following any link;
    modes lose setuid, setgid, sticky and group/other write bits and the group gets the
    owner's read and execute bits.
  - The release belongs to root and is read-only to the service - root:<service group>,
    no group or other write - so the service cannot change its own code. C(.deployer/),
    its C(meta.json) and the env file are root's alone. Releases staged by older versions
    (owned by the service user) are given to root the same way, links in them re-owned and
    never followed. Applications write only into their shared paths (or elsewhere, such as
    C(/tmp) or C(/var/lib)).
  - Creates the shared directories and files under C(shared/), owned by the service user,
    and links them into the release at the same relative path (whatever the tarball had there
    is replaced). Below C(shared/) every path is walked one directory at a time without
    following links; a symlink or a non-directory at any level (the service user owns those
    directories and could have planted one) fails staging, naming that path, and nothing is
    created through it.
  - Writes C(.deployer/env) (systemd EnvironmentFile, mode 0600, root's alone, since systemd
    reads it as root and hands the variables to the service) and C(.deployer/meta.json)
    (state C(staged)), keeps the systemd unit files of O(units) with the release (in
    C(.deployer/units/); nothing under C(/etc) changes), prunes old releases and removes the archive.
  - O(deploy_to) is created root:root 0755 with a C(.deployer-tree) marker naming O(app)
    when missing. An existing one is used when its marker names O(app); an empty directory,
    or a tree staged by an older deployer (C(releases/) whose entries hold
    C(.deployer/meta.json)), gets the marker. Anything else, a marker of another app, or a
    directory that a user other than root can write, fails staging. The owner and mode of
    an existing O(deploy_to) are never changed.
  - When the version is already staged with the same sha256, only the env file, the
    shared links, the units and pruning are reconciled; nothing changed means C(changed=false).
  - On any failure the partial directory, a release created by this run and the archive
    are removed, so the release tree is left as it was.
  - Never switches C(current) and never restarts anything.
options:
  deploy_to:
    description: Root of the release tree (created root:root 0755 when missing; see above for an existing one).
    type: path
    required: true
  app:
    description: Application name (recorded in the C(.deployer-tree) marker of O(deploy_to)).
    type: str
    required: true
  version:
    description: Version to stage (directory name under C(releases/)).
    type: str
    required: true
  sha256:
    description: Expected SHA-256 (hex) of the archive.
    type: str
    required: true
  src:
    description:
      - Path of the release tarball on the controller. The action plugin uploads it to a
        private temporary directory of the login user (one put, no module run) and passes
        that as O(archive); the directory is removed afterwards.
      - Omit it (or give O(archive)) when the host already has the version.
    type: path
  archive:
    description:
      - Path of an already uploaded tarball on the host (any compression tarfile reads).
      - May be omitted when the version is already staged with the same sha256.
      - Always removed at the end, on success and on failure.
    type: path
  service_user:
    description: User that runs the service and owns its shared paths; created when missing.
    type: str
    required: true
  service_group:
    description: Group of the release files (read-only to it) and of the shared paths; defaults to the service user's primary group.
    type: str
  shared_dirs:
    description: Relative directory paths kept across releases under C(shared/).
    type: list
    elements: str
    default: []
  shared_files:
    description: Relative file paths kept across releases under C(shared/) (created empty).
    type: list
    elements: str
    default: []
  env:
    description:
      - The full service environment (including secrets) written to C(.deployer/env), as
        a dict or as that dict in a JSON string.
      - Never returned or logged. The action plugin turns a dict into one JSON string, so
        that Ansible's masking of no_log values hides only that string and not every
        occurrence of short values (such as C(1) or the app name) in the result.
    type: raw
    default: {}
  env_files:
    description:
      - More environment files of the release, name -> variables (as a dict or as that
        dict in a JSON string), each written as C(.deployer/env.<name>) in the format of
        C(.deployer/env) (mode 0600, root's alone) and reconciled the same way; the
        files of names no longer given are removed. For accessory credentials
        (C(DATABASE_URL), C(REDIS_URL)) that units add with more C(EnvironmentFile=) lines
        (deployer.core.service's C(service_env_files)) and hooks read
        (M(deployer.core.deployer_hook)).
      - Names match C(^[a-z][a-z0-9_]{0,31}$). Every variable of these files counts as
        secret (their names go in the files' secret-names comment).
      - Never returned or logged; the action plugin sends a dict as one JSON string, as
        for O(env).
    type: raw
    default: {}
  secret_names:
    description:
      - Names of the variables of O(env) whose values are secret. Only the names are
        written (in a comment of the env file), so that the app's journal lines quoted in a
        failed switch's report can be masked on the host.
    type: list
    elements: str
    default: []
  units:
    description:
      - systemd unit file name -> content. They are kept with the release, in
        C(.deployer/units/), and installed under C(/etc/systemd/system) by
        M(deployer.core.deployer_switch) when the release is switched to, so staging never
        changes what runs and a rollback brings back the units its release came with.
    type: dict
    default: {}
  keep_releases:
    description:
      - How many releases to keep, counting current and the version being staged.
      - Never removed; current (which becomes the rollback target once the new version is
        switched to), the version being staged and, while current is not a good release,
        the previous good one.
      - Bad (and unreadable) releases go first, then never-switched ones staged before
        this version, then the oldest good ones.
    type: int
    default: 5
  required_bytes:
    description:
      - Free bytes needed at O(deploy_to) to unpack a new release (0 to skip the check);
        checked before unpacking, so a host short of space fails without a partial release.
    type: int
    default: 0
author:
  - deployer contributors
notes:
  - Supports check mode (reports what would change; nothing is uploaded or verified).
  - Has an action plugin (for O(src)); the module itself needs only the Python 3 stdlib.
"""

EXAMPLES = r"""
- name: Stage v2
  deployer.core.deployer_release:
    deploy_to: /srv/hello
    app: hello
    version: v2
    sha256: "{{ artifact_sha256 }}"
    src: /var/lib/deployer/artifacts/hello-v2.tar.gz
    service_user: hello
    shared_dirs: [log]
    shared_files: [config/local.ini]
    env: "{{ service_env | combine(secret_env) }}"
    units:
      hello.socket: "{{ lookup('template', 'deployer.socket.j2') }}"
      hello.service: "{{ lookup('template', 'deployer.service.j2') }}"
    keep_releases: 5
  no_log: true
"""

RETURN = r"""
deployer:
  description: What staging did; never contains environment values.
  returned: always
  type: dict
  contains:
    version:
      description: The version staged.
      type: str
    path:
      description: The release directory.
      type: str
    unpacked:
      description: The archive was verified and unpacked by this run.
      type: bool
    replaced:
      description: A release of the same version with another sha256 (not current) was replaced.
      type: bool
    user_created:
      description: The service user was created by this run.
      type: bool
    env_changed:
      description: The env file was (re)written.
      type: bool
    env_files_changed:
      description: Names of O(env_files) whose C(.deployer/env.<name>) was (re)written or removed.
      type: list
      elements: str
    links_changed:
      description: Shared paths created or (re)linked into the release.
      type: list
      elements: str
    units_changed:
      description: Unit files of the release written or removed (in C(.deployer/units/)).
      type: list
      elements: str
    pruned:
      description: Versions removed by pruning.
      type: list
      elements: str
    reclaimed:
      description: Releases of older versions that the service user owned and root now owns.
      type: list
      elements: str
    current:
      description: Version C(current) points at (unchanged by this module), or null.
      type: str
    previous_good:
      description: Most recently switched-to good release other than current, or null.
      type: str
    slot:
      description:
        - The live blue-green slot, C(blue) or C(green) (where C(<deploy_to>/slots/live)
          links), or null when the app does not run blue-green here (unchanged by this module).
      type: str
    releases:
      description: Releases left on the host, as deployer_preflight reports them.
      type: list
      elements: dict
    stage:
      description:
        - On failure, the step of the deployment that failed, for the orchestrator (never
          read from the task's name). C(preflight) when the room check refused the release
          (not enough disk space), C(upload) when the tarball did not arrive (the action
          plugin's own upload failures included), C(stage) for anything else (its sha256
          not matching, the tree, the service user, unpacking, shared paths, env, units,
          pruning, invalid parameters).
      type: str
      choices: [preflight, upload, stage]
      returned: on failure
"""

import grp
import json
import os
import pwd
import re
import secrets
import shutil
import stat

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.deployer.core.plugins.module_utils.layout import (
    BAD,
    GOOD,
    META_DIR,
    PARTIAL,
    STAGED,
    TREE_MARKER,
    Tree,
    UnsafePath,
    check_version,
    ensure_dir,
    free_bytes,
    human_bytes,
    now_iso,
    open_dirs,
    previous_good,
    read_bytes,
    reclaim,
    remove_path,
    write_atomic,
)
from ansible_collections.deployer.core.plugins.module_utils import envfile
from ansible_collections.deployer.core.plugins.module_utils import slots
from ansible_collections.deployer.core.plugins.module_utils.explain import (
    SECRET_NAMES_COMMENT,
)
from ansible_collections.deployer.core.plugins.module_utils.units import (
    UnitError,
    encode as encode_units,
    stage as stage_units,
)
from ansible_collections.deployer.core.plugins.module_utils.unpack import (
    UnsafeArchive,
    sha256_of,
    unpack,
)

ENV_FILE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}\Z")
ENV_FILE_PREFIX = "env."  # .deployer/env.<name>, one per O(env_files) entry
SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
# What an empty deploy_to may hold: a fresh filesystem's lost+found, a streamed upload
NOT_CONTENT = re.compile(r"^(lost\+found|\.deployer-upload-.*)$")


class StageError(Exception):
    """A failure whose message is safe to show (never contains env values)."""


# The deployment step a failure belongs to (RV(deployer.stage)); Stager.step tracks it.
PREFLIGHT, UPLOAD, STAGE = "preflight", "upload", "stage"


def parse_env(env):
    """The env option: a dict, or a dict as a JSON string (what the action plugin sends)."""
    if env in (None, ""):
        return {}
    if isinstance(env, str):
        try:
            env = json.loads(env)
        except ValueError:
            raise StageError("env is not valid JSON")
    if not isinstance(env, dict):
        raise StageError("env must be a mapping of variable names to values")
    return env


def render_env(env, secret_names=()):
    """systemd EnvironmentFile: KEY="value", with \\ " ` $ escaped inside double quotes
    (module_utils/envfile.py, which also reads it back as systemd does). The names (never
    the values) of the secret variables go in a comment, so that what reads the app's
    output on the host (the switch's failure report) can mask them."""
    secret = sorted(n for n in set(secret_names or ()) if n in env)
    comments = ["%s%s\n" % (SECRET_NAMES_COMMENT, " ".join(secret))] if secret else []
    try:
        return envfile.render(dict((k, envfile.value(v)) for k, v in env.items()),
                              comments=comments)
    except ValueError as exc:
        raise StageError(str(exc))


def parse_env_files(env_files):
    """The env_files option: {name: {KEY: value}}, or that as a JSON string (what the
    action plugin sends); names checked, values never shown."""
    if env_files in (None, ""):
        return {}
    if isinstance(env_files, str):
        try:
            env_files = json.loads(env_files)
        except ValueError:
            raise StageError("env_files is not valid JSON")
    if not isinstance(env_files, dict):
        raise StageError("env_files must be a mapping of names to environments")
    out = {}
    for name, env in env_files.items():
        if not isinstance(name, str) or not ENV_FILE_NAME.match(name):
            raise StageError("invalid env file name %r: use 1-32 lowercase letters, digits "
                             "and _, starting with a letter" % (name,))
        if env is None:
            env = {}
        if not isinstance(env, dict):
            raise StageError("env_files.%s must be a mapping of variable names to values"
                             % name)
        out[name] = env
    return out


def clean_relpath(path, what):
    norm = os.path.normpath(path or "")
    if not path or path.startswith("/") or norm in (".", "") or ".." in norm.split("/") \
            or norm.split("/")[0] == META_DIR:
        raise StageError("invalid %s %r: use a relative path without '..'" % (what, path))
    return norm


class Stager(object):
    def __init__(self, module):
        self.module = module
        p = module.params
        self.check = module.check_mode
        self.tree = Tree(p["deploy_to"])
        self.app = p["app"]
        self.version = p["version"]
        self.sha = (p["sha256"] or "").lower()
        self.archive = p["archive"]
        self.user = p["service_user"]
        self.group = p["service_group"]
        self.env = parse_env(p["env"])
        self.env_files = parse_env_files(p.get("env_files"))
        self.secret_names = p.get("secret_names") or []
        try:
            self.units = encode_units(p["units"])
        except UnitError as exc:
            raise StageError(str(exc))
        self.keep = p["keep_releases"]
        self.required = p["required_bytes"] or 0
        self.shared_dirs = [clean_relpath(d, "shared dir") for d in p["shared_dirs"] or []]
        self.shared_files = [clean_relpath(f, "shared file") for f in p["shared_files"] or []]
        self.uid = self.gid = None
        # `current` from the start: a failure still says what the host runs
        self.result = dict(version=self.version, path=self.tree.release(self.version),
                           current=self.tree.current(), slot=slots.live(self.tree),
                           unpacked=False, replaced=False, user_created=False,
                           env_changed=False, env_files_changed=[], links_changed=[],
                           units_changed=[], pruned=[],
                           reclaimed=[])
        self.partial = None
        self.old = None
        self.created = False
        # What a failure from here on is reported as (RV(deployer.stage)); stage_new moves
        # it through the room check and the archive's arrival and sha256, then back.
        self.step = STAGE

    # -- steps -------------------------------------------------------------------------
    def ensure_user(self):
        try:
            entry = pwd.getpwnam(self.user)
        except KeyError:
            self.result["user_created"] = True
            if self.check:
                self.uid = self.gid = 0
                return
            useradd = self.module.get_bin_path("useradd", required=True)
            rc, out, err = self.module.run_command([
                useradd, "--system", "--user-group", "--no-create-home",
                "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", self.user])
            if rc != 0:
                raise StageError("could not create service user %s: %s"
                                 % (self.user, (err or out).strip()))
            entry = pwd.getpwnam(self.user)
        self.uid = entry.pw_uid
        self.gid = entry.pw_gid
        if self.group:
            try:
                self.gid = grp.getgrnam(self.group).gr_gid
            except KeyError:
                raise StageError("service group %s does not exist" % self.group)
        self.group = grp.getgrgid(self.gid).gr_name

    def ensure_tree(self):
        if self.check:
            return
        ensure_dir(self.tree.releases, 0o755)
        ensure_dir(self.tree.shared, 0o755)
        ensure_dir(self.tree.uploads, 0o700)
        for leftover in self.tree.partials():
            remove_path(leftover)
        # Releases staged by older versions belong to the service user: root's from now on
        for version in self.tree.versions():
            owner = os.lstat(self.tree.release(version)).st_uid
            if owner != 0 and reclaim(self.tree.releases, version, owner, self.gid):
                self.result["reclaimed"].append(version)

    def claim_root(self):
        """deploy_to is made and marked when missing. An existing one must be marked for
        this app, or be empty or a tree of an older deployer (then it is marked), and only
        root may write it. Its owner and mode are never changed."""
        root = self.tree.root
        try:
            st = os.stat(root)
        except FileNotFoundError:
            if not self.check:
                os.makedirs(os.path.dirname(root), 0o755, exist_ok=True)
                os.mkdir(root, 0o755)
                os.chmod(root, 0o755)
                os.chown(root, 0, 0)
                self.write_marker()
            return
        if not stat.S_ISDIR(st.st_mode):
            raise StageError("deploy_to %s exists and is not a directory" % root)
        marked = self.marked_app()
        if marked is not None and marked != self.app:
            raise StageError("deploy_to %s holds the release tree of the app %s, not %s: "
                             "give each app its own deploy_to" % (root, marked, self.app))
        if marked is None and not self.adoptable():
            raise StageError(
                "deploy_to %s already exists and was not created by deployer (no %s in it, "
                "and it is neither empty nor a release tree of an older deployer); refusing "
                "to take it over: choose a new or an empty directory" % (root, TREE_MARKER))
        if st.st_uid != 0 or st.st_mode & 0o022:
            if st.st_uid != 0:
                who = "its owner, uid %d" % st.st_uid
            elif st.st_mode & 0o020:
                who = "its group, gid %d" % st.st_gid
            else:
                who = "every user"
            raise StageError(
                "deploy_to %s is writable by %s; deployer works there as root and needs a "
                "directory only root can write; its owner and mode were left as they are"
                % (root, who))
        if marked is None and not self.check:
            self.write_marker()

    def marked_app(self):
        """The app named by deploy_to's marker, or None when there is none."""
        try:
            fd = os.open(os.path.join(self.tree.root, TREE_MARKER),
                         os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StageError("cannot read %s in %s: %s" % (TREE_MARKER, self.tree.root, exc))
        with os.fdopen(fd, "rb") as handle:
            try:
                data = json.loads(handle.read(4096).decode("utf-8"))
                return str(data["app"])
            except (ValueError, KeyError, TypeError):
                raise StageError("%s in %s is not deployer's marker; refusing to take the "
                                 "directory over" % (TREE_MARKER, self.tree.root))

    def adoptable(self):
        """Empty, or a tree an older deployer made: releases/ whose entries hold meta.json."""
        entries = [n for n in os.listdir(self.tree.root) if not NOT_CONTENT.match(n)]
        if not entries:
            return True
        if not os.path.isdir(self.tree.releases) or os.path.islink(self.tree.releases):
            return False
        versions = [n for n in os.listdir(self.tree.releases) if PARTIAL not in n]
        return all(os.path.isfile(self.tree.meta_path(v)) for v in versions)

    def write_marker(self):
        data = json.dumps({"app": self.app}, sort_keys=True) + "\n"
        write_atomic(os.path.join(self.tree.root, TREE_MARKER), data.encode(), 0o644, 0, 0)

    def existing(self):
        """'same' when the version is staged with this sha256, 'other' for another, else None."""
        path = self.tree.release(self.version)
        if not os.path.isdir(path) or os.path.islink(path):
            return None
        meta = self.tree.read_meta(self.version) or {}
        if meta.get("state") == BAD:
            raise StageError("version %s is marked bad on this host (%s); build a new version"
                             % (self.version, meta.get("reason") or "no reason recorded"))
        if (meta.get("sha256") or "").lower() == self.sha:
            return "same"
        if self.tree.current() == self.version:
            raise StageError(
                "version %s is live on this host with sha256 %s; refusing to replace it with "
                "%s: give the new build a new version" % (
                    self.version, meta.get("sha256") or "unknown", self.sha))
        return "other"

    def stage_new(self, replacing):
        if self.check:
            self.result["unpacked"] = True
            self.result["replaced"] = replacing
            return
        self.step = UPLOAD  # the tarball did not arrive
        if not self.archive:
            raise StageError("version %s is not on this host and no archive was given"
                             % self.version)
        if not os.path.isfile(self.archive):
            raise StageError("archive %s does not exist on the host" % self.archive)
        self.step = PREFLIGHT
        free, measured = free_bytes(self.tree.root)
        if free < self.required:
            raise StageError("not enough disk space at %s: %s free, %s required to unpack"
                             % (measured, human_bytes(free), human_bytes(self.required)))
        self.step = STAGE  # the archive arrived: verifying it is staging's first check
        actual = sha256_of(self.archive)
        if actual != self.sha:
            raise StageError("sha256 mismatch for %s: expected %s, got %s; the archive was "
                             "deleted and nothing was staged" % (self.archive, self.sha, actual))
        self.step = STAGE
        self.partial = "%s%s%s" % (self.tree.release(self.version), PARTIAL, secrets.token_hex(4))
        # root's, readable by the service's group: the service cannot change its own code
        os.mkdir(self.partial, 0o755)
        os.chown(self.partial, 0, self.gid)
        try:
            unpack(self.archive, self.partial, 0, self.gid, "root", self.group)
        except UnsafeArchive as exc:
            raise StageError("refusing archive %s: %s" % (self.archive, exc))
        except (OSError, EOFError) as exc:
            raise StageError("unpacking %s failed: %s" % (self.archive, exc))
        except Exception as exc:  # tarfile.TarError and friends
            raise StageError("unpacking %s failed: %s: %s" % (self.archive, type(exc).__name__, exc))
        os.chmod(self.partial, 0o755)
        ensure_dir(os.path.join(self.partial, META_DIR), 0o755)
        self.link_shared(self.partial)
        self.write_env(self.partial)
        self.write_units(self.partial)
        meta = dict(version=self.version, sha256=self.sha, staged_at=now_iso(),
                    switched_at=None, state=STAGED, reason=None)
        self.tree.write_meta(self.version, meta, base=self.partial)
        final = self.tree.release(self.version)
        if replacing:
            self.old = "%s%sold-%s" % (final, PARTIAL, secrets.token_hex(4))
            os.rename(final, self.old)
        os.rename(self.partial, final)
        self.partial = None
        self.created = True
        if self.old:
            remove_path(self.old)
            self.old = None
        self.result["unpacked"] = True
        self.result["replaced"] = replacing

    def link_shared(self, base):
        """Create shared/<path> (the service user's) and link it into the release at <path>
        (root's). Nothing below shared/ is followed: the service user owns it and could
        have swapped any part of a path for a link."""
        for rel, is_dir in [(d, True) for d in self.shared_dirs] + \
                [(f, False) for f in self.shared_files]:
            try:
                changed = self.ensure_shared(rel, is_dir)
                target = os.path.join(self.tree.shared, rel)
                if self.link_of(base, rel) == target:
                    if changed:
                        self.result["links_changed"].append(rel)
                    continue
                self.result["links_changed"].append(rel)
                if not self.check:
                    self.make_link(base, rel, target)
            except UnsafePath as exc:
                raise StageError("cannot use the shared path %s: %s" % (rel, exc))

    def ensure_shared(self, rel, is_dir):
        """Create shared/<rel> and its parents (as the service user's) where missing; return
        whether anything was (would be, in check mode) created."""
        parent, name = os.path.split(rel)
        create = None if self.check else (0o755, self.uid, self.gid)
        try:
            fd, changed = open_dirs(self.tree.shared, rel if is_dir else parent, create,
                                    label="shared")
        except FileNotFoundError:
            return True  # check mode: it would be created
        try:
            if is_dir:
                return changed
            try:
                mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
            except FileNotFoundError:
                if self.check:
                    return True
                handle = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                                 0o640, dir_fd=fd)
                try:
                    os.fchmod(handle, 0o640)
                    os.fchown(handle, self.uid, self.gid)
                finally:
                    os.close(handle)
                return True
            if stat.S_ISLNK(mode):
                raise UnsafePath("shared/%s is a symlink; deployer does not follow links there"
                                 % rel)
            if not stat.S_ISREG(mode):
                raise UnsafePath("shared/%s is not a regular file" % rel)
            return changed
        finally:
            os.close(fd)

    def release_label(self):
        return "releases/" + self.version

    def link_of(self, base, rel):
        """Where the link at <release>/<rel> points, or None (missing, not a link)."""
        parent, name = os.path.split(rel)
        try:
            fd, _ = open_dirs(base, parent, label=self.release_label())
        except (FileNotFoundError, UnsafePath):
            return None
        try:
            return os.readlink(name, dir_fd=fd)
        except OSError:
            return None
        finally:
            os.close(fd)

    def make_link(self, base, rel, target):
        parent, name = os.path.split(rel)
        fd, _ = open_dirs(base, parent, (0o755, 0, self.gid), label=self.release_label())
        try:
            try:
                mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
            except FileNotFoundError:
                mode = None
            if mode is not None and stat.S_ISDIR(mode):
                shutil.rmtree(name, dir_fd=fd)
            elif mode is not None:
                os.unlink(name, dir_fd=fd)
            os.symlink(target, name, dir_fd=fd)
            os.chown(name, 0, self.gid, dir_fd=fd, follow_symlinks=False)
        finally:
            os.close(fd)

    def write_env(self, base):
        """.deployer/env and the .deployer/env.<name> of O(env_files), root's alone (systemd
        reads them as root and hands the variables to the service); env.<name> files of
        names no longer given are removed."""
        if self.write_env_file(base, "env", render_env(self.env, self.secret_names)):
            self.result["env_changed"] = True
        for name in sorted(self.env_files):
            env = self.env_files[name]
            # every value is a credential (DATABASE_URL, ...): all names go in the comment
            if self.write_env_file(base, ENV_FILE_PREFIX + name, render_env(env, list(env))):
                self.result["env_files_changed"].append(name)
        meta = os.path.join(base, META_DIR)
        try:
            present = os.listdir(meta)
        except FileNotFoundError:
            present = []  # check mode: the release is not unpacked yet
        for entry in sorted(present):
            name = entry[len(ENV_FILE_PREFIX):]
            if entry.startswith(ENV_FILE_PREFIX) and ENV_FILE_NAME.match(name) \
                    and name not in self.env_files:
                self.result["env_files_changed"].append(name)
                if not self.check:
                    os.unlink(os.path.join(meta, entry))

    def write_env_file(self, base, name, content):
        """Write .deployer/<name> (0600 root:root) unless it already is `content`; return
        whether it was (would be) written."""
        path = os.path.join(base, META_DIR, name)
        st = None
        try:
            st = os.lstat(path)
        except OSError:
            pass
        same = (st is not None and stat.S_ISREG(st.st_mode) and read_bytes(path) == content
                and st.st_mode & 0o7777 == 0o600 and (st.st_uid, st.st_gid) == (0, 0))
        if same:
            return False
        if not self.check:
            write_atomic(path, content, 0o600, 0, 0)
        return True

    def write_units(self, base):
        """The release's own units, in its .deployer/units/ (the switch installs them)."""
        try:
            self.result["units_changed"] = stage_units(base, self.units, self.check)
        except UnitError as exc:
            raise StageError(str(exc))

    def prune(self):
        releases = self.tree.releases_info()
        current = self.tree.current()
        states = dict((r["version"], r["state"]) for r in releases)
        # Kept whatever keep_releases says: current (the rollback target once the new
        # version is switched to), the version being staged, and, while current is not a
        # good release (e.g. a failed switch), the previous good one.
        keep_always = {current, self.version}
        if current is None or states.get(current) != GOOD:
            keep_always.add(previous_good(releases, current))
        mine = next((r for r in releases if r["version"] == self.version), None)
        mine_at = (mine or {}).get("staged_at") or ""
        bad = [r for r in releases if r["state"] not in (STAGED, GOOD)]
        stale = [r for r in releases if r["state"] == STAGED and (r["staged_at"] or "") < mine_at]
        good = sorted((r for r in releases if r["state"] == GOOD),
                      key=lambda r: (r["switched_at"] or "", r["staged_at"] or ""))
        count = len(releases)
        if self.check and self.version not in states:
            count += 1  # check mode: the release that would have been staged
        excess = count - max(1, self.keep)
        for release in bad + stale + good:
            if excess <= 0:
                break
            if release["version"] in keep_always:
                continue
            if not self.check:
                remove_path(self.tree.release(release["version"]))
            self.result["pruned"].append(release["version"])
            excess -= 1

    # -- driver ------------------------------------------------------------------------
    def run(self):
        try:
            self.claim_root()  # first: a refused deploy_to leaves the host as it was
            self.ensure_user()
            self.ensure_tree()
            state = self.existing()
            if state == "same":
                base = self.tree.release(self.version)
                if not self.check or os.path.isdir(base):
                    self.link_shared(base)
                    self.write_env(base)
                    self.write_units(base)
            else:
                self.stage_new(replacing=state == "other")
                if self.check:
                    self.result["env_changed"] = True
                    self.result["env_files_changed"] = sorted(self.env_files)
                    self.result["links_changed"] = self.shared_dirs + self.shared_files
            if self.check and state != "same":
                self.result["units_changed"] = sorted(self.units)
            self.prune()
        except BaseException:
            self.cleanup(failed=True)
            raise
        self.cleanup(failed=False)
        releases = self.tree.releases_info()
        current = self.tree.current()
        self.result.update(current=current, previous_good=previous_good(releases, current),
                           releases=releases)
        return self.result

    def cleanup(self, failed):
        if self.check:
            return
        if self.partial:
            remove_path(self.partial)
        if failed and self.created:
            remove_path(self.tree.release(self.version))
        if failed and self.old:
            os.rename(self.old, self.tree.release(self.version))
        if self.archive:
            remove_path(self.archive)

    def changed(self):
        r = self.result
        return bool(r["unpacked"] or r["user_created"] or r["env_changed"]
                    or r["env_files_changed"] or r["links_changed"]
                    or r["units_changed"] or r["pruned"] or r["reclaimed"])


# The module's arguments; also read by the lean runner to validate on the controller.
MODULE_SPEC = dict(
    argument_spec=dict(
        deploy_to=dict(type="path", required=True),
        app=dict(type="str", required=True),
        version=dict(type="str", required=True),
        sha256=dict(type="str", required=True),
        src=dict(type="path"),
        archive=dict(type="path"),
        service_user=dict(type="str", required=True),
        service_group=dict(type="str"),
        shared_dirs=dict(type="list", elements="str", default=[]),
        shared_files=dict(type="list", elements="str", default=[]),
        env=dict(type="raw", default={}, no_log=True),
        env_files=dict(type="raw", default={}, no_log=True),
        secret_names=dict(type="list", elements="str", default=[]),
        units=dict(type="dict", default={}),
        keep_releases=dict(type="int", default=5),
        required_bytes=dict(type="int", default=0),
    ),
    supports_check_mode=True,
)


def failed(stager, version):
    """The `deployer` dict of a failure: what the host runs and the step that failed."""
    if stager is None:
        return {"version": version, "stage": STAGE}
    return dict(stager.result, stage=stager.step)


def main():
    module = AnsibleModule(**MODULE_SPEC)
    version = module.params["version"]
    problem = check_version(version)
    if not problem and not SHA256.match(module.params["sha256"] or ""):
        problem = "sha256 must be 64 hex digits"
    if problem:
        if module.params["archive"] and not module.check_mode:
            remove_path(module.params["archive"])
        module.fail_json(msg=problem, deployer={"version": version, "stage": STAGE})
    stager = None
    try:
        try:
            stager = Stager(module)
        except BaseException:
            if module.params["archive"] and not module.check_mode:
                remove_path(module.params["archive"])
            raise
        result = stager.run()
    except StageError as exc:
        module.fail_json(msg="staging %s failed: %s" % (version, exc),
                         deployer=failed(stager, version))
    except Exception as exc:
        module.fail_json(msg="staging %s failed: %s: %s" % (version, type(exc).__name__, exc),
                         deployer=failed(stager, version))
    module.exit_json(changed=stager.changed(), deployer=result)


if __name__ == "__main__":
    main()
