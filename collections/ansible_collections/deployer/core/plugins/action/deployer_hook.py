# Copyright: deployer contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Controller side of deployer_hook: run the module in one round trip (plugin_utils/lean.py)."""

from __future__ import annotations

from ansible_collections.deployer.core.plugins.plugin_utils.lean import LeanAction


class ActionModule(LeanAction):
    MODULE = "deployer_hook"
