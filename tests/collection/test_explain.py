"""The failure explanation the switch gives when a service does not come up: one cause per
common failure, from what systemd and the journal say (no lab: the inputs are what a host
reports)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "collections"))

from ansible_collections.deployer.core.plugins.module_utils import explain

FAILED = {"ActiveState": "failed", "Result": "exit-code", "ExecMainStatus": "1", "NRestarts": "0"}


def test_a_port_in_use_names_the_process_that_holds_it() -> None:
    lines = ["Traceback (most recent call last):", "OSError: [Errno 98] Address already in use"]
    cause, summary = explain.explain(FAILED, lines, port=8080, holders=["python3 (pid 77)"])
    assert cause == "port_in_use"
    assert summary == (
        "the app could not bind port 8080: address already in use (held by python3 (pid 77))"
    )


def test_the_holder_of_a_real_port_is_found() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        holders = explain.port_holders(port)
    if not holders:
        pytest.skip("ss cannot see process names here")
    assert any(h.endswith(f"(pid {os.getpid()})") for h in holders)


def test_a_holder_root_cannot_see_is_named_by_its_user_and_unit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    line = (
        "LISTEN 0 128 0.0.0.0:8080 0.0.0.0:* uid:0 ino:4158712 sk:5d "
        "cgroup:/docker/3539e7/system.slice/ssh.service <->\n"
    )
    monkeypatch.setattr(explain, "_run", lambda argv, timeout=5: line)
    assert explain.port_holders(8080) == ["a process of user root (uid 0) in ssh.service"]
    seen = 'LISTEN 0 128 *:8080 *:* users:(("nginx",pid=41,fd=6)) uid:0 ino:1 sk:2\n'
    monkeypatch.setattr(explain, "_run", lambda argv, timeout=5: seen)
    assert explain.port_holders(8080) == ["nginx (pid 41)"]


@pytest.mark.parametrize(
    ("props", "lines", "cause", "words"),
    [
        (
            {"ActiveState": "failed", "Result": "exit-code", "ExecMainStatus": "203"},
            ["hello.service: Failed to locate executable /usr/bin/nope: No such file"],
            "no_command",
            "could not execute the command",
        ),
        (
            {"ActiveState": "failed", "Result": "oom-kill", "ExecMainStatus": "9"},
            [],
            "oom",
            "out of memory",
        ),
        (
            {"ActiveState": "activating", "Result": "exit-code", "ExecMainStatus": "3",
             "NRestarts": "4"},
            ["ValueError: no config"],
            "exit",
            "exited with code 3, restarted 4 times",
        ),
        (
            {"ActiveState": "failed", "Result": "core-dump", "ExecMainStatus": "11"},
            [],
            "signal",
            "killed by signal 11 (core dumped)",
        ),
        ({"ActiveState": "active", "Result": "success"}, [], "unhealthy", "did not pass"),
    ],
)  # fmt: skip
def test_each_common_cause(props: dict[str, str], lines: list[str], cause: str, words: str) -> None:
    found, summary = explain.explain(props, lines)
    assert found == cause
    assert words in summary


def test_an_exit_soon_after_the_start_is_a_crash_on_start_and_a_late_one_is_not() -> None:
    props = {
        "ActiveState": "activating",
        "Result": "exit-code",
        "ExecMainStatus": "1",
        "NRestarts": "2",
        "ExecMainStartTimestamp": "Fri 2026-12-04 05:00:00.100000 UTC",
        "ExecMainExitTimestamp": "Fri 2026-12-04 05:00:00.400000 UTC",
    }
    assert explain.explain(props, []) == (
        "crashed",
        "crashed on start: exited with code 1 0.3s after it started, restarted 2 times",
    )
    late = dict(props, ExecMainExitTimestamp="Fri 2026-12-04 05:01:00.400000 UTC")
    assert explain.explain(late, []) == ("exit", "exited with code 1, restarted 2 times")


def test_a_sigkill_under_a_memory_limit_is_most_likely_out_of_memory() -> None:
    props = {"ActiveState": "failed", "Result": "signal", "ExecMainStatus": "9"}
    assert explain.explain(props, [])[0] == "signal"  # no limit: someone's kill -9
    cause, summary = explain.explain(dict(props, MemoryMax="67108864"), [])
    assert cause == "oom"
    assert "MemoryMax=64M: most likely out of memory" in summary
    assert explain.explain(dict(props, MemoryMax="infinity"), [])[0] == "signal"


def test_a_timed_out_check_is_said_so() -> None:
    props = {"ActiveState": "active", "Result": "success"}
    assert explain.explain(props, [], "HTTP GET http://x/ timed out after 2s")[0] == "timeout"


def test_an_app_that_prints_no_such_file_while_running_is_not_a_missing_command() -> None:
    props = {"ActiveState": "active", "Result": "success"}
    lines = ["open('data.json'): No such file or directory"]
    assert explain.explain(props, lines)[0] == "unhealthy"


def test_the_accessories_env_files_are_masked_in_a_failure_report_too(tmp_path: Path) -> None:
    from ansible_collections.deployer.core.plugins.module_utils.layout import Tree

    meta = tmp_path / "releases" / "v1" / ".deployer"
    meta.mkdir(parents=True)
    (meta / "env").write_text(
        f'{explain.SECRET_NAMES_COMMENT}API_TOKEN\nAPI_TOKEN="token-value-1"\n'
    )
    (meta / "env.database").write_text(
        f"{explain.SECRET_NAMES_COMMENT}DATABASE_URL\n"
        'DATABASE_URL="postgresql://shop:pw-canary-2@10.0.0.20:5432/shop"\n'
    )
    paths = Tree(str(tmp_path)).env_paths("v1")
    assert [Path(p).name for p in paths] == ["env", "env.database"]
    lines = explain.masked(
        ["connect postgresql://shop:pw-canary-2@10.0.0.20:5432/shop as token-value-1"],
        explain.secret_values(*paths),
    )
    assert "pw-canary-2" not in lines[0]
    assert "token-value-1" not in lines[0]


def test_a_run_killed_for_memory_before_the_restart_now_running_is_still_the_cause(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # systemd resets Result when it starts the unit again: the run being looked at is up
    # (allocating), and only the journal of PID 1 remembers why the one before it died
    running = {"ActiveState": "active", "Result": "success", "ExecMainStatus": "0",
               "NRestarts": "2"}  # fmt: skip
    said = "\n".join(
        [
            "Started t1.service - t1.",
            "t1.service: A process of this unit has been killed by the OOM killer.",
            "t1.service: Main process exited, code=killed, status=9/KILL",
            "t1.service: Failed with result 'oom-kill'.",
            "t1.service: Scheduled restart job, restart counter is at 2.",
        ]
    )
    seen: list[list[str]] = []
    monkeypatch.setattr(explain, "_run", lambda argv, timeout=5: seen.append(argv) or said)
    earlier = explain.system_results("t1.service", 1700000000)
    assert earlier == ["sigkill", "oom-kill"]
    assert seen[0][seen[0].index("-q") + 1 :][:2] == ["_PID=1", "UNIT=t1.service"]
    cause, summary = explain.explain(running, [], "connection refused", earlier=earlier)
    assert cause == "oom"
    assert summary == "killed by the kernel for memory (out of memory), restarted 2 times"
    assert explain.explain(running, [], "connection refused")[0] == "unhealthy"


def test_an_earlier_run_killed_with_sigkill_under_memory_max_is_most_likely_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # in containers systemd tells an OOM kill as 'signal' (status 9), as the lab shows
    running = {"ActiveState": "active", "Result": "success", "ExecMainStatus": "0",
               "NRestarts": "3", "MemoryMax": str(64 << 20)}  # fmt: skip
    said = "\n".join(
        [
            "t1.service: Main process exited, code=killed, status=9/KILL",
            "t1.service: Failed with result 'signal'.",
            "Started t1.service - t1.",
        ]
    )
    monkeypatch.setattr(explain, "_run", lambda argv, timeout=5: said)
    earlier = explain.system_results("t1.service", 1700000000)
    assert earlier == ["sigkill", "signal"]
    cause, summary = explain.explain(running, [], "connection refused", earlier=earlier)
    assert cause == "oom"
    assert summary.startswith("killed with SIGKILL while limited to MemoryMax=64M")
    without_limit = {k: v for k, v in running.items() if k != "MemoryMax"}
    assert explain.explain(without_limit, [], "refused", earlier=earlier)[0] == "unhealthy"
