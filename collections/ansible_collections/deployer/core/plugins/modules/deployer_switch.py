#!/usr/bin/python
# Copyright: deployer contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Switch `current` to a staged release, restart, and health-check on the host."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deployer_switch
short_description: Point current at a staged release, restart the service and health-check it on the host
version_added: "0.1.0"
description:
  - Optionally marks O(mark_bad) as bad first (state C(bad), O(reason)), whether or not the switch succeeds.
  - Atomically points C(<deploy_to>/current) at C(releases/<version>) (new link + rename),
    installs the release's own systemd units (kept with it in C(.deployer/units/) by
    M(deployer.core.deployer_release)) under C(/etc/systemd/system), removing an app unit
    the release does not have, and restarts the service. With a C(<app>.socket) unit the
    app is socket-activated (the socket stays up, so requests wait in its backlog);
    without one it binds its port itself and is restarted in place (the old process
    releases the port, then the new one binds it). A release staged before units were kept
    with releases uses the units already installed.
  - A release whose units are the templates C(<app>@.service) (and C(<app>@.socket)) with
    C(<app>.target) runs one instance per port the target wants (C(<app>@<port>.service));
    each is started like the one service above and health-checked on its own port (an
    HTTP or TCP check on the first instance's port is run against each instance's).
    Instances the release does not have are stopped and disabled.
  - Then runs the health checks on the host against 127.0.0.1 with retries. Every attempt
    is bounded by the checks' timeouts.
  - When healthy the release's state becomes C(good) and C(switched_at) is set.
  - When the service does not come up or stays unhealthy the task fails, saying why - the
    cause (port in use and who holds it, missing command, exit code, signal, out of memory,
    unhealthy answer or timeout), the last health result and the service's last journal
    lines, the values of the release's secret variables masked. It does not switch back
    by itself; the caller decides for the whole fleet.
  - Idempotent; when current already is O(version), the release's units are installed and
    active, the env and unit files are not newer than the running service and one health
    attempt passes, nothing is restarted and C(changed=false).
  - With an empty O(version) (nothing to roll back to) the app's units are stopped,
    disabled and removed and C(current) is removed, so the host runs nothing. That includes
    the units of its services (C(<app>:<service>*)), whether or not O(services) is given.
  - With O(services) the release has several services (see there). Without it, units of
    services (C(<app>:*)) that an earlier release installed are stopped, disabled and
    removed when switching (back) to a release of one service.
