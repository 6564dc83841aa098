# Copyright: deployer contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Controller side of deployer_release: upload the tarball and stage it in one task.

With `src` (a controller path) and the lean runner available (plugin_utils/lean.py), a
tarball of up to STREAM_LIMIT bytes travels on the stdin of the very command that stages it:
one SSH round trip per host carries the code, the parameters and the bytes. A bigger tarball
(or no pipelining) is sent into a private temporary directory of the login user (one mkdir,
one sftp/scp put, no Python on the host), the module runs with `archive` pointing at it, and
the directory is removed afterwards.

Before uploading it reads the version's meta.json on the host with one plain command (no
Python): a host that already stores this version with this sha256, not marked bad, gets no
upload, so deploying a version again moves no bytes.

It also hands the module `env` and `env_files` as one JSON string each (see _run()).

A failed result always carries `deployer.stage` (see the module's RETURN): the module's own,
`upload` when the tarball could not be found or sent, `stage` for a failure that has no
module result (arguments refused on the controller, a module that died without one).
"""

from __future__ import annotations

import json
import os
import shlex

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase
from ansible_collections.deployer.core.plugins.module_utils.layout import BAD, Tree
from ansible_collections.deployer.core.plugins.plugin_utils.lean import LeanAction

# Streamed tarballs are read into memory, once per host being served: bounded.
STREAM_LIMIT = 8 * 1024 * 1024


class ActionModule(LeanAction):
    # False: no temporary directory up front (pipelining needs none); one is made only
    # when there is a tarball to send the slow way.
    TRANSFERS_FILES = False
    MODULE = "deployer_release"

    def run(self, tmp=None, task_vars=None):
        result = self._run(tmp, task_vars)
        if result.get("failed"):
            deployer = result.get("deployer")
            if not isinstance(deployer, dict):
                deployer = result["deployer"] = {}
            deployer.setdefault("stage", "stage")
        return result

    def _run(self, tmp, task_vars):
        result = ActionBase.run(self, tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        args = dict(self._task.args)
        src = args.pop("src", None)
        for option in ("env", "env_files"):
            if isinstance(args.get(option), dict):
                # One opaque no_log string instead of a dict: AnsibleModule masks every no_log
                # value wherever it appears in the result, so a dict with a value like "1" or
                # "hello" would turn "/srv/hello/releases/v1" into
                # "/srv/********/releases/v********".
                args[option] = json.dumps(args[option], sort_keys=True)
        if not src or args.get("archive") or self._task.check_mode:
            result.update(self.run_module(args, task_vars))
            return result
        stored = self._stored(args)
        sha = str(args.get("sha256") or "").lower()
        if stored is not None and (
            stored.get("state") == BAD or (sha and str(stored.get("sha256") or "").lower() == sha)
        ):
            # Nothing to send: the host has this build, or has it marked bad, which the
            # module refuses (with what the host runs) before anything is uploaded.
            result.update(self.run_module(args, task_vars))
            result.setdefault("deployer", {})["upload_skipped"] = True
            return result
        try:
            source = self._loader.get_real_file(self._find_needle("files", src), decrypt=False)
        except AnsibleError as exc:
            result.update(failed=True, msg="release tarball %s not found on the controller: %s"
                          % (src, exc), deployer={"version": args.get("version"),
                                                  "stage": "upload"})
            return result
        if self.lean_interpreter(task_vars) and os.path.getsize(source) <= STREAM_LIMIT:
            with open(source, "rb") as handle:
                result.update(self.run_module(args, task_vars, archive=handle.read()))
            return result
        remote_tmp = self._make_tmp_path()
        try:
            remote = self._connection._shell.join_path(remote_tmp, os.path.basename(source))
            try:
                self._transfer_file(source, remote)
                self._fixup_perms2((remote_tmp, remote), execute=False)
            except AnsibleError as exc:
                result.update(failed=True, msg="uploading %s failed: %s" % (src, exc),
                              deployer={"version": args.get("version"), "stage": "upload"})
                return result
            args["archive"] = remote
            result.update(self.run_module(args, task_vars))
        finally:
            self._remove_tmp_path(remote_tmp, force=True)
        return result

    def _stored(self, args):
        """The host's meta.json of this version (one plain command), or None."""
        try:
            meta_path = Tree(str(args["deploy_to"])).meta_path(str(args["version"]))
        except KeyError:
            return None
        res = self._low_level_execute_command("cat " + shlex.quote(meta_path), sudoable=True)
        if res.get("rc") != 0:
            return None
        try:
            meta = json.loads(res.get("stdout") or "")
        except ValueError:
            return None
        return meta if isinstance(meta, dict) else None
