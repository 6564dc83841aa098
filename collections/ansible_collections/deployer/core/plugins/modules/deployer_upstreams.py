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

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.deployer.core.plugins.module_utils.nginx import (
    Nginx,
    NginxError,
    bad_path,
)

PROXY = "proxy"

MODULE_SPEC = dict(
    argument_spec=dict(
        path=dict(type="path", required=True),
        content=dict(type="str", required=True),
        timeout=dict(type="float", default=10),
    ),
    supports_check_mode=True,
)


def main():
    module = AnsibleModule(**MODULE_SPEC)
    path, timeout = module.params["path"], module.params["timeout"]
    result = dict(reloaded=False, waited=0.0)
    if bad_path(path):
        module.fail_json(msg=bad_path(path), deployer=dict(result, stage=PROXY))
    nginx = Nginx(module)
    if not nginx.write(path, module.params["content"]):
        module.exit_json(changed=False, deployer=result)
    if module.check_mode:
        module.exit_json(changed=True, deployer=result)
    try:
        nginx.test("the new upstreams")
        result.update(reloaded=True, waited=nginx.serve(timeout))
    except NginxError as error:
        nginx.restore()
        module.fail_json(msg=str(error), changed=True, deployer=dict(result, stage=PROXY))
    module.exit_json(changed=True, deployer=result)


if __name__ == "__main__":
    main()