options:
  deploy_to:
    description: Root of the release tree.
    type: path
    required: true
  app:
    description: Application name; the units are C(<app>.service) and, when the release has it, C(<app>.socket).
    type: str
    required: true
  version:
    description: Staged version to switch to; empty string stops the application instead.
    type: str
    required: true
  health:
    description:
      - Health checks; all configured checks must pass in one attempt.
      - Besides them every attempt requires C(<app>.service) to be active.
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
        description:
          - "Command check (exit 0 passes), run with /bin/sh -c: C({run, timeout: 10, user})."
          - With C(user) it runs as that user (deployer passes the service user unless the
            config names another, such as C(root)), with a minimal environment (C(PATH),
            C(HOME), C(USER), C(LOGNAME), C(SHELL), C(LANG)) from that user's home, or C(/)
            when there is none; without it, as the user the module runs as.
        type: dict
      retries:
        description: Maximum number of attempts.
        type: int
        default: 10
      interval:
        description: Seconds between attempts.
        type: float
        default: 1
  services:
    description:
      - The release's services, in switch order (dependencies first). When given, it
        replaces the one-service behaviour above (O(health) is not used); the files of
        service C(S) are in C(releases/<version>/S/), the units of all services in the
        release's C(.deployer/units/).
      - The units of a service are those of the one service above with the unit base
        O(services[].unit) instead of O(app) - C(<unit>.service) (and C(<unit>.socket)), or
        the templates C(<unit>@.service) (and C(<unit>@.socket)) with C(<unit>.target).
      - C(current) is switched once, then each service in order has its stale instances
        stopped, its units installed or removed, is restarted and health-checked; the next
        one restarts only when it is healthy. A service with no units in the release (files
        only) is switched by C(current) alone; its checks, if any, are run.
      - The app's own units (C(<app>.*), C(<app>@*)) and every installed C(<app>:*) unit of a
        service the release does not have are stopped, disabled and removed (after
        C(current) is switched, before the first restart).
      - The release is marked C(good) only when every service is healthy. When the version
        is already current, a service whose units are unchanged and fresh and that passes one
        attempt is not restarted; when all are so, nothing changes (C(changed=false)).
      - A release without units of its own (staged before units were kept with releases)
        cannot be switched with O(services).
    type: list
    elements: dict
    suboptions:
      name:
        description: Service name (unique), as in RV(deployer.services) and failure messages.
        type: str
        required: true
      unit:
        description: Unit base of the service, C(<app>:<name>) (unique).
        type: str
        required: true
      health:
        description:
          - The service's health checks, as O(health); run against each instance (an HTTP
            or TCP check on the first instance's port against each instance's own port).
          - Besides them every attempt requires the instance's service unit to be active.
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
            description: Maximum number of attempts (per instance).
            type: int
            default: 10
          interval:
            description: Seconds between attempts.
            type: float
            default: 1
  slots:
    description:
      - Blue-green (replaces the one-service behaviour above; not with O(services)). The
        release's units are C(<app>:blue.service) and C(<app>:green.service), each running
        the release C(<deploy_to>/slots/<slot>) links to on its own port;
        C(<deploy_to>/slots/live) links to the live slot.
      - When the live slot runs O(version) (C(current)) and passes one attempt, nothing is
        restarted. Otherwise the other slot is pointed at O(version), its unit installed,
        started and health-checked on its own port (an HTTP or TCP check on O(slots.blue),
        or on no port, is run against the slot's), unless it already runs exactly this
        release and passes one attempt (a switch back within the keep-warm time, which
        restarts nothing). Only then do C(current) and C(slots/live) change, together, and
        a transient timer (C(<app>:retire-<slot>.timer)) stops the slot left
        O(slots.retire_after) seconds later. A slot that does not come up is stopped again
        and the task fails; the live slot and C(current) stay as they were.
      - A host without a live slot counts as on C(blue) (units of another strategy on the
        service's port are stopped by the timer), so its first slot is C(green).
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
      retire_after:
        description: Seconds after the switch before the slot left is stopped.
        type: float
        required: true
      start_only:
        description:
          - Canary. The other slot is started and health-checked as above, but neither
            C(current) nor C(slots/live) changes and no timer stops the live slot; both
            slots run, the edge proxy weighting requests between them. C(deployer.slot)
            stays the live slot; C(deployer.started) is the slot now running O(version).
          - A later switch without it makes that slot live (it runs this release already,
            so nothing restarts).
          - On a host that ran no release before there is nothing to weight against, so
            the slot goes live at once, as without it (C(deployer.started) null).
        type: bool
        default: false
  mark_bad:
    description: A version to mark bad (ignored when not on the host).
    type: str
  reason:
    description: Why O(mark_bad) is bad; stored in its meta.json.
    type: str
    default: ""
  release_info:
    description:
      - Where to record the version now current for Prometheus, as a gauge
        C(deployer_release_info{app, environment, version} 1) in a file that node
        exporter's textfile collector reads. The file is removed when the app is stopped.
    type: dict
    suboptions:
      path:
        description: The C(.prom) file, inside the textfile collector's directory.
        type: path
        required: true
      environment:
        description: Environment label.
        type: str
        required: true
author:
  - deployer contributors
notes:
  - Supports check mode (reports whether it would switch and restart).
"""

EXAMPLES = r"""
- name: Switch to v2 and check it on the host
  deployer.core.deployer_switch:
    deploy_to: /srv/hello
    app: hello
    version: v2
    health:
      http: {port: 8000, path: /healthz, status: 200, timeout: 2}
      retries: 10
      interval: 1

- name: Switch a release of two services, the API first, then its worker
  deployer.core.deployer_switch:
    deploy_to: /srv/shop
    app: shop
    version: v7
    services:
      - name: api
        unit: "shop:api"
        health: {http: {port: 8000, path: /healthz}}
      - name: worker
        unit: "shop:worker"
        health: {command: {run: "test -s /run/shop-worker/beat"}}

- name: Roll back to v1, marking v2 bad
  deployer.core.deployer_switch:
    deploy_to: /srv/hello
    app: hello
    version: v1
    mark_bad: v2
    reason: "health check failed on web2"
"""

RETURN = r"""
deployer:
  description: What the switch did.
  returned: always
  type: dict
  contains:
    previous:
      description: Version current pointed at before, or null.
      type: str
    current:
      description: Version current points at now, or null.
      type: str
    switched:
      description: The current link was changed.
      type: bool
    restarted:
      description: The service was restarted (with O(services), any service was).
      type: bool
    healthy:
      description: The health checks passed (with O(services), of every service).
      type: bool
    attempts:
      description: Health check attempts made (with O(services), of all services together).
      type: int
    health_message:
      description:
        - Result of the last attempt.
        - "With O(services), C(<name>: <result>) of each service joined by C(; ), or on
          failure the failing service's C(<name>: <result>)."
      type: str
    services:
      description:
        - With O(services), by service name, C(restarted), C(healthy), C(attempts) and
          C(health_message) of each; on failure the services after the failing one are
          not restarted (C(healthy=false), C(attempts=0)).
      type: dict
      returned: with O(services)
      sample: {api: {restarted: true, healthy: true, attempts: 2, health_message: "HTTP GET ..."},
               worker: {restarted: true, healthy: true, attempts: 1, health_message: "..."}}
    service:
      description: With O(services), on failure, the name of the service that failed.
      type: str
      returned: on failure with O(services)
    marked_bad:
      description: The version marked bad by this run, or null.
      type: str
    started:
      description: With O(slots.start_only), the slot started next to the live one (null
        when the live slot runs O(version) already).
      type: str
      returned: with O(slots)
    slot:
      description: With O(slots), the live slot after the task (C(blue), C(green) or null).
      type: str
      returned: with O(slots)
    retiring:
      description: With O(slots), the slot whose stop the task scheduled, or null.
      type: str
      returned: with O(slots)
    failure:
      description: When the switch failed, why (C(cause), C(summary), C(journal) lines).
      type: dict
      returned: on failure
    stage:
      description:
        - On failure, the step of the deployment that failed, for the orchestrator (never
          read from the task's name). C(health) when C(current) was switched to O(version)
          and the service then did not come up or stayed unhealthy (RV(deployer.switched)
          is true); C(switch) for anything else (not staged, marked bad, invalid version,
          or a failed restart of the version that already was current).
        - The deployer.core.rollback role reports its failures as C(rollback) instead.
      type: str
      choices: [switch, health]
      returned: on failure
"""

import glob
import os
import re
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.deployer.core.plugins.module_utils.explain import (
    describe_failure,
    journal,
    secret_values,
    system_results,
)
from ansible_collections.deployer.core.plugins.module_utils.health import (
    attempt,
    configured,
    with_retries,
)
from ansible_collections.deployer.core.plugins.module_utils.layout import (
    BAD,
    GOOD,
    Tree,
    check_version,
    now_iso,
    point_current,
    read_bytes,
    remove_path,
    write_atomic,
)
from ansible_collections.deployer.core.plugins.module_utils.systemd import (
    Systemd,
    describe,
    newer_than,
    timestamp,
)
from ansible_collections.deployer.core.plugins.module_utils import slots as slotting
from ansible_collections.deployer.core.plugins.module_utils.units import (
    UNIT_NAME,
    UNITS_DIR,
    Instance,
    app_units,
    base_of,
    instance_health,
    instance_names,
    instances as instances_of,
    of_base,
    of_release as release_units,
    differences as unit_differences,
    install as install_units,
)


# The deployment steps this module's failures belong to (RV(deployer.stage)).
SWITCH, HEALTH = "switch", "health"


def _label(value):
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def record_release(info, app, version):
    """Keep the textfile collector's view of the current version in step (no-op without
    O(release_info)); never counted as a change: it mirrors the state, it is not state."""
    if not info:
        return
    path = info["path"]
    if not version:
        remove_path(path)
        return
    text = (
        "# HELP deployer_release_info The release deployer made current for this app here.\n"
        "# TYPE deployer_release_info gauge\n"
        'deployer_release_info{app="%s",environment="%s",version="%s"} 1\n'
        % (_label(app), _label(info["environment"]), _label(version))
    )
    try:
        with open(path) as handle:
            if handle.read() == text:
                return
    except OSError:
        pass
    if os.path.isdir(os.path.dirname(path)):
        write_atomic(path, text.encode("utf-8"), 0o644)


HEALTH_OPTIONS = dict(
    http=dict(type="dict"),
    tcp=dict(type="dict"),
    command=dict(type="dict"),
    retries=dict(type="int", default=10),
    interval=dict(type="float", default=1),
)

# The module's arguments; also read by the lean runner to validate on the controller.
MODULE_SPEC = dict(
    argument_spec=dict(
        deploy_to=dict(type="path", required=True),
        app=dict(type="str", required=True),
        version=dict(type="str", required=True),
        health=dict(type="dict", default={}, options=HEALTH_OPTIONS),
        services=dict(type="list", elements="dict", options=dict(
            name=dict(type="str", required=True),
            unit=dict(type="str", required=True),
            health=dict(type="dict", default={}, options=HEALTH_OPTIONS),
        )),
        slots=dict(type="dict", options=dict(
            blue=dict(type="int", required=True),
            green=dict(type="int", required=True),
            retire_after=dict(type="float", required=True),
            start_only=dict(type="bool", default=False),
        )),
        mark_bad=dict(type="str"),
        reason=dict(type="str", default=""),
        release_info=dict(type="dict", options=dict(
            path=dict(type="path", required=True),
            environment=dict(type="str", required=True),
        )),
    ),
    supports_check_mode=True,
)

_SERVICE_BASE = re.compile(r"^[A-Za-z0-9_.:-]+$")


def check_services(app, services):
    """Why `services` breaks the contract (names unique, unit bases `<app>:<service>`,
    unique), or None."""
    names, bases = set(), set()
    for service in services:
        name, base = service["name"], service["unit"]
        if not name or name in names:
            return "services: service names must be unique and not empty (%r)" % name
        if (not base.startswith(app + ":") or base == app + ":"
                or not _SERVICE_BASE.match(base) or base in bases):
            return ("services: the unit base of service %s must be unique and of the form "
                    "%s:<service> (letters, digits, _ . - :), not %r" % (name, app, base))
        names.add(name)
        bases.add(base)
    return None


def main():
    module = AnsibleModule(**MODULE_SPEC)
    p = module.params
    check = module.check_mode
    tree = Tree(p["deploy_to"])
    app = p["app"]
    version = p["version"] or ""
    health = p["health"] or {}
    services = p.get("services")
    systemd = Systemd(module)
    data = dict(previous=tree.current(), current=tree.current(), switched=False,
                restarted=False, healthy=False, attempts=0, health_message="", marked_bad=None)
    changed = False

    if version and check_version(version):
        module.fail_json(msg=check_version(version), deployer=dict(data, stage=SWITCH))
    if services is not None and check_services(app, services):
        module.fail_json(msg=check_services(app, services), deployer=dict(data, stage=SWITCH))

    # 1. Mark the failed version bad first: that must stick even if the switch fails.
    if p["mark_bad"] and p["mark_bad"] != version:
        meta = tree.read_meta(p["mark_bad"])
        if meta is not None:
            reason = p["reason"] or "marked bad by deployer"
            if meta.get("state") != BAD or meta.get("reason") != reason:
                meta.update(state=BAD, reason=reason, marked_bad_at=now_iso())
                if not check:
                    tree.write_meta(p["mark_bad"], meta)
                changed = True
            data["marked_bad"] = p["mark_bad"]

    # 2. Nothing to switch to: stop the application.
    if not version:
        stop_application(module, systemd, tree, app, p, data)

    release = tree.release(version)
    if not os.path.isdir(release) or os.path.islink(release):
        staged = ", ".join(sorted(tree.versions())) or "none"
        module.fail_json(msg="version %s is not staged on this host (staged: %s)"
                         % (version, staged), deployer=dict(data, stage=SWITCH))
    meta = tree.read_meta(version) or {}
    if meta.get("state") == BAD:
        module.fail_json(msg="version %s is marked bad on this host (%s); refusing to switch to it"
                         % (version, meta.get("reason") or "no reason recorded"),
                         deployer=dict(data, stage=SWITCH))

    # The release's own units (None: staged before units belonged to releases, so /etc
    # holds them) say what runs: one service, socket-activated when it has a socket unit,
    # or several instances of a template, each on its own port.
    units = release_units(release)
    if p["slots"]:
        switch_slots(module, systemd, tree, app, version, units, meta, data, changed)
    present = present_units(systemd, app)
    if services is not None:
        switch_services(module, systemd, tree, app, version, units, meta, present, data,
                        changed)
    if units is None:
        to_write, to_remove = [], []
        wanted = instances_of(app, None, os.path.exists(os.path.join(UNITS_DIR, app + ".socket")))
    else:
        to_write, to_remove = unit_differences(app, units)
        wanted = instances_of(app, units)
    group = app + ".target" if units and app + ".target" in units else None
    wanted_names = set(u for i in wanted for u in i.units)
    stale = [u for u in instance_names(present, app) if u not in wanted_names]
    # units of services (<app>:<service>) left by a release with several services
    dropped = leftovers(present, app, ())
    checks = [(i, instance_health(health, i, wanted)) for i in wanted]

    # 3. Already live and fine: leave it alone.
    env_file = tree.env_paths(version)
    states = systemd.show(*[u for i in wanted for u in i.units])

    if (data["previous"] == version and not to_write and not to_remove and not stale
            and not dropped and all(fresh(states, i, env_file) for i in wanted)):
        results = [attempt(spec, active(systemd, i)) for i, spec in checks]
        if all(ok for ok, _message in results):
            if meta.get("state") != GOOD:
                meta.update(state=GOOD, switched_at=meta.get("switched_at") or now_iso(),
                            reason=None)
                if not check:
                    tree.write_meta(version, meta)
                changed = True
            data.update(healthy=True, attempts=len(results),
                        health_message="; ".join(m for _ok, m in results if m))
            if not check:
                record_release(p["release_info"], app, version)
            module.exit_json(changed=changed, deployer=data)

    # 4. Switch, install the release's units and restart.
    changed = True
    data.update(current=version, switched=data["previous"] != version, restarted=True)
    if check:
        data["health_message"] = "check mode: health not checked"
        module.exit_json(changed=True, deployer=data)
    started = time.time()
    if data["switched"]:
        point_current(tree, version)
    record_release(p["release_info"], app, version)
    if dropped:
        remove_units(systemd, dropped)
    if stale:  # instances the release does not have (fewer replicas, or one service again)
        systemd.run("disable", "--now", *stale)
    if to_remove:  # e.g. the socket of a release that was socket-activated: free the port
        systemd.run("disable", "--now", *to_remove)
    if to_write or to_remove:
        install_units(units, to_write, to_remove)
    if to_write or to_remove or stale or dropped:
        rc, out = systemd.run("daemon-reload")
        if rc != 0:
            fail_start(module, systemd, tree, wanted[0], version, data, health, started,
                       "systemctl daemon-reload failed: %s" % out)
    if group:
        systemd.run("enable", group)  # the instances start at boot with it
    # The version being left may be crash-looping (a rollback from it): systemd's start limit
    # can be hit, or an automatic restart of the old code begin, at any moment, not only
    # before the state read above. Clear the failed state whatever it was read as, and
    # retry a restart that fails once (below), so the new `current` gets a clean start.
    systemd.run("reset-failed", *sorted(wanted_names))
    for instance in wanted:
        restart(module, systemd, tree, instance, states, socket_ok(states, instance)
                if instance.socket else None, version, data, health, started)

    # 5. Health, on the host itself: every instance.
    total = 0
    for instance, spec in checks:
        healthy, attempts, message = with_retries(spec, active(systemd, instance))
        total += attempts
        data.update(healthy=healthy, attempts=total, health_message=message)
        if not healthy:
            fail_start(module, systemd, tree, instance, version, data, spec, started, message)
    meta = tree.read_meta(version) or meta
    meta.update(state=GOOD, switched_at=now_iso(), reason=None)
    tree.write_meta(version, meta)
    module.exit_json(changed=changed, deployer=data)


class Service(object):
    """One service of a release switched with O(services): its units in the release
    (unit base `unit`), what to change under /etc, its instances and their checks."""

    def __init__(self, spec, units, present):
        self.name, self.base = spec["name"], spec["unit"]
        self.health = spec.get("health") or {}
        self.units = of_base(self.base, units)
        self.to_write, self.to_remove = unit_differences(self.base, self.units)
        # no units of its base: a static service (files only), switched by current alone
        self.wanted = instances_of(self.base, self.units) if self.units else []
        self.group = self.base + ".target" if self.base + ".target" in self.units else None
        self.names = set(u for i in self.wanted for u in i.units)
        self.stale = [u for u in instance_names(present, self.base) if u not in self.names]
        self.checks = [(i, instance_health(self.health, i, self.wanted)) for i in self.wanted]
        self.result = dict(restarted=False, healthy=False, attempts=0, health_message="")

    def unchanged(self):
        return not (self.to_write or self.to_remove or self.stale)

    def check_once(self, systemd):
        """One attempt of every instance's checks (of the checks alone for a static
        service): (ok, attempts, message)."""
        if not self.wanted:
            if not configured(self.health):
                return True, 0, "no units: switched by current alone"
            ok, message = attempt(self.health)
            return ok, 1, message
        results = [attempt(spec, active(systemd, i)) for i, spec in self.checks]
        return (all(ok for ok, _m in results), len(results),
                "; ".join(m for _ok, m in results if m))

    def check_with_retries(self, systemd):
        """Every instance's checks with retries: (ok, attempts, message, failing instance
        and its checks or None)."""
        if not self.wanted:
            if not configured(self.health):
                return True, 0, "no units: switched by current alone", None
            ok, attempts, message = with_retries(self.health)
            return ok, attempts, message, (None, self.health)
        total, messages = 0, []
        for instance, spec in self.checks:
            ok, attempts, message = with_retries(spec, active(systemd, instance))
            total += attempts
            messages.append(message)
            if not ok:
                return False, total, message, (instance, spec)
        return True, total, "; ".join(m for m in messages if m), None


def mark_good(module, tree, version, meta):
    """Record `version` as good on this host (once); returns whether that changed it."""
    if meta.get("state") == GOOD:
        return False
    meta.update(state=GOOD, switched_at=meta.get("switched_at") or now_iso(), reason=None)
    if not module.check_mode:
        tree.write_meta(version, meta)
    return True


def switch_services(module, systemd, tree, app, version, units, meta, present, data, changed):
    """Switch a release of several services (O(services)): `current` once, then each
    service in order (its stale instances stopped, its units installed, restarted and
    health-checked), the next one only when it is healthy; the app's own units and those of
    services the release dropped are removed. Does not return."""
    p = module.params
    if units is None:
        module.fail_json(msg="version %s has no units of its own (.deployer/units/, staged "
                         "before units were kept with releases): it cannot be switched with "
                         "services" % version, deployer=dict(data, stage=SWITCH))
    plan = [Service(spec, units, present) for spec in p["services"]]
    data["services"] = dict((s.name, s.result) for s in plan)
    # Units of the app the release does not have: the app's own (one service before) and
    # those of the services it no longer has.
    dropped = leftovers(present, app, [s.base for s in plan])
    env_file = tree.env_paths(version)
    names = [u for s in plan for i in s.wanted for u in i.units]
    states = systemd.show(*names) if names else {}

    def summary():
        data.update(
            attempts=sum(s.result["attempts"] for s in plan),
            restarted=any(s.result["restarted"] for s in plan),
            health_message="; ".join("%s: %s" % (s.name, s.result["health_message"])
                                     for s in plan))

    # 3. Already live and fine (each service: units as the release has them, fresh, one
    # healthy attempt): leave it alone. A service found so stays up when others restart.
    live = []
    if data["previous"] == version:
        for service in plan:
            if service.unchanged() and all(fresh(states, i, env_file) for i in service.wanted):
                ok, attempts, message = service.check_once(systemd)
                if ok:
                    service.result.update(healthy=True, attempts=attempts,
                                          health_message=message)
                    live.append(service)
        if len(live) == len(plan) and not dropped:
            changed = mark_good(module, tree, version, meta) or changed
            summary()
            data["healthy"] = True
            if not module.check_mode:
                record_release(p["release_info"], app, version)
            module.exit_json(changed=changed, deployer=data)

    # 4. Switch once, remove what the release does not have, then service by service.
    data.update(current=version, switched=data["previous"] != version)
    todo = [s for s in plan if s not in live]
    if module.check_mode:
        for service in todo:
            service.result.update(restarted=bool(service.wanted),
                                  health_message="check mode: health not checked")
        summary()
        module.exit_json(changed=True, deployer=data)
    started = time.time()
    if data["switched"]:
        point_current(tree, version)
    record_release(p["release_info"], app, version)
    if dropped:
        remove_units(systemd, dropped)
        systemd.run("daemon-reload")
    for service in todo:
        switch_service(module, systemd, tree, service, states, version, data, started, summary)
    summary()
    data["healthy"] = True
    meta = tree.read_meta(version) or meta
    meta.update(state=GOOD, switched_at=now_iso(), reason=None)
    tree.write_meta(version, meta)
    module.exit_json(changed=True, deployer=data)


def switch_service(module, systemd, tree, service, states, version, data, started, summary):
    """One service of O(services), `current` already switched: its units as the release
    has them, its instances restarted, then health-checked; fails the switch naming it."""
    def failed(instance, spec, message):
        summary()
        fail_start(module, systemd, tree, instance, version, data, spec, started, message,
                   service=service.name)

    if service.stale:
        systemd.run("disable", "--now", *service.stale)
    if service.to_remove:
        systemd.run("disable", "--now", *service.to_remove)
    if service.to_write or service.to_remove:
        install_units(service.units, service.to_write, service.to_remove)
    if not service.unchanged():
        rc, out = systemd.run("daemon-reload")
        if rc != 0:
            failed(service.wanted[0] if service.wanted else None, service.health,
                   "systemctl daemon-reload failed: %s" % out)
    if service.group:
        systemd.run("enable", service.group)
    if service.wanted:
        systemd.run("reset-failed", *sorted(service.names))
        service.result["restarted"] = True
        for instance in service.wanted:
            restart(module, systemd, tree, instance, states, socket_ok(states, instance)
                    if instance.socket else None, version, data, service.health, started,
                    service=service.name, summary=summary)
    ok, attempts, message, failing = service.check_with_retries(systemd)
    service.result.update(healthy=ok, attempts=attempts, health_message=message)
    if not ok:
        failed(failing[0], failing[1], message)


def present_units(systemd, app):
    """The app's units systemd knows of: loaded or enabled instances (<app>@<port>.*), and
    the units of its services (<app>:*) loaded, enabled or installed."""
    names = set()
    rc, out = systemd.run("list-units", "--all", "--plain", "--no-legend", app + "@*",
                          app + ":*")
    if rc == 0:
        for line in out.splitlines():
            fields = line.split()
            if fields:
                names.add(fields[0])
    for pattern in ("*.wants/" + glob.escape(app) + "@*", "*.wants/" + glob.escape(app) + ":*",
                    glob.escape(app) + ":*"):
        for path in glob.glob(os.path.join(UNITS_DIR, pattern)):
            names.add(os.path.basename(path))
    ours = re.compile(r"^%s[@:]" % re.escape(app))
    return sorted(n for n in names if ours.match(n) and UNIT_NAME.match(n))


def leftovers(present, app, bases):
    """Units to remove for a release whose services have the unit bases `bases`: when it
    has several services (`bases` not empty), the app's own units and instances; the units
    of any service (<app>:*) whose base is not in `bases`."""
    out = set(n for n in present if n.startswith(app + ":") and base_of(n) not in bases)
    if bases:
        out.update(n for n in app_units(app) if os.path.lexists(os.path.join(UNITS_DIR, n)))
        out.update(instance_names(present, app))
    return sorted(out)


def remove_units(systemd, names):
    """Stop, disable and remove units the release does not have (daemon-reload after)."""
    running = [n for n in names if "@." not in n]  # a template cannot be stopped
    systemd.run("disable", *names)
    if running:
        systemd.run("stop", *running)
    install_units({}, [], [n for n in names if os.path.lexists(os.path.join(UNITS_DIR, n))])
    if running:
        systemd.run("reset-failed", *running)


def unit_file(unit):
    name = unit if "@" not in unit else unit.split("@")[0] + "@." + unit.rsplit(".", 1)[1]
    return os.path.join(UNITS_DIR, name)


def socket_ok(states, instance):
    sock = states.get(instance.socket) or {}
    return (sock.get("ActiveState") == "active" and sock.get("UnitFileState") == "enabled"
            and not newer_than([unit_file(instance.socket)],
                               timestamp(sock.get("ActiveEnterTimestamp"))))


def fresh(states, instance, env_files):
    """The instance runs the installed units and env files (none is newer than its start)."""
    svc = states.get(instance.service) or {}
    files = [unit_file(u) for u in instance.units] + list(env_files)
    enabled = socket_ok(states, instance) if instance.socket else (
        svc.get("UnitFileState") == "enabled")
    return enabled and svc.get("ActiveState") == "active" and not newer_than(
        files, timestamp(svc.get("ExecMainStartTimestamp")))


def active(systemd, instance):
    """The health attempts' extra check: the instance's service is active."""
    def probe(_failing):
        props = systemd.show(instance.service)[instance.service]
        if props.get("ActiveState") == "active":
            return True, ""
        return False, "%s is %s" % (instance.service, describe(props))
    return probe


def restart(module, systemd, tree, instance, states, socket_ok, version, data, health, started,
            service=None, summary=None):
    """Start `instance` on the release just made current: its socket first (when it has
    one), then a restart of its service (retried once)."""
    def failed(message):
        if summary:
            summary()
        fail_start(module, systemd, tree, instance, version, data, health, started, message,
                   service=service)

    sock = states.get(instance.socket) or {}
    svc = states.get(instance.service) or {}
    if instance.socket and not socket_ok:
        if sock.get("ActiveState") == "active":
            rc, out = systemd.run("restart", instance.socket)  # unit file changed (the port)
            if rc == 0:
                rc, out = systemd.run("enable", instance.socket)
        else:
            if svc.get("ActiveState") == "active":  # it bound the port itself until now
                systemd.run("stop", instance.service)
            rc, out = systemd.run("enable", "--now", instance.socket)
        if rc != 0:
            failed("systemctl could not start %s: %s" % (instance.socket, out))
    elif not instance.socket and svc.get("UnitFileState") != "enabled":
        systemd.run("enable", instance.service)  # it starts at boot on its own
    rc, out = systemd.run("restart", instance.service)
    if rc != 0:
        systemd.run("reset-failed", *instance.units)
        rc, out = systemd.run("restart", instance.service)
    if rc != 0:
        state = describe(systemd.show(instance.service)[instance.service])
        failed("systemctl restart %s failed (%s): %s" % (instance.service, state, out))


def stop_application(module, systemd, tree, app, p, data):
    """Nothing to switch to (a first release that failed, or a rollback with no previous
    release): stop and disable the app's units (those of each of its services too), remove
    them and `current`, so no broken process keeps restarting and the host plainly runs
    nothing."""
    present = present_units(systemd, app)
    services = [n for n in present if n.startswith(app + ":")]
    # blue-green: both slots, whether or not systemd lists them
    services += [n for n in slotting.slot_units(app) if n not in services]
    files = app_units(app) + [n for n in services if n not in app_units(app)]
    names = app_units(app) + instance_names(present, app) + [
        n for n in services if "@." not in n]
    props = systemd.show(*names)
    running = any(props[u].get("ActiveState") not in (None, "", "inactive", "failed")
                  for u in names)
    installed = [n for n in files if os.path.lexists(os.path.join(UNITS_DIR, n))]
    changed = bool(running or installed or data["previous"] is not None
                   or os.path.lexists(tree.current_link) or slotting.live(tree))
    if changed and not module.check_mode:
        systemd.run("disable", "--now", *names)
        systemd.run("stop", *names)
        cancel_retire(systemd, app, *slotting.SLOTS)
        remove_path(tree.current_link)
        slotting.remove(tree)
        if installed:
            templates = [n for n in installed if n not in names]  # of services: not stoppable
            if templates:
                systemd.run("disable", *templates)
            install_units({}, [], installed)
            systemd.run("daemon-reload")
        systemd.run("reset-failed", *names)
    data.update(current=None, switched=data["previous"] is not None,
                health_message="no version to switch to: %s stopped" % app)
    if p.get("services") is not None:
        data["services"] = dict((s["name"], dict(
            restarted=False, healthy=False, attempts=0, health_message="stopped"))
            for s in p["services"])
    if not module.check_mode:
        record_release(p["release_info"], app, None)
    module.exit_json(changed=changed or bool(data["marked_bad"]), deployer=data)


def fail_start(module, systemd, tree, instance, version, data, health, started, message,
               service=None, cleanup=None):
    """Fail the switch with why: the cause systemd and the journal show, the last health
    result, and the failing instance's last journal lines. `service`: the service of
    O(services) that failed (`instance` None: one without units)."""
    props = systemd.show(instance.service)[instance.service] if instance else {}
    lines = journal(instance.service, started, secret_values(*tree.env_paths(version))) \
        if instance else []
    earlier = system_results(instance.service, started) if instance else []
    port = (health.get("http") or {}).get("port") or (health.get("tcp") or {}).get("port")
    failure = describe_failure(props, lines, message, port, earlier)
    # The new version is current and did not come up: a health failure, not a switch one.
    data.update(health_message=message if service is None else "%s: %s" % (service, message),
                failure=failure, healthy=False, stage=HEALTH if data["switched"] else SWITCH)
    where = []
    if service is not None:
        data["service"] = service
        where.append("service %s" % service)
    if instance and instance.port:
        where.append("instance on port %d" % instance.port)
    tail = " | ".join(failure["journal"][-5:])
    if cleanup is not None:
        cleanup()
    module.fail_json(
        msg="%s failed on this host%s: %s (%s)%s" % (
            version, " (%s)" % ", ".join(where) if where else "", failure["summary"], message,
            "; journal: " + tail if tail else ""),
        changed=True, deployer=data)


# --- blue-green (O(slots)) -------------------------------------------------------------------


def cancel_retire(systemd, app, *slots):
    """Stop the timers that would stop `slots` later (a switch takes the slot up again), and
    forget one that ran; one `systemctl show` when there is none."""
    names = []
    for slot in slots:
        base = slotting.retire_unit(app, slot)
        names += [base + ".timer", base + ".service"]
    found = [n for n, props in systemd.show(*names).items()
             if props.get("LoadState") not in (None, "", "not-found")]
    if found:
        systemd.run("stop", *found)
        systemd.run("reset-failed", *found)


def retire(module, systemd, app, slot, seconds, names=None):
    """Have systemd stop `slot` (or the units `names` that ran on its port) in `seconds`:
    a transient timer, gone once it has fired. Returns why it could not be started, or
    None."""
    cancel_retire(systemd, app, slot)
    run = module.get_bin_path("systemd-run", required=True)
    rc, out, err = module.run_command([
        run, "--unit=" + slotting.retire_unit(app, slot),
        "--on-active=%ds" % max(1, int(seconds)), "--timer-property=AccuracySec=1s",
        "--description=deployer: stop the %s slot of %s" % (slot, app),
        systemd.bin, "stop", *(names or [slotting.unit(app, slot)])])
    return None if rc == 0 else (err or out).strip()


def unit_stale(name, units):
    """The installed unit file `name` is not the release's."""
    return read_bytes(os.path.join(UNITS_DIR, name)) != units[name]


