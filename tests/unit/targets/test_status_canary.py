"""`status` of an environment whose canary waits for `deployer promote` / `deployer abort`:
the ledger's running deployment, at stage `decide N%`, is named with its share and the two
commands (a real SQLite ledger)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployer.ledger import Kind, Ledger
from deployer.plan.strategy import Step, waiting_share
from deployer.targets.base import compare_with_ledger


@pytest.mark.parametrize(
    ("stage", "share"),
    [("decide 20%", 20), ("decide 5%", 5), ("analyse 20%", None), ("decide", None),
     ("decide x%", None), ("decide 20", None), ("prepare", None)],
)  # fmt: skip
def test_the_waiting_share_is_read_back_from_the_stage_only(stage: str, share: int | None) -> None:
    assert waiting_share(stage) == share


def test_it_reads_back_what_the_plan_writes() -> None:
    assert waiting_share(Step("decide", (), share=50).label) == 50


def _begin(ledger: Ledger) -> int:
    return ledger.begin(
        environment="prod",
        kind=Kind.DEPLOY,
        version="v2",
        previous_version="v1",
        artifact_sha256="ab" * 32,
        user="alice",
        control_host="ctl-1",
        pid=4242,
    )


def test_a_waiting_canary_is_named_with_its_share_and_the_commands(tmp_path: Path) -> None:
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        deployment = _begin(ledger)
        ledger.set_stage(deployment, "decide 20%")
        _, problems, last = compare_with_ledger(ledger, "prod", {"v1": ["web-1"]}, "hosts")
    assert last is not None
    assert last.id == deployment
    assert problems == [
        f"deployment #{deployment} is a canary of v2 waiting at 20 % of requests: "
        "`deployer promote prod` goes on, `deployer abort prod` takes every request back"
    ]


def test_another_running_deployment_keeps_its_plain_message(tmp_path: Path) -> None:
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        deployment = _begin(ledger)
        ledger.set_stage(deployment, "analyse 20%")
        _, problems, _ = compare_with_ledger(ledger, "prod", {"v1": ["web-1"]}, "hosts")
    assert problems == [f"last deployment #{deployment} is RUNNING: "]
