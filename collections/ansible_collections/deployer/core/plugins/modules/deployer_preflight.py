#!/usr/bin/python
# Copyright: deployer contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Read-only look at a host before a deployment."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deployer_preflight
short_description: Read what is deployed on a host and check that a version can be staged
version_added: "0.1.0"
description:
  - Reads the release tree under O(deploy_to) (the C(current) link and each
    C(releases/<version>/.deployer/meta.json)) and the free disk space, in one step.
  - Never changes anything on the host.
  - Fails when O(required_bytes) exceeds the free space at O(deploy_to) (or its nearest
    existing parent), or when O(version) is present on the host and marked bad.
  - Everything it learns is returned under the C(deployer) key.
options:
  deploy_to:
    description: Root of the application's release tree, for example C(/srv/hello).
    type: path
    required: true
  app:
    description: Application name (also the systemd unit name); used to report unit states.
    type: str
    required: true
  version:
    description: Version about to be staged; empty to only read the host.
    type: str
    default: ""
  sha256:
    description: SHA-256 of the release tarball; with O(version), decides RV(deployer.has_version).
    type: str
    default: ""
  required_bytes:
    description:
      - Bytes the tarball plus its unpacked tree need; C(0) skips the check.
      - Not checked when the host already has the version with the same sha256.
    type: int
    default: 0
  services:
    description:
      - Unit bases of the app's services (C(<app>:<service>), see
        M(deployer.core.deployer_switch)'s O(services)) whose unit states to report as
        RV(deployer.service_units), besides RV(deployer.units).
    type: list
    elements: str
  certificate:
    description:
      - A PEM certificate (the edge proxy's) whose expiry to report as
        RV(deployer.certificate); empty for none. Read with C(openssl x509).
    type: path
author:
  - deployer contributors
notes:
  - Supports check mode (it is read-only anyway).
"""

EXAMPLES = r"""
- name: Look at the host before staging v2
  deployer.core.deployer_preflight:
    deploy_to: /srv/hello
    app: hello
    version: v2
    sha256: "{{ artifact_sha256 }}"
    required_bytes: 52428800
  register: preflight
"""

RETURN = r"""
deployer:
  description: What is on the host.
  returned: always
  type: dict
  contains:
    current:
      description: Version C(current) points at, or null.
      type: str
    slot:
      description:
        - The live blue-green slot, C(blue) or C(green), or null when the app does not run
          blue-green here.
      type: str
    releases:
      description: Releases on the host, oldest staged first.
      type: list
      elements: dict
      sample: [{version: v1, state: good, sha256: "ab12...", staged_at: "2024-11-28T20:30:01.000000Z",
                switched_at: "2024-11-28T20:30:05.000000Z", reason: null}]
    previous_good:
      description: The most recently switched-to good release other than current, or null.
      type: str
    free_bytes:
      description: Free bytes at deploy_to or its nearest existing parent.
      type: int
    free_path:
      description: The path whose filesystem was measured.
      type: str
    has_version:
      description: O(version) is already staged with the same sha256 (no upload needed).
      type: bool
    version_state:
      description: State of O(version) on the host (staged, good, bad, unknown) or null when absent.
      type: str
    units:
      description: systemd ActiveState / UnitFileState of C(<app>.socket) and C(<app>.service).
      type: dict
      sample: {socket: {active: active, enabled: enabled}, service: {active: active, enabled: static}}
    service_units:
      description:
        - With O(services), by unit base, the states of C(<base>.socket) and
          C(<base>.service) as in RV(deployer.units).
      type: dict
      returned: with O(services)
      sample: {"shop:api": {socket: {active: active, enabled: enabled},
                            service: {active: active, enabled: static}},
               "shop:worker": {socket: null, service: {active: active, enabled: enabled}}}
    certificate:
      description: With O(certificate), C(path), C(not_after) (ISO 8601, UTC), C(issuer), or C(error).
      type: dict
      returned: with O(certificate)
    stage:
      description:
        - On failure, the step of the deployment that failed, for the orchestrator (never
          read from the task's name); always C(preflight).
      type: str
      choices: [preflight]
      returned: on failure
"""

import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.deployer.core.plugins.module_utils import slots
from ansible_collections.deployer.core.plugins.module_utils.layout import (
    BAD,
    Tree,
    check_version,
    free_bytes,
    human_bytes,
    previous_good,
)

# The deployment step this module's failures belong to (RV(deployer.stage)).
PREFLIGHT = "preflight"


def unit_states(module, app):
    """{socket, service}: the states of C(<app>.socket) and C(<app>.service)."""
    return units_states(module, [app])[app]


def units_states(module, bases):
    """{base: {socket, service}} for each unit base, in one systemctl call."""
    result = dict((b, {"socket": None, "service": None}) for b in bases)
    systemctl = module.get_bin_path("systemctl")
    if not systemctl or not bases:
        return result
    keys = [(b, k) for b in bases for k in ("socket", "service")]
    units = ["%s.%s" % key for key in keys]
    rc, out, _err = module.run_command(
        [systemctl, "show", "-p", "LoadState,ActiveState,UnitFileState"] + units)
    if rc != 0:
        return result
    for (base, key), block in zip(keys, out.split("\n\n")):
        props = dict(line.partition("=")[::2] for line in block.splitlines())
        if props.get("LoadState") == "not-found":
            continue
        result[base][key] = {"active": props.get("ActiveState"),
                             "enabled": props.get("UnitFileState")}
    return result


_MONTHS = dict((m, i + 1) for i, m in enumerate(
    "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()))
_ENDDATE = re.compile(r"^notAfter=([A-Z][a-z]{2}) +([0-9]{1,2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})"
                      r" ([0-9]{4}) GMT$")


def certificate_info(module, path):
    """{path, not_after (ISO 8601, UTC), issuer} of a PEM certificate, or {path, error}."""
    info = dict(path=path, not_after=None, issuer=None, error=None)
    if not os.path.isfile(path):
        info["error"] = "no certificate at %s" % path
        return info
    openssl = module.get_bin_path("openssl")
    if openssl is None:
        info["error"] = "openssl is not installed: the certificate cannot be read"
        return info
    rc, out, err = module.run_command([openssl, "x509", "-noout", "-enddate", "-issuer",
                                       "-nameopt", "RFC2253", "-in", path])
    lines = out.splitlines()
    match = _ENDDATE.match(lines[0]) if rc == 0 and lines else None
    if match is None or match.group(1) not in _MONTHS:
        info["error"] = "openssl could not read the certificate at %s: %s" % (
            path, (err or out).strip()[:200])
        return info
    month, day, hour, minute, second, year = match.groups()
    info["not_after"] = "%s-%02d-%02dT%s:%s:%sZ" % (year, _MONTHS[month], int(day), hour,
                                                   minute, second)
    issuer = [ln for ln in lines[1:] if ln.startswith("issuer=")]
    info["issuer"] = issuer[0][len("issuer="):].strip()[:200] if issuer else None
    return info


# The module's arguments; also read by the lean runner to validate on the controller.
MODULE_SPEC = dict(
    argument_spec=dict(
        deploy_to=dict(type="path", required=True),
        app=dict(type="str", required=True),
        version=dict(type="str", default=""),
        sha256=dict(type="str", default=""),
        required_bytes=dict(type="int", default=0),
        services=dict(type="list", elements="str"),
        certificate=dict(type="path"),
    ),
    supports_check_mode=True,
)


def main():
    module = AnsibleModule(**MODULE_SPEC)
    params = module.params
    version = params["version"] or ""
    if version and check_version(version):
        module.fail_json(msg=check_version(version), deployer={"stage": PREFLIGHT})
    tree = Tree(params["deploy_to"])
    releases = tree.releases_info()
    current = tree.current()
    by_version = dict((r["version"], r) for r in releases)
    mine = by_version.get(version) if version else None
    sha = (params["sha256"] or "").lower()
    has_version = bool(mine and sha and (mine["sha256"] or "").lower() == sha
                       and mine["state"] != BAD)
    free, measured = free_bytes(tree.root)
    data = dict(
        current=current,
        slot=slots.live(tree),
        releases=releases,
        previous_good=previous_good(releases, current),
        free_bytes=free,
        free_path=measured,
        has_version=has_version,
        version_state=mine["state"] if mine else None,
    )
    bases = params.get("services")
    states = units_states(module, [params["app"]] + [b for b in bases or [] if b != params["app"]])
    data["units"] = states[params["app"]]
    if bases is not None:
        data["service_units"] = dict((b, states[b]) for b in bases)
    if params.get("certificate"):
        data["certificate"] = certificate_info(module, params["certificate"])
    if mine and mine["state"] == BAD:
        module.fail_json(
            msg="version %s is marked bad on this host (%s); refusing to deploy it again: "
                "build a new version" % (version, mine.get("reason") or "no reason recorded"),
            deployer=dict(data, stage=PREFLIGHT))
    required = params["required_bytes"] or 0
    if required > 0 and not has_version and free < required:
        module.fail_json(
            msg="not enough disk space for %s at %s: %s free, %s required" % (
                version or "the release", measured, human_bytes(free), human_bytes(required)),
            deployer=dict(data, stage=PREFLIGHT))
    module.exit_json(changed=False, deployer=data)


if __name__ == "__main__":
    main()
