"""Reading a lab host's own SSH keys through `docker exec`: under load docker can return an
exec's output empty or cut short although the command succeeded. Such a read must be
retried, never turned into a known_hosts file that lacks the host."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from deployer.lab.containers import HOST_KEY_FILES, host_keys
from deployer.lab.model import LabError

KEYS = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeButWellFormed root@lab1",
    "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTY= root@lab1",
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 root@lab1",
]


@dataclass
class Exec:
    exit_code: int
    output: bytes


@dataclass
class Container:
    """Answers exec_run with the given results in turn (the last one repeats)."""

    answers: list[Exec]
    name: str = "deployer-test-1"
    calls: list[Any] = field(default_factory=list)

    def exec_run(self, cmd: Any) -> Exec:
        self.calls.append(cmd)
        return self.answers[min(len(self.calls), len(self.answers)) - 1]


def test_all_keys_are_returned() -> None:
    assert len(KEYS) == len(HOST_KEY_FILES)
    box = Container([Exec(0, "\n".join(KEYS).encode() + b"\n")])
    assert host_keys(box, time.monotonic() + 5) == KEYS  # type: ignore[arg-type]


def test_an_empty_or_truncated_successful_read_is_retried() -> None:
    full = Exec(0, "\n".join(KEYS).encode())
    box = Container(
        [Exec(0, b""), Exec(0, "\n".join(KEYS[:2]).encode()), Exec(0, b"ssh-rsa AA"), full]
    )
    assert host_keys(box, time.monotonic() + 5) == KEYS  # type: ignore[arg-type]
    assert len(box.calls) == 4


def test_keys_that_never_come_are_an_error_naming_the_container() -> None:
    box = Container([Exec(3, b"inactive")])
    with pytest.raises(LabError, match="deployer-test-1: no SSH host keys"):
        host_keys(box, time.monotonic() + 0.3)  # type: ignore[arg-type]
