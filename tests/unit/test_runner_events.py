"""deployer.targets.ssh.runner without a playbook: folding ansible-runner events into per-host and
per-phase outcomes, and closing a reaped ansible-playbook child without waiting."""

from __future__ import annotations

import time
from typing import Any

import pexpect

from deployer.targets.ssh.runner import _close_reaped_without_delay, _Collector


def event(kind: str, play: str, host: str, task: str, res: dict[str, Any]) -> dict[str, Any]:
    return {
        "event": kind,
        "event_data": {"play": play, "host": host, "task": task, "res": res},
    }


STAGE = "Check room, upload and stage the release on every target host"
SWITCH = "Switch the batch to the new release"


def test_phases_keep_the_switch_apart_from_the_preparation() -> None:
    heard: list[str] = []
    collect = _Collector(
        progress=None,
        redact=lambda s: s,
        phases={"switch": "Switch the batch"},
        on_phase=heard.append,
    )
    collect(event("runner_on_start", STAGE, "web1", "Release | stage", {}))
    collect(
        event("runner_on_ok", STAGE, "web1", "Release | stage", {"deployer": {"current": "v1"}})
    )
    collect(
        event("runner_on_ok", STAGE, "web2", "Release | stage", {"deployer": {"current": "v1"}})
    )
    collect(event("runner_on_start", SWITCH, "web1", "Switch | go", {}))
    collect(
        event(
            "runner_on_failed",
            SWITCH,
            "web1",
            "Switch | go",
            {"msg": "unhealthy", "deployer": {"previous": "v1", "current": "v2", "switched": True}},
        )
    )

    merged = collect.outcomes()
    assert merged["web1"].failed
    assert merged["web1"].data["current"] == "v2"  # the switch's word wins in the merged view

    prepared = collect.outcomes(collect.by_phase[""])
    assert prepared["web1"].good
    assert prepared["web1"].data == {"current": "v1"}
    assert set(prepared) == {"web1", "web2"}

    switched = collect.outcomes(collect.by_phase["switch"])
    assert set(switched) == {"web1"}
    assert switched["web1"].failed
    assert switched["web1"].message == "unhealthy"
    assert switched["web1"].failed_task == "Switch | go"
    assert collect.phase_started[""] <= collect.phase_started["switch"]
    assert heard == ["", "switch"]  # each phase once, when its first task starts


def test_a_reaped_child_is_closed_without_the_kernel_wait() -> None:
    _close_reaped_without_delay()
    _close_reaped_without_delay()  # idempotent: patched once

    done = pexpect.spawn("true")
    while done.isalive():
        time.sleep(0.01)
    done.close()
    assert done.ptyproc.delayafterclose == 0
    assert done.exitstatus == 0

    running = pexpect.spawn("sleep", ["30"])
    running.close()  # not reaped: waits, then terminates it as before
    assert running.ptyproc.delayafterclose == 0.1
    assert not running.isalive()
    assert running.signalstatus is not None
