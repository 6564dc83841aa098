# Copyright: deployer contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Controller side of deployer_accessory: run the module in one round trip (plugin_utils/lean.py).

The result's `env` holds the password on purpose (the client URL later plays hand to the
app's hosts), and a primary's `replication` its replication password (which the play
setting up its standbys hands them), so neither is masked like the rest; the roles run the
task with no_log."""

from __future__ import annotations

from ansible_collections.deployer.core.plugins.plugin_utils.lean import LeanAction


class ActionModule(LeanAction):
    MODULE = "deployer_accessory"
    UNMASKED = ("env", "replication")
