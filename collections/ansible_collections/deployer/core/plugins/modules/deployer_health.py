#!/usr/bin/python
# Copyright: deployer contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Health checks on the host: one check, or a watch window."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deployer_health
short_description: Run the application's health checks on the host, once or over a watch window
version_added: "0.1.0"
description:
  - Runs the same checks as M(deployer.core.deployer_switch) (HTTP, TCP, command) against
    127.0.0.1 on the host itself; one sample runs every configured check once.
  - With O(duration) C(0) it takes one sample (status). Otherwise it samples every
    O(period) seconds for O(duration) seconds and is unhealthy as soon as O(threshold)
    samples in a row fail (the post-rollout watch window).
  - O(health.retries) and O(health.interval) are not used here; each sample is one attempt.
  - Read-only.
options:
  health:
    description: Health checks, as for M(deployer.core.deployer_switch).
    type: dict
    default: {}
    suboptions:
      http:
        description: "HTTP GET check: C({port, path: /, status: 200, body: substring, timeout: 2, host: 127.0.0.1})."
        type: dict
      tcp:
        description: "TCP connect check: C({port, timeout: 2, host: 127.0.0.1})."
        type: dict
      command:
        description: "Command check C({run, timeout: 10, user}), run as in M(deployer.core.deployer_switch)."
        type: dict
      retries:
        description: Ignored (accepted so the same dict can be passed as to deployer_switch).
        type: int
      interval:
        description: Ignored (accepted so the same dict can be passed as to deployer_switch).
        type: float
  duration:
    description: Seconds to watch; C(0) takes a single sample.
    type: float
    default: 0
  period:
    description: Seconds between samples.
    type: float
    default: 5
  threshold:
    description: Consecutive failed samples that make the host unhealthy (capped at the number of samples).
    type: int
    default: 3
  grace:
    description:
      - Seconds at the start of the window during which failed samples are reported (in
        RV(deployer.failures)) but not counted towards O(threshold), while the app warms up.
    type: float
    default: 0
  deploy_to:
    description:
      - Root of the app's release tree. With O(app), when the current release runs several
        instances (C(<app>@<port>), see M(deployer.core.deployer_switch)), every sample
        checks each instance, on its own port.
    type: path
  app:
    description: Application name, with O(deploy_to).
    type: str
  slots:
    description:
      - Blue-green (see M(deployer.core.deployer_switch)'s O(slots)), with O(deploy_to).
        The checks on O(slots.blue) (or on no port) run against the port of the live slot
        (C(<deploy_to>/slots/live); C(blue) when there is none).
    type: dict
    suboptions:
      blue:
        description: Port of the blue slot (the service's port).
        type: int
        required: true
      green:
        description: Port of the green slot.
        type: int
        required: true
  services:
    description:
      - The app's services (see M(deployer.core.deployer_switch)'s O(services)), each with
        its own checks; when given, O(health) is not used. With O(deploy_to), each service's
        checks are run against every instance of its unit base in the current release.
      - A sample passes when every service's checks pass; each service is reported in
        RV(deployer.services), unhealthy when its own checks fail O(threshold) samples in a
        row.
    type: list
    elements: dict
    suboptions:
      name:
        description: Service name.
        type: str
        required: true
      unit:
        description: Unit base of the service (C(<app>:<name>)).
        type: str
        required: true
      health:
        description: The service's checks, as O(health).
        type: dict
        default: {}
        suboptions:
          http:
            description: As O(health.http).
            type: dict
          tcp:
            description: As O(health.tcp).
            type: dict
          command:
            description: As O(health.command).
            type: dict
          retries:
            description: Ignored.
            type: int
          interval:
            description: Ignored.
            type: float
  fail_on_unhealthy:
    description: Fail the task when unhealthy (C(false) to only report, as in facts).
    type: bool
    default: true
author:
  - deployer contributors
notes:
  - Supports check mode (it is read-only anyway).
"""

EXAMPLES = r"""
- name: Watch for two minutes after the rollout
  deployer.core.deployer_health:
    health:
      http: {port: 8000, path: /healthz}
    duration: 120
    period: 5
    threshold: 3
"""

RETURN = r"""
deployer:
  description: Health of the host.
  returned: always
  type: dict
  contains:
    healthy:
      description: No run of O(threshold) failed samples.
      type: bool
    checks:
      description: Samples taken.
      type: int
    failures:
      description: Samples that failed.
      type: int
    max_consecutive_failures:
      description: Longest run of failed samples.
      type: int
    message:
      description: The last failure (with the run length) or a summary.
      type: str
    services:
      description: With O(services), by service name, C(healthy) and C(message) of each.
      type: dict
      returned: with O(services)
      sample: {api: {healthy: true, message: "healthy: 1 check passed"}}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.deployer.core.plugins.module_utils import slots
from ansible_collections.deployer.core.plugins.module_utils.health import watch, watch_services
from ansible_collections.deployer.core.plugins.module_utils.layout import Tree
from ansible_collections.deployer.core.plugins.module_utils.units import (
    instance_health,
    instances,
    of_release,
)


def checks_of(health, deploy_to, app, ports=None):
    """`health`, or one set of checks per instance when the current release under
    `deploy_to` runs several instances of `app` (a unit base: the app's, or a service's);
    with the slots' `ports` (blue-green), the live slot's checks."""
    if not deploy_to or not app:
        return health
    tree = Tree(deploy_to)
    if ports:
        return slots.slot_health(health, ports, slots.live(tree) or "blue")
    current = tree.current()
    if not current:
        return health
    wanted = instances(app, of_release(tree.release(current)))
    if len(wanted) < 2 or wanted[0].port is None:
        return health
    return [instance_health(health, i, wanted) for i in wanted]


HEALTH_OPTIONS = dict(
    http=dict(type="dict"),
    tcp=dict(type="dict"),
    command=dict(type="dict"),
    retries=dict(type="int"),
    interval=dict(type="float"),
)

# The module's arguments; also read by the lean runner to validate on the controller.
MODULE_SPEC = dict(
    argument_spec=dict(
        health=dict(type="dict", default={}, options=HEALTH_OPTIONS),
        services=dict(type="list", elements="dict", options=dict(
            name=dict(type="str", required=True),
            unit=dict(type="str", required=True),
            health=dict(type="dict", default={}, options=HEALTH_OPTIONS),
        )),
        duration=dict(type="float", default=0),
        period=dict(type="float", default=5),
        threshold=dict(type="int", default=3),
        grace=dict(type="float", default=0),
        deploy_to=dict(type="path"),
        app=dict(type="str"),
        slots=dict(type="dict", options=dict(
            blue=dict(type="int", required=True),
            green=dict(type="int", required=True),
        )),
        fail_on_unhealthy=dict(type="bool", default=True),
    ),
    supports_check_mode=True,
)


def main():
    module = AnsibleModule(**MODULE_SPEC)
    p = module.params
    if p.get("services") is not None:
        services = [(s["name"], checks_of(s["health"] or {}, p["deploy_to"], s["unit"]))
                    for s in p["services"]]
        result = watch_services(services, p["duration"], p["period"], p["threshold"],
                                grace=p["grace"])
    else:
        health = checks_of(p["health"] or {}, p["deploy_to"], p["app"], p["slots"])
        result = watch(health, p["duration"], p["period"], p["threshold"], grace=p["grace"])
    if not result["healthy"] and p["fail_on_unhealthy"]:
        module.fail_json(msg="unhealthy: %s" % result["message"], deployer=result)
    module.exit_json(changed=False, deployer=result)


if __name__ == "__main__":
    main()