def switch_slots(module, systemd, tree, app, version, units, meta, data, changed):
    """Blue-green: run `version` in a slot next to the live one and make that slot live.

    The live slot already running it, healthy: nothing to do. Otherwise the other slot runs
    it (started, unless it already runs exactly this release and passes a check: a switch
    back within the keep-warm time), is health-checked on its own port, and only then
    becomes live together with `current`; the slot left is stopped `retire_after` seconds
    later by a timer. A slot that fails is stopped again, leaving the host as it was (the
    live slot untouched). Does not return."""
    p = module.params
    spec = p["slots"]
    ports = dict(blue=spec["blue"], green=spec["green"])
    health = p["health"] or {}
    live = slotting.live(tree)
    data.update(slot=live, retiring=None, started=None)
    missing = [slotting.unit(app, s) for s in slotting.SLOTS
               if slotting.unit(app, s) not in (units or {})]
    if missing:
        module.fail_json(msg="version %s has no slot units (%s): it was staged for another "
                         "strategy; deploy it again to run it blue-green"
                         % (version, ", ".join(missing)), deployer=dict(data, stage=SWITCH))

    def instance(slot):
        return Instance(slotting.unit(app, slot), None, ports[slot])

    def runs(slot):
        """(ok, message) of one check when `slot` runs `version` with the release's unit;
        None when it does not."""
        name = slotting.unit(app, slot)
        props = systemd.show(name)[name]
        if (slotting.version_of(tree, slot) != version or props.get("ActiveState") != "active"
                or unit_stale(name, units)):
            return None
        return attempt(slotting.slot_health(health, ports, slot), active(systemd, instance(slot)))

    # 1. The live slot runs it already.
    if live is not None and tree.current() == version:
        result = runs(live)
        if result and result[0]:
            other = slotting.other(live)
            name, timer = slotting.unit(app, other), slotting.retire_unit(app, other) + ".timer"
            idle = systemd.show(name, timer)
            if (idle[name].get("ActiveState") in ("active", "activating")
                    and idle[timer].get("ActiveState") != "active"):
                if not module.check_mode:  # a slot that never became live: not kept warm
                    systemd.run("disable", "--now", name)
                changed = True
            changed = mark_good(module, tree, version, meta) or changed
            data.update(healthy=True, attempts=1, health_message=result[1])
            if not module.check_mode:
                record_release(p["release_info"], app, version)
            module.exit_json(changed=changed, deployer=data)

    # 2. The other slot: started, or taken up again as it runs.
    target = slotting.other(live)
    name = slotting.unit(app, target)
    data.update(slot=target, current=version, switched=data["previous"] != version)
    if module.check_mode:
        data["health_message"] = "check mode: health not checked"
        module.exit_json(changed=True, deployer=data)
    started = time.time()
    cancel_retire(systemd, app, target)
    check = slotting.slot_health(health, ports, target)
    warm = runs(target)

    def stop_target():
        systemd.run("disable", "--now", name)
        data.update(slot=live, current=data["previous"], switched=False)

    if warm and warm[0]:
        data.update(attempts=1, health_message=warm[1])
    else:
        slotting.point(tree, target, version)
        if unit_stale(name, units):
            install_units(units, [name], [])
            rc, out = systemd.run("daemon-reload")
            if rc != 0:
                fail_start(module, systemd, tree, instance(target), version, data, check,
                           started, "systemctl daemon-reload failed: %s" % out,
                           cleanup=stop_target)
        systemd.run("reset-failed", name)
        rc, out = systemd.run("restart", name)
        if rc != 0:
            systemd.run("reset-failed", name)
            rc, out = systemd.run("restart", name)
        if rc != 0:
            state = describe(systemd.show(name)[name])
            fail_start(module, systemd, tree, instance(target), version, data, check, started,
                       "systemctl restart %s failed (%s): %s" % (name, state, out),
                       cleanup=stop_target)
        data["restarted"] = True
        healthy, attempts, message = with_retries(check, active(systemd, instance(target)))
        data.update(attempts=attempts, health_message=message)
        if not healthy:
            fail_start(module, systemd, tree, instance(target), version, data, check, started,
                       message, cleanup=stop_target)

    if spec["start_only"] and data["previous"] is not None:
        # canary: both slots run; the edge proxy weights between them (a host that ran
        # nothing before has no stable release to compare with: its slot goes live at once)
        data.update(slot=live, current=data["previous"], switched=False, started=target,
                    healthy=True)
        module.exit_json(changed=True, deployer=data)

    # 3. Live: the slot and `current` together; the slot left stops later. (Enabling and
    # disabling only changes what starts at boot: no manager reload.)
    systemd.run("enable", "--no-reload", name)
    if data["switched"]:
        point_current(tree, version)
    slotting.set_live(tree, target)
    record_release(p["release_info"], app, version)
    if live is not None:
        systemd.run("disable", "--no-reload", slotting.unit(app, live))  # runs on; not at boot
        note = retire(module, systemd, app, live, spec["retire_after"])
        data["retiring"] = live
        if note:
            data["health_message"] += "; no timer to stop the %s slot: %s" % (live, note)
    else:  # the app's units of another strategy, on the blue slot's port: stopped later
        left = [u for u in app_units(app)
                if "@." not in u and os.path.lexists(os.path.join(UNITS_DIR, u))]
        if left:
            systemd.run("disable", "--no-reload", *left)
            note = retire(module, systemd, app, "blue", spec["retire_after"], left)
            data["retiring"] = "blue"
            if note:
                data["health_message"] += "; no timer to stop %s: %s" % (", ".join(left), note)
    data["healthy"] = True
    meta = tree.read_meta(version) or meta
    meta.update(state=GOOD, switched_at=now_iso(), reason=None)
    tree.write_meta(version, meta)
    module.exit_json(changed=True, deployer=data)


if __name__ == "__main__":
    main()
