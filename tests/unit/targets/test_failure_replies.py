"""Why a host failed, as the switch reports it, is parsed, never trusted: a cause deployer
does not know is read as "unhealthy", text is bounded, a service name that is no service name
is dropped."""

from __future__ import annotations

import re
from pathlib import Path

from deployer.ledger import CAUSES
from deployer.targets.ssh.replies import Reply, analysis, checked


def test_the_switch_s_failure_report_becomes_the_host_s_analysis() -> None:
    reply = Reply.of(
        checked(
            {
                "stage": "health",
                "service": "api",
                "failure": {
                    "cause": "oom",
                    "summary": "killed by the kernel for memory (out of memory)",
                    "journal": [f"line {i}" for i in range(40)],
                },
            }
        )
    )
    assert reply.analysis is not None
    assert reply.analysis.cause == "oom"
    assert reply.analysis.label == "killed for memory"
    assert reply.analysis.service == "api"
    assert reply.analysis.journal == tuple(f"line {i}" for i in range(28, 40))


def test_a_report_of_another_shape_is_read_safely() -> None:
    found = analysis({"cause": "$(reboot)", "summary": "x" * 10_000, "journal": "not a list"})
    assert found is not None
    assert found.cause == "unhealthy"
    assert len(found.summary) <= 520
    assert found.journal == ()
    assert analysis({"cause": "exit"}, service="../etc").service == ""  # type: ignore[union-attr]
    assert analysis("crashed") is None
    assert Reply.of(checked({"stage": "switch"})).analysis is None


def test_every_cause_the_hosts_give_has_a_label() -> None:
    source = (
        Path(__file__).parents[3]
        / "collections/ansible_collections/deployer/core/plugins/module_utils/explain.py"
    ).read_text()
    given = set(re.findall(r'return "([a-z_]+)", ', source)) | set(
        re.findall(r'return \(\s*"([a-z_]+)",', source)
    )
    assert given
    assert given <= set(CAUSES)
