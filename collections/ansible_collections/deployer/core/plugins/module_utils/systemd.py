# Copyright: deployer contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Small systemctl helpers for the deployer modules (stdlib + AnsibleModule.run_command)."""

from __future__ import annotations

import os

PROPS = ("Id", "LoadState", "ActiveState", "SubState", "UnitFileState", "Result",
         "ExecMainStartTimestamp", "ActiveEnterTimestamp", "ExecMainStatus")


class Systemd(object):
    def __init__(self, module):
        self.module = module
        self.bin = module.get_bin_path("systemctl", required=True)

    def run(self, *args):
        """systemctl args... -> (rc, combined output)."""
        rc, out, err = self.module.run_command([self.bin] + list(args))
        return rc, (out + err).strip()

    def show(self, *units):
        """{unit: {property: value}} with unix timestamps (@seconds) for the given units."""
        rc, out, err = self.module.run_command(
            [self.bin, "show", "--timestamp=unix", "-p", ",".join(PROPS)] + list(units))
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
    """'@1700000000' -> 1700000000.0; '' / 'n/a' -> None."""
    value = (value or "").strip()
    if value.startswith("@"):
        try:
            return float(value[1:])
        except ValueError:
            return None
    return None


def newer_than(paths, started):
    """True when any existing path was modified after `started` (unix seconds, floored)."""
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
