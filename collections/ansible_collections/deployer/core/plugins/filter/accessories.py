# Copyright: deployer contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Filters for the accessories' credentials inside one playbook run."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
---
name: accessory_env_files
short_description: The env files a release gets from the accessories its services use
version_added: "0.4.0"
description:
  - For each accessory kind in the input (C(database), C(cache)), the C(env) that the
    accessory's set-up step registered on its host in this run (C(postgresql_result) or
    C(redis_result)), as C({kind: {VARIABLE: value}}): deployer_release writes each as
    C(.deployer/env.<kind>).
  - Fails when an accessory's host registered no result, so a release is never staged
    without the credentials its services need.
options:
  _input:
    description: Accessory kinds the host's services use.
    type: list
    elements: str
    required: true
  accessories:
    description: C(deployer_accessories) (kind -> {host, args}).
    type: dict
    required: true
  hostvars:
    description: C(hostvars).
    type: dict
    required: true
"""

RETURN = r"""
_value:
  description: C({kind: {VARIABLE: value}}).
  type: dict
"""

RESULT_VAR = {"postgresql": "postgresql_result", "redis": "redis_result"}


def accessory_env_files(kinds: Any, accessories: Any, hostvars: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in kinds or ():
        spec = accessories.get(kind)
        if not spec:
            raise AnsibleFilterError(f"accessory {kind!r} is not set up in this run")
        engine = spec["args"]["kind"]
        result = hostvars[spec["host"]].get(RESULT_VAR[engine]) or {}
        env = result.get("env")
        if not env:
            raise AnsibleFilterError(
                f"the {kind} on {spec['host']} reported no credentials: it was not set up"
            )
        out[kind] = dict(env)
    return out


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"accessory_env_files": accessory_env_files}
