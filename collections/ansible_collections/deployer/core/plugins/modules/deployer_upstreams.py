#!/usr/bin/python
# Copyright: deployer contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Replace an nginx upstreams file, check the configuration and reload, in one step."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deployer_upstreams
short_description: Replace an edge proxy's upstreams file and have nginx serve with it before returning
version_added: "0.2.0"
description:
  - Writes O(content) to O(path) (root, 0644, atomically) when it differs, checks the whole
    configuration with C(nginx -t), reloads nginx and waits until every worker process that
    served before the reload has stopped taking new requests (nginx reloads asynchronously,
    C(systemctl reload) returns at once). So when the task returns, a backend the new file
    marks C(down) (drained) gets no new request, and one it puts back does.
  - On any failure the previous file is put back (or the new one removed) and reloaded when
    nginx runs and the restored configuration passes its check; the task fails with
    nginx's own message and C(deployer.stage) C(proxy).
  - Unchanged content changes nothing (no reload). One remote step either way.
options:
  path:
    description: The upstreams file; an absolute path under C(/etc/nginx/) whose directory exists.
    type: path
    required: true
  content:
    description: The whole file, rendered by the controller.
    type: str
    required: true
  timeout:
    description: Seconds to wait for the old workers.
    type: float
    default: 10
author:
  - deployer contributors
notes:
  - Supports check mode (reports whether the file would change).
"""

EXAMPLES = r"""
- name: Drain web1 from the edge proxy
  deployer.core.deployer_upstreams:
    path: /etc/nginx/deployer/shop-production/upstreams.conf
    content: "{{ drained_text }}"
"""

RETURN = r"""
deployer:
  description: What was done.
  returned: always
  type: dict
  contains:
    reloaded:
      description: nginx reloaded with the new file.
      type: bool
    waited:
      description: Seconds spent waiting for the old workers.
      type: float
    stage:
      description: C(proxy), on failure.
      type: str
      returned: on failure
"""

import os
import re
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.deployer.core.plugins.module_utils.layout import (
    read_bytes,
    remove_path,
    write_atomic,
)

PROXY = "proxy"
WORKER = "nginx: worker process"
_PATH = re.compile(r"^/etc/nginx/[A-Za-z0-9._@+-][A-Za-z0-9._/@+-]*$")

MODULE_SPEC = dict(
    argument_spec=dict(
        path=dict(type="path", required=True),
        content=dict(type="str", required=True),
        timeout=dict(type="float", default=10),
    ),
    supports_check_mode=True,
)


def serving_workers(module, systemctl):
    """PIDs of nginx's worker processes that still take requests."""
    rc, out, _err = module.run_command([systemctl, "show", "-P", "MainPID", "nginx"])
    master = out.strip() if rc == 0 else ""
    if not master.isdigit() or master == "0":
        return set()
    pids = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as handle:
                parent = handle.read().rsplit(")", 1)[1].split()[1]
            with open("/proc/%s/cmdline" % name, "rb") as handle:
                title = handle.read().replace(b"\0", b"").decode("utf-8", "replace")
        except (OSError, IndexError):
            continue
        if parent == master and title == WORKER:
            pids.add(name)
    return pids


def main():
    module = AnsibleModule(**MODULE_SPEC)
    path, timeout = module.params["path"], module.params["timeout"]
    data = module.params["content"].encode("utf-8")
    data = data if data.endswith(b"\n") else data + b"\n"
    result = dict(reloaded=False, waited=0.0)
    if not _PATH.match(path) or "/../" in path or "/./" in path:
        module.fail_json(msg="%s: not a path under /etc/nginx/" % path,
                         deployer=dict(result, stage=PROXY))
    before = read_bytes(path)
    if before == data:
        module.exit_json(changed=False, deployer=result)
    if module.check_mode:
        module.exit_json(changed=True, deployer=result)
    nginx = module.get_bin_path("nginx", required=True)
    systemctl = module.get_bin_path("systemctl", required=True)

    def fail(message):
        if before is None:
            remove_path(path)
        else:
            write_atomic(path, before, 0o644, 0, 0)
        rc, _out, _err = module.run_command([nginx, "-t", "-q"])
        active, _o, _e = module.run_command([systemctl, "-q", "is-active", "nginx"])
        if rc == 0 and active == 0:
            module.run_command([systemctl, "reload", "nginx"])
        module.fail_json(msg=message, changed=True, deployer=dict(result, stage=PROXY))

    write_atomic(path, data, 0o644, 0, 0)
    rc, out, err = module.run_command([nginx, "-t", "-q"])
    if rc != 0:
        fail("nginx refused the configuration with the new upstreams: %s"
             % (err or out).strip())
    old = serving_workers(module, systemctl)
    rc, out, err = module.run_command([systemctl, "reload", "nginx"])
    if rc != 0:
        fail("systemctl reload nginx failed: %s" % (err or out).strip())
    started = time.time()
    while old & serving_workers(module, systemctl):
        if time.time() - started > timeout:
            fail("nginx did not take up the new upstreams within %g s" % timeout)
        time.sleep(0.05)
    result.update(reloaded=True, waited=round(time.time() - started, 3))
    module.exit_json(changed=True, deployer=result)


if __name__ == "__main__":
    main()
