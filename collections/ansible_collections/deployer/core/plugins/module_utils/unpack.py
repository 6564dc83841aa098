# Copyright: deployer contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Verify and unpack a release tarball without letting it write outside its directory.

Every member is checked first (tarcheck.check_members: nothing is written when one is
refused). Then each entry is created by this code, relative to directory descriptors opened
one level at a time with O_NOFOLLOW, files with O_CREAT|O_EXCL: even a case the check
missed cannot make root write, chown or chmod through a link. Owner and group are the ones
given; modes follow the `data` tar filter (no setuid/setgid/sticky bits, no group or other
write) and the group gets the owner's read and execute bits.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile

from ansible_collections.deployer.core.plugins.module_utils.layout import META_DIR
from ansible_collections.deployer.core.plugins.module_utils.tarcheck import (
    DIR,
    FILE,
    HARDLINK,
    UnsafeArchive,
    check_members,
)

__all__ = ["UnsafeArchive", "release_mode", "sha256_of", "unpack"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def release_mode(kind, mode):
    """The mode an entry gets on the host: never wider than the archive's, minus the
    special bits and group/other write; the owner can read (and write files, enter
    directories) and the group gets the owner's read and execute bits."""
    mode &= 0o755
    if kind == DIR:
        mode |= 0o700
    else:
        if not mode & 0o100:
            mode &= ~0o111
        mode |= 0o600
    return mode | (mode & 0o500) >> 3


class _Dirs(object):
    """Descriptors of the directory chain last used, each opened from its parent without
    following links (at most one chain is open, whatever the size of the tree)."""

    def __init__(self, root):
        self.chain = [("", root)]

    def fd(self, rel):
        parts = rel.split("/") if rel else []
        keep = 1
        while keep < len(self.chain) and keep <= len(parts) and \
                self.chain[keep][0] == "/".join(parts[:keep]):
            keep += 1
        self.close(keep)
        for depth in range(keep - 1, len(parts)):
            handle = os.open(parts[depth], _DIR_FLAGS, dir_fd=self.chain[-1][1])
            self.chain.append(("/".join(parts[:depth + 1]), handle))
        return self.chain[-1][1]

    def close(self, keep=1):
        for _, handle in self.chain[keep:]:
            os.close(handle)
        del self.chain[keep:]


def _split(name):
    parent, _, base = name.rpartition("/")
    return parent, base


def _write_file(tar, entry, parent, uid, gid):
    handle = os.open(_split(entry.name)[1], _NEW_FILE, 0o600, dir_fd=parent)
    try:
        source = tar.extractfile(entry.member)
        with os.fdopen(os.dup(handle), "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
        os.fchown(handle, uid, gid)
        os.fchmod(handle, release_mode(FILE, entry.member.mode))
        if 0 <= entry.member.mtime < 1 << 33:
            os.utime(handle, (entry.member.mtime, entry.member.mtime))
    finally:
        os.close(handle)


def _hard_link(entry, dirs, parent):
    source_dir, source = _split(entry.link)
    origin = _Dirs(dirs.chain[0][1])
    try:
        source_fd = origin.fd(source_dir)
        if not stat.S_ISREG(os.stat(source, dir_fd=source_fd, follow_symlinks=False).st_mode):
            raise UnsafeArchive("archive hard link %r -> %r does not name a regular file"
                                % (entry.member.name, entry.link))
        os.link(source, _split(entry.name)[1], src_dir_fd=source_fd, dst_dir_fd=parent,
                follow_symlinks=False)
    finally:
        origin.close()


def _create(tar, entries, root, uid, gid):
    dirs = _Dirs(root)
    made = {}  # directory -> its final mode, applied once everything inside is written
    try:
        for entry in entries:
            parent_name, base = _split(entry.name)
            mode = entry.member.mode if entry.member is not None else 0o755
            if entry.kind == DIR:
                if entry.name not in made:
                    os.mkdir(base, 0o700, dir_fd=dirs.fd(parent_name))
                    os.fchown(dirs.fd(entry.name), uid, gid)
                made[entry.name] = release_mode(DIR, mode)
            elif entry.kind == FILE:
                _write_file(tar, entry, dirs.fd(parent_name), uid, gid)
            elif entry.kind == HARDLINK:
                _hard_link(entry, dirs, dirs.fd(parent_name))
            else:
                parent = dirs.fd(parent_name)
                os.symlink(entry.link, base, dir_fd=parent)
                os.chown(base, uid, gid, dir_fd=parent, follow_symlinks=False)
        for name in sorted(made, reverse=True):
            os.fchmod(dirs.fd(name), made[name])
    finally:
        dirs.close()


def unpack(archive, dest, uid, gid, user, group):
    """Extract `archive` (any tar compression) into the existing, empty directory `dest`,
    owned by uid:gid (`user` and `group` are their names, kept for callers' messages)."""
    with tarfile.open(archive, "r:*") as tar:
        entries = check_members(tar.getmembers(), META_DIR)
        root = os.open(dest, _DIR_FLAGS)
        try:
            _create(tar, entries, root, uid, gid)
        finally:
            os.close(root)
