# Copyright: deployer contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The fleet's live blue-green slot, from what the hosts' steps of this run reported."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
---
name: live_slot
short_description: The one live blue-green slot of a fleet, from the hosts' results in this run
version_added: "0.5.0"
description:
  - Reads C(<result>.deployer.slot) of each host of the input (what deployer_release or
    deployer_switch reported: C(blue), C(green) or null) and returns the slot they share,
    C(blue) when none has one yet (a fleet that never ran blue-green serves on the
    service's own port, the blue slot's). Hosts without that result are left out.
  - The value selects one of the texts the controller rendered for each slot (the edge
    proxy's upstreams); it is never written anywhere itself.
  - Fails when the hosts report different slots, or anything but C(blue), C(green) or null,
    naming the hosts.
options:
  _input:
    description: Inventory names of the hosts.
    type: list
    elements: str
    required: true
  hostvars:
    description: C(hostvars).
    type: dict
    required: true
  result:
    description:
      - The registered variable to read (C(release_result), C(switch_result) or
        C(rollback_result)).
    type: str
    required: true
"""

RETURN = r"""
_value:
  description: C(blue) or C(green).
  type: str
"""

SLOTS = ("blue", "green")


def live_slot(hosts: Any, hostvars: Any, result: str) -> str:
    by_slot: dict[str, list[str]] = {}
    unknown: list[str] = []
    for host in hosts or ():
        registered = hostvars[host].get(result) if host in hostvars else None
        if not isinstance(registered, dict):
            continue
        slot = (registered.get("deployer") or {}).get("slot")
        if slot is None:
            continue
        if slot not in SLOTS:
            unknown.append(str(host))
            continue
        by_slot.setdefault(slot, []).append(str(host))
    if unknown:
        raise AnsibleFilterError(f"reported an unknown blue-green slot: {', '.join(unknown)}")
    if len(by_slot) > 1:
        detail = "; ".join(f"{slot} on {', '.join(names)}" for slot, names in by_slot.items())
        raise AnsibleFilterError(
            f"the hosts do not agree on the live blue-green slot ({detail}): the edge proxy "
            "can point at one slot only; roll back or deploy again"
        )
    return next(iter(by_slot), "blue")


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"live_slot": live_slot}
