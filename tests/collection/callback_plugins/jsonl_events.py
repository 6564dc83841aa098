"""Append one JSON line per task result to $DEPLOYER_TEST_EVENTS (tests only).

Results reach callbacks already censored for no_log tasks, so this sees what
ansible-runner's event stream would see: the tests assert on it and check that no
secret ever shows up in it.
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: jsonl_events
type: aggregate
short_description: write task results as JSON lines (deployer tests)
description: >-
  Appends {host, task, action, role, status, time, result} per task result
  and a start record per task (deployer tests). to $DEPLOYER_TEST_EVENTS.
requirements: [DEPLOYER_TEST_EVENTS set in the environment]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "jsonl_events"
    CALLBACK_NEEDS_ENABLED = True

    def _write(self, status: str, result: object) -> None:
        path = os.environ.get("DEPLOYER_TEST_EVENTS")
        if not path:
            return
        task = getattr(result, "task", None) or result._task
        host = getattr(result, "host", None) or result._host
        data = getattr(result, "result", None)
        if data is None:
            data = result._result
        role = getattr(task, "_role", None)
        line = {
            "host": host.get_name(),
            "task": task.get_name(),
            "action": task.action,
            "role": role.get_name() if role else None,
            "status": status,
            "time": time.time(),
            "result": data,
        }
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line, default=str) + "\n")

    def v2_playbook_on_task_start(self, task: object, is_conditional: bool) -> None:
        path = os.environ.get("DEPLOYER_TEST_EVENTS")
        if path:
            with open(path, "a", encoding="utf-8") as handle:
                start = {"task": task.get_name(), "status": "start", "time": time.time()}
                handle.write(json.dumps(start) + "\n")

    def v2_runner_on_ok(self, result: object) -> None:
        self._write("ok", result)

    def v2_runner_on_failed(self, result: object, ignore_errors: bool = False) -> None:
        self._write("failed", result)

    def v2_runner_on_unreachable(self, result: object) -> None:
        self._write("unreachable", result)

    def v2_runner_on_skipped(self, result: object) -> None:
        self._write("skipped", result)
