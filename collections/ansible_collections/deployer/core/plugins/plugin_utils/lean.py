# Copyright: deployer contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Run deployer's modules in one round trip each, without AnsiballZ.

A module run the usual way costs, per host: building and base64-wrapping the AnsiballZ zip,
unpacking it on the host, and importing ansible.module_utils.basic there (about 130 ms of CPU
per execution, most of a module round on a small machine). deployer's modules need none of
that: their host code is stdlib only. The lean runner

- validates the task's arguments on the controller with Ansible's own ArgumentSpecValidator
  and the module's MODULE_SPEC (same rules, same messages, defaults applied), and masks
  no_log values in the result as AnsibleModule does;
- sends lean_host.py, the collection's module_utils sources, the parameters and (for
  deployer_release) the tarball itself on the stdin of one `python3 -c` over the task's
  connection, with become applied as for any module;
- runs the module's own source, unchanged, with a stand-in AnsibleModule.

It needs pipelining (the stdin stream) and a known interpreter. Without them, or for async
tasks, it falls back to the usual module execution, which also discovers the interpreter
for the next task.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import shlex

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.errors import UnsupportedError
from ansible.module_utils.json_utils import _filter_non_json_lines
from ansible.plugins.action import ActionBase

PACKAGE = "ansible_collections.deployer.core.plugins"
_UTILS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "module_utils")
_HOST_RUNTIME = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lean_host.py")
# reads the runtime (length-prefixed) from stdin and runs it; the rest of stdin is its input
LOADER = ("import sys;b=sys.stdin.buffer;"
          "exec(b.read(int(b.readline())),{'__name__':'__deployer_lean__'})")


@functools.lru_cache(maxsize=None)
def _text(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


@functools.lru_cache(maxsize=None)
def module_utils_sources():
    """{dotted name: source} of every module_utils file of the collection."""
    return {
        "%s.module_utils.%s" % (PACKAGE, name[:-3]): _text(os.path.join(_UTILS_DIR, name))
        for name in sorted(os.listdir(_UTILS_DIR))
        if name.endswith(".py") and not name.startswith("_")
    }


def host_runtime():
    return _text(_HOST_RUNTIME).encode("utf-8")


def split_paths(spec, prefix=()):
    """The spec with type=path turned into str (expanding ~ and $VARS belongs on the host,
    not here), and the key paths of those options, for the host to expand."""
    plain, paths = {}, []
    for name, option in spec.items():
        option = dict(option)
        if option.get("type") == "path":
            option["type"] = "str"
            paths.append(list(prefix) + [name])
        if option.get("options") and option.get("type", "str") == "dict":
            option["options"], inner = split_paths(option["options"], tuple(prefix) + (name,))
            paths.extend(inner)
        plain[name] = option
    return plain, paths


@functools.lru_cache(maxsize=None)
def module_spec(module):
    """(module source, argument spec with paths as str, path keys, other validation rules,
    supports check mode) of a deployer module, from its MODULE_SPEC."""
    loaded = importlib.import_module("%s.modules.%s" % (PACKAGE, module))
    rules = dict(loaded.MODULE_SPEC)
    spec, paths = split_paths(rules.pop("argument_spec"))
    check = bool(rules.pop("supports_check_mode", False))
    return _text(loaded.__file__), spec, paths, rules, check


def frame(*blocks):
    """Length-prefixed blocks, as lean_host.py reads them."""
    return b"".join(b"%d\n%s" % (len(block), block) for block in blocks)


class LeanAction(ActionBase):
    """Action plugin base: runs MODULE (a deployer module) the lean way when it can."""

    MODULE = ""
    TRANSFERS_FILES = False
    # Result keys that carry a secret on purpose (a task the roles run with no_log): left
    # unmasked by the no_log values of the arguments, as the module itself leaves them.
    UNMASKED = ()

    @property
    def fqcn(self):
        return "deployer.core." + self.MODULE

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        result.update(self.run_module(dict(self._task.args), task_vars or {}))
        return result

    def lean_interpreter(self, task_vars):
        """The host's Python when the lean way is possible, else None."""
        if self._task.async_val or not self._is_pipelining_enabled("new"):
            return None
        host_vars = task_vars
        if self._task.delegate_to:
            delegated = task_vars.get("ansible_delegated_vars") or {}
            host_vars = delegated.get(self._task.delegate_to) or {}
        value = self._templar.template(host_vars.get("ansible_python_interpreter") or "")
        if not isinstance(value, str) or not value or value.startswith("auto"):
            # "auto*" (the default): what an earlier module run on this host discovered
            value = (host_vars.get("ansible_facts") or {}).get("discovered_interpreter_python")
        if not isinstance(value, str) or not value:
            return None
        return value

    def run_module(self, args, task_vars, archive=None):
        """The module's result. `archive`: tarball bytes streamed as the module's archive
        (only when lean_interpreter() said yes)."""
        interpreter = self.lean_interpreter(task_vars)
        if interpreter is None:
            return self._execute_module(module_name=self.fqcn, module_args=args,
                                        task_vars=task_vars)
        source, spec, paths, rules, supports_check = module_spec(self.MODULE)
        checked = ArgumentSpecValidator(spec, **rules).validate(args)
        if checked.error_messages:
            return {"failed": True, "msg": self._validation_message(checked)}
        params = checked.validated_parameters
        if self._task.check_mode and not supports_check:
            return {"skipped": True, "msg": "remote module does not support check mode"}
        payload = json.dumps(dict(
            module=self.MODULE, source=source, sources=module_utils_sources(), params=params,
            paths=paths, check=bool(self._task.check_mode), archive=archive is not None,
        ), default=str).encode("utf-8")
        command = "%s -I -S -c %s" % (shlex.quote(interpreter), shlex.quote(LOADER))
        environment = self._compute_environment_string()
        if environment:
            command = "%s %s" % (environment, command)
        stream = frame(host_runtime(), payload) + (archive or b"")
        res = self._low_level_execute_command(command, sudoable=True, in_data=stream)
        result = self._parse(res)
        kept = {} if result.get("failed") else {
            key: result[key] for key in self.UNMASKED if key in result}
        result = remove_values(result, checked._no_log_values)
        result.update(kept)
        return result

    def _validation_message(self, checked):
        messages = []
        for error in checked.errors.errors:
            text = str(error.args[0]) if error.args else str(error)
            if isinstance(error, UnsupportedError):
                text = "Unsupported parameters for (%s) module: %s" % (self.fqcn, text)
            messages.append(text)
        return "; ".join(messages)

    @staticmethod
    def _parse(res):
        stdout = res.get("stdout") or ""
        try:
            data = json.loads(_filter_non_json_lines(stdout, objects_only=True)[0])
            if not isinstance(data, dict):
                raise ValueError("not an object")
        except ValueError:
            return {
                "failed": True,
                "msg": "MODULE FAILURE: no result (rc %s)" % res.get("rc"),
                "rc": res.get("rc"),
                "module_stdout": stdout,
                "module_stderr": res.get("stderr") or "",
            }
        if res.get("rc") and not data.get("failed"):
            data.update(failed=True, rc=res.get("rc"))
        data.setdefault("changed", False)
        return data
