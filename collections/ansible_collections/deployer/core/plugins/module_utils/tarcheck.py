# Copyright: deployer contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The rules a release tarball's members must follow, as one pure function.

Used by the host before it unpacks anything and by the controller on a prebuilt tarball
before any host is touched, so both refuse the same members with the same message. Stdlib
only and free of collection imports: the controller loads this file by its path.
"""

from __future__ import annotations

import collections
import posixpath

DIR, FILE, SYMLINK, HARDLINK = "dir", "file", "symlink", "hardlink"
MAX_HOPS = 40  # symlinks followed while resolving one target (the kernel's ELOOP limit)

Entry = collections.namedtuple("Entry", "name kind link member")
"""One thing to create: `name` normalised and relative, `kind` one of DIR/FILE/SYMLINK/
HARDLINK, `link` the symlink target as given or the hard link's normalised target, `member`
the tar member (None for a parent directory the archive implies without listing it)."""


class UnsafeArchive(Exception):
    """The tarball holds a member that could write or point outside the release."""


def _kind(member):
    if member.isdir():
        return DIR
    if member.issym():
        return SYMLINK
    if member.islnk():
        return HARDLINK
    if member.isfile():
        return FILE
    return None


def _name(raw, reserved):
    """The member's normalised relative name ('.' for the root), or raise."""
    if raw.startswith("/"):
        raise UnsafeArchive("archive member %r has an absolute path" % raw)
    if ".." in raw.split("/"):
        raise UnsafeArchive("archive member %r contains '..'" % raw)
    name = posixpath.normpath(raw) if raw else "."
    if name.split("/")[0] == reserved:
        raise UnsafeArchive("archive member %r is inside %s/, which deployer reserves"
                            % (raw, reserved))
    return name


def _resolve(start, target, links):
    """Follow `target` from the directory `start` (a list of parts) through the archive's
    symlinks. Returns (parts, link) with the link it last went through, or (None, link)
    when it leaves the release. Raises ValueError on a loop."""
    parts = list(start)
    pending = target.split("/")[::-1]
    via, hops = None, 0
    while pending:
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None, via
            parts.pop()
            continue
        parts.append(part)
        path = "/".join(parts)
        if path in links:
            hops += 1
            if hops > MAX_HOPS:
                raise ValueError(path)
            parts.pop()
            via = path
            if links[path].startswith("/"):
                return None, via
            pending.extend(links[path].split("/")[::-1])
    return parts, via


def _check_symlink(raw, name, target, links):
    if not target:
        raise UnsafeArchive("archive symlink %r has an empty target" % raw)
    if target.startswith("/"):
        raise UnsafeArchive("archive symlink %r -> %r points outside the release "
                            "(absolute target)" % (raw, target))
    try:
        resolved, via = _resolve(name.split("/")[:-1], target, links)
    except ValueError:
        raise UnsafeArchive("archive symlink %r -> %r is part of a symlink loop"
                            % (raw, target)) from None
    if resolved is None and via is None:
        raise UnsafeArchive("archive symlink %r -> %r points outside the release"
                            % (raw, target))
    if resolved is None:
        raise UnsafeArchive("archive symlink %r -> %r resolves outside the release "
                            "through the link %r" % (raw, target, via))


def _check_hardlink(raw, target, kinds, links):
    if target.startswith("/") or ".." in target.split("/"):
        raise UnsafeArchive("archive hard link %r -> %r points outside the release"
                            % (raw, target))
    name = posixpath.normpath(target) if target else "."
    parts = name.split("/")
    for depth in range(1, len(parts) + 1):
        prefix = "/".join(parts[:depth])
        if prefix in links:
            raise UnsafeArchive("archive hard link %r -> %r goes through the link %r"
                                % (raw, target, prefix))
    if kinds.get(name) not in (FILE, HARDLINK):
        raise UnsafeArchive("archive hard link %r -> %r does not name an earlier regular "
                            "file of the archive" % (raw, target))
    return name


def check_members(members, reserved):
    """The entries to create for `members` (tar members, in archive order), parents first.

    Raises UnsafeArchive naming the first member that has an absolute name or a '..'
    segment, sits under `reserved`/, repeats an earlier name, is not a regular file,
    directory, symlink or hard link, would be written through a symlink or under a
    non-directory, is a symlink whose target (followed through every symlink of the
    archive) leaves the release, or is a hard link that leaves the release, goes through
    a symlink or names anything but an earlier regular file. Pure: reads no file.
    """
    members = list(members)
    named = []
    links = {}
    for member in members:
        kind = _kind(member)
        if kind is None:
            raise UnsafeArchive("archive member %r is a device, fifo or other special file"
                                % member.name)
        name = _name(member.name, reserved)
        if name == "." and kind != DIR:
            raise UnsafeArchive("archive member %r is not a directory but names the release "
                                "root" % member.name)
        if kind == SYMLINK:
            if name in links:
                raise UnsafeArchive("archive member %r repeats an earlier member's name"
                                    % member.name)
            links[name] = member.linkname
        named.append((name, kind, member))
    entries = []
    kinds = {".": DIR}  # what each name is so far; implied parents are DIR too
    listed = set()  # names of the members seen so far
    for name, kind, member in named:
        raw = member.name
        if name == ".":
            continue
        parts = name.split("/")
        for depth in range(1, len(parts)):
            prefix = "/".join(parts[:depth])
            if prefix in links:
                raise UnsafeArchive("archive member %r would be written through the link %r"
                                    % (raw, prefix))
            seen = kinds.get(prefix)
            if seen is None:
                kinds[prefix] = DIR
                entries.append(Entry(prefix, DIR, None, None))
            elif seen != DIR:
                raise UnsafeArchive("archive member %r would be written under %r, which is "
                                    "not a directory" % (raw, prefix))
        if name in listed:
            raise UnsafeArchive("archive member %r repeats an earlier member's name" % raw)
        if name in kinds and kind != DIR:
            raise UnsafeArchive("archive member %r is not a directory, but earlier members "
                                "are inside it" % raw)
        listed.add(name)
        link = None
        if kind == SYMLINK:
            link = member.linkname
            _check_symlink(raw, name, link, links)
        elif kind == HARDLINK:
            link = _check_hardlink(raw, member.linkname, kinds, links)
        kinds[name] = kind
        entries.append(Entry(name, kind, link, member))
    return entries
