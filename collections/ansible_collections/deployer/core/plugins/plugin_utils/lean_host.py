# Copyright: deployer contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Host side of the lean module runner (see lean.py): stdlib only, sent over stdin.

The controller starts `python3 -c LOADER` over the task's connection and writes to its stdin:

    <length of this file>\\n<this file>
    <length of the payload>\\n<payload: JSON {module, sources, params, paths, check, archive}>
    [the release tarball, when payload.archive is true]

This file puts the collection's module_utils (payload.sources) behind an import hook, stands in
for ansible.module_utils.basic.AnsibleModule with the few methods deployer's modules use, and runs
the module's source as __main__. Parameters arrive validated by the controller (Ansible's own
ArgumentSpecValidator, defaults applied), so nothing here parses or checks them again. The module
prints its one JSON result and exits, exactly as under AnsiballZ.
"""

import json
import os
import shutil
import subprocess
import sys
import types
from importlib.machinery import ModuleSpec

BASIC = "ansible.module_utils.basic"
_WARNINGS = []


def _emit(result, code):
    if _WARNINGS:
        result.setdefault("warnings", []).extend(_WARNINGS)
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()
    sys.exit(code)


class AnsibleModule(object):
    """The subset of AnsibleModule that deployer's modules call."""

    params = {}
    check = False

    def __init__(self, argument_spec=None, supports_check_mode=False, **_rules):
        self.params = AnsibleModule.params
        self.check_mode = AnsibleModule.check
        if self.check_mode and not supports_check_mode:
            _emit({"skipped": True, "msg": "remote module does not support check mode"}, 0)

    def exit_json(self, **result):
        result.setdefault("changed", False)
        _emit(result, 0)

    def fail_json(self, msg, **result):
        result.update(failed=True, msg=msg)
        _emit(result, 1)

    def warn(self, warning):
        _WARNINGS.append(warning)

    def get_bin_path(self, name, required=False, opt_dirs=None):
        dirs = list(opt_dirs or []) + os.environ.get("PATH", "").split(os.pathsep)
        dirs += ["/sbin", "/usr/sbin", "/usr/local/sbin"]
        found = shutil.which(name, path=os.pathsep.join(d for d in dirs if d))
        if required and not found:
            self.fail_json(msg="Failed to find required executable %s in paths: %s"
                           % (name, os.pathsep.join(dirs)))
        return found

    def run_command(self, args, check_rc=False, data=None, cwd=None, environ_update=None,
                    **_options):
        if isinstance(args, str):
            import shlex
            args = shlex.split(args)
        env = dict(os.environ, LANG="C", LC_ALL="C", LC_MESSAGES="C")
        env.update(environ_update or {})
        # never our own stdin: it is the controller's stream
        feed = {"stdin": subprocess.DEVNULL}
        if data is not None:
            feed = {"input": data if isinstance(data, bytes) else data.encode("utf-8")}
        try:
            proc = subprocess.run([str(a) for a in args], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, cwd=cwd, env=env, **feed)
        except OSError as exc:
            if check_rc:
                self.fail_json(msg=str(exc), cmd=" ".join(str(a) for a in args), rc=2)
            return 2, "", str(exc)
        out = proc.stdout.decode("utf-8", "replace")
        err = proc.stderr.decode("utf-8", "replace")
        if check_rc and proc.returncode != 0:
            self.fail_json(msg=err.strip() or out.strip(), rc=proc.returncode, stdout=out,
                           stderr=err, cmd=" ".join(str(a) for a in args))
        return proc.returncode, out, err


class _Sources(object):
    """Import hook serving the module_utils sources the controller sent."""

    def __init__(self, sources):
        self.sources = sources
        self.packages = set()
        for name in sources:
            parts = name.split(".")
            self.packages.update(".".join(parts[:i]) for i in range(1, len(parts)))

    def find_spec(self, name, path=None, target=None):
        if name in self.sources or name in self.packages:
            return ModuleSpec(name, self, is_package=name in self.packages)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        source = self.sources.get(module.__name__)
        if source is not None:
            exec(compile(source, module.__name__.replace(".", "/") + ".py", "exec"),
                 module.__dict__)


def _expand(params, paths):
    """type=path options: expanded here, on the host, as AnsibleModule would."""
    for keys in paths:
        parent = params
        for key in keys[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and isinstance(parent.get(keys[-1]), str):
            parent[keys[-1]] = os.path.expanduser(os.path.expandvars(parent[keys[-1]]))


def _read_block(stream):
    size = int(stream.readline())
    return stream.read(size)


def _archive(stream, params):
    """The rest of stdin is the release tarball: into a private file next to the releases
    (the same filesystem, so a full disk shows here as it would while unpacking)."""
    import tempfile  # here: only a release needs it (each import costs CPU on every host)

    base = params.get("deploy_to") or ""
    fd, path = tempfile.mkstemp(prefix=".deployer-upload-", suffix=".tar.gz",
                                dir=base if os.path.isdir(base) else None)
    try:
        with os.fdopen(fd, "wb") as handle:
            shutil.copyfileobj(stream, handle, 1 << 20)
    except BaseException as exc:
        os.unlink(path)
        current = None
        try:  # what the host runs, as the module would have said
            from ansible_collections.deployer.core.plugins.module_utils.layout import Tree
            current = Tree(base).current()
        except Exception:
            pass
        _emit({"failed": True, "msg": "receiving the release tarball failed: %s" % exc,
               "deployer": {"version": params.get("version"), "current": current,
                            "stage": "upload"}}, 1)
    return path


def main(stream):
    payload = json.loads(_read_block(stream))
    params = payload["params"]
    _expand(params, payload.get("paths") or [])
    basic = types.ModuleType(BASIC)
    basic.AnsibleModule = AnsibleModule
    sys.modules[BASIC] = basic
    sys.meta_path.insert(0, _Sources(payload.get("sources") or {}))
    if payload.get("archive"):
        params["archive"] = _archive(stream, params)
    AnsibleModule.params = params
    AnsibleModule.check = bool(payload.get("check"))
    name = payload["module"]
    code = compile(payload["source"], name + ".py", "exec")
    try:
        exec(code, {"__name__": "__main__", "__file__": name + ".py"})
    except SystemExit:
        raise
    except BaseException as exc:
        import traceback

        if payload.get("archive") and os.path.exists(params["archive"]):
            os.unlink(params["archive"])
        _emit({"failed": True, "msg": "MODULE FAILURE: %s: %s" % (type(exc).__name__, exc),
               "exception": traceback.format_exc()}, 1)
    _emit({"failed": True, "msg": "MODULE FAILURE: %s returned no result" % name}, 1)


if __name__ == "__deployer_lean__":
    main(sys.stdin.buffer)
