# Copyright: deployer contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Small systemctl helpers for the deployer modules (stdlib + AnsibleModule.run_command)."""

from __future__ import annotations

import datetime
import os

PROPS = ("Id", "LoadState", "ActiveState", "SubState", "UnitFileState", "Result",
         "ExecMainStartTimestamp", "ActiveEnterTimestamp", "ExecMainStatus", "NRestarts",
         "ExecMainExitTimestamp", "MemoryMax")


class Systemd(object):
    def __init__(self, module):
        self.module = module
        self.bin = module.get_bin_path("systemctl", required=True)

    def run(self, *args):
        """systemctl args... -> (rc, combined output)."""
        rc, out, err = self.module.run_command([self.bin] + list(args))
        return rc, (out + err).strip()

    def show(self, *units):
        """{unit: {property: value}} for the given units, timestamps to the microsecond in
        UTC (see timestamp())."""
        rc, out, err = self.module.run_command(
            [self.bin, "show", "--timestamp=us+utc", "-p", ",".join(PROPS)] + list(units))
        result = dict((u, {}) for u in units)
        if rc != 0:
            return result
        blocks = [b for b in out.split("\n\n")]
        for unit, block in zip(units, blocks):
            props = {}
            for line in block.splitlines():
                key, _, value = line.partition("=")
                props[key] = value
            result[unit] = props
        return result


def timestamp(value):
    """'Sun 2026-11-29 02:59:15.952684 UTC' (systemctl --timestamp=us+utc) -> unix seconds
    with microseconds; '' / 'n/a' / anything else -> None. Microseconds matter: a unit file
    written earlier in the same second as a start must not look newer than that start."""
    parts = (value or "").strip().split(" ")
    if len(parts) != 4 or parts[3] != "UTC":
        return None
    try:  # by hand: datetime.strptime would import _strptime (and locale) on every host
        year, month, day = (int(x) for x in parts[1].split("-"))
        clock, _, fraction = parts[2].partition(".")
        hour, minute, second = (int(x) for x in clock.split(":"))
        when = datetime.datetime(year, month, day, hour, minute, second,
                                 int(fraction.ljust(6, "0")[:6] or 0),
                                 tzinfo=datetime.timezone.utc)
    except ValueError:
        return None
    return when.timestamp()


def newer_than(paths, started):
    """True when any existing path was modified after `started` (unix seconds), or when
    there is no start to compare with."""
    if started is None:
        return True
    for path in paths:
        try:
            if os.stat(path).st_mtime > started:
                return True
        except OSError:
            continue
    return False


def describe(props):
    """'failed (exit-code, status 1)'-style summary of a unit's state."""
    state = props.get("ActiveState") or "unknown"
    sub = props.get("SubState") or ""
    text = state + (" (%s)" % sub if sub and sub != state else "")
    result = props.get("Result")
    if result and result != "success":
        text += ", result %s" % result
    status = props.get("ExecMainStatus")
    if status and status != "0":
        text += ", exit status %s" % status
    return text
