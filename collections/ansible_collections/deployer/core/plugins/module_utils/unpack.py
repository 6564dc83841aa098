# Copyright: deployer contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Verify and unpack a release tarball without letting it write outside its directory."""

from __future__ import annotations

import hashlib
import os
import posixpath
import tarfile

from ansible_collections.deployer.core.plugins.module_utils.layout import META_DIR


class UnsafeArchive(Exception):
    """The tarball holds a member that could write or point outside the release."""


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _inside(path):
    """A normalised relative path stays inside its root."""
    return not (path.startswith("/") or path == ".." or path.startswith("../"))


def _checked_members(tar, uid, gid, user, group):
    """Yield members with normalised names, owner set and unsafe bits stripped; raise on escape."""
    links = set()
    for member in tar:
        raw = member.name
        name = posixpath.normpath(raw)
        if raw.startswith("/") or not _inside(name):
            raise UnsafeArchive("archive member %r has an absolute path or '..'" % raw)
        if name == ".":
            continue
        parts = name.split("/")
        if ".." in raw.split("/"):
            raise UnsafeArchive("archive member %r contains '..'" % raw)
        if parts[0] == META_DIR:
            raise UnsafeArchive("archive member %r is inside %s/, which deployer reserves"
                                % (raw, META_DIR))
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in links:
                raise UnsafeArchive("archive member %r would be written through the link %r"
                                    % (raw, "/".join(parts[:depth])))
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise UnsafeArchive("archive member %r is a device, fifo or other special file" % raw)
        if member.issym():
            target = member.linkname
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
            if target.startswith("/") or not _inside(resolved):
                raise UnsafeArchive("archive symlink %r -> %r points outside the release"
                                    % (raw, target))
            links.add(name)
        elif member.islnk():
            target = posixpath.normpath(member.linkname)
            if member.linkname.startswith("/") or not _inside(target) or target in links:
                raise UnsafeArchive("archive hard link %r -> %r points outside the release"
                                    % (raw, member.linkname))
            member.linkname = target
        member.name = name
        mode = member.mode & 0o755
        member.mode = mode | (0o700 if member.isdir() else 0o400)
        member.uid, member.gid, member.uname, member.gname = uid, gid, user, group
        yield member


def unpack(archive, dest, uid, gid, user, group):
    """Extract `archive` (any tar compression) into the existing directory `dest`."""
    with tarfile.open(archive, "r:*") as tar:
        members = list(_checked_members(tar, uid, gid, user, group))
        extra = {}
        if hasattr(tarfile, "fully_trusted_filter"):
            # Members were vetted above; keep the owners and modes set there.
            extra["filter"] = "fully_trusted"
        tar.extractall(dest, members=members, **extra)  # noqa: S202 - members vetted above
    root = os.path.realpath(dest)
    for top, dirs, files in os.walk(dest):
        for entry in dirs + files:
            path = os.path.join(top, entry)
            if os.path.islink(path):
                real = os.path.realpath(path)
                if real != root and not real.startswith(root + os.sep):
                    raise UnsafeArchive("archive symlink %s resolves outside the release (%s)"
                                        % (os.path.relpath(path, dest), real))
