"""What hosts say about accessories, hooks and dumps is parsed, never trusted: a report of
the wrong shape is dropped or read as "unknown", and text is bounded."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployer.config.loader import load_project
from deployer.config.resolve import resolve
from deployer.ledger import Ledger
from deployer.targets.ssh.replies import Reply, backup_taken, checked, hook_result
from deployer.targets.ssh.runner import HostOutcome
from deployer.targets.ssh.state import accessory_problems, accessory_states

SHOP = Path(__file__).parents[2] / "golden" / "accessories" / "shop" / "deploy.yml"
DUMP = {"file": "20261204T014500Z-v2.dump", "bytes": 4096, "sha256": "ab" * 32}


def test_a_dump_report_of_the_module_s_shape_is_read() -> None:
    taken = backup_taken({"postgresql": {"backup": DUMP}})
    assert taken is not None
    assert (taken.file, taken.bytes, taken.sha256) == (DUMP["file"], 4096, "ab" * 32)


@pytest.mark.parametrize(
    "change",
    [
        {"file": "../../etc/passwd"},
        {"file": "20261204T014500Z-v2.dump; rm -rf /"},
        {"bytes": -1},
        {"bytes": True},
        {"bytes": "4096"},
        {"sha256": "AB" * 32},
        {"sha256": "ab" * 31},
    ],
)
def test_a_dump_report_of_any_other_shape_is_dropped(change: dict[str, object]) -> None:
    assert backup_taken({"postgresql": {"backup": {**DUMP, **change}}}) is None


def test_a_hook_report_is_bounded_and_its_outcome_read_from_its_exit_code() -> None:
    data = checked(
        {"hook": {"name": "before_switch", "rc": 1, "output": "x" * 200_000, "seconds": 2.5}}
    )
    reply = Reply.of(data)
    assert reply.hook is not None
    assert reply.hook.ok is False
    assert reply.hook.exit_code == 1
    assert len(reply.hook.output) <= 65536 + 16
    assert hook_result({"name": "rm -rf", "rc": 0}) is None
    assert hook_result({"name": "after_switch", "rc": 0})
    assert hook_result({"name": "after_switch", "rc": 0, "timed_out": True}).ok is False  # type: ignore[union-attr]
    assert hook_result({"name": "after_switch", "rc": "0"}).ok is False  # type: ignore[union-attr]


def test_accessory_states_are_read_per_server_and_checked() -> None:
    target = resolve(load_project(SHOP), "production")
    outcome = HostOutcome(
        "db1",
        data={
            "accessories": {
                "postgresql": {"running": True, "version": "15.8\x1b[31m", "connections": 3},
                "redis": {"running": False, "used_memory": -5, "port": "6380"},
            }
        },
    )
    standby_reply = HostOutcome(
        "db2", data={"accessories": {"postgresql": {"running": True, "in_recovery": False}}}
    )
    database, standby, cache = accessory_states(target, {"db1": outcome, "db2": standby_reply})
    assert (standby.host, standby.role, standby.in_recovery) == ("db2", "standby", False)
    assert (database.kind, database.running, database.connections) == ("database", True, 3)
    assert database.version == "15.8[31m"  # no control characters reach the terminal
    assert (cache.running, cache.used_memory, cache.port) == (False, None, None)
    assert accessory_problems((database, cache)) == ["db1: the cache (redis) is not running"]


def test_an_unreachable_accessory_host_is_a_problem() -> None:
    target = resolve(load_project(SHOP), "production")
    states = accessory_states(
        target, {"db1": HostOutcome("db1", unreachable=True, message="timed out")}
    )
    assert [(s.host, s.reachable) for s in states] == [
        ("db1", False),
        ("db2", False),
        ("db1", False),
    ]
    assert (
        accessory_problems(states)[0] == "db1: the database (postgresql) is unreachable: timed out"
    )


def test_the_ledger_keeps_the_dumps_newest_first(tmp_path: Path) -> None:
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        first = ledger.record_backup(
            environment="prod", deployment_id=None, host="db1", file="a.dump", size=1,
            sha256="0" * 64, label="v1",
        )  # fmt: skip
        second = ledger.record_backup(
            environment="prod", deployment_id=None, host="db1", file="b.dump", size=2,
            sha256="1" * 64, label="v2",
        )  # fmt: skip
        ledger.record_backup(
            environment="staging", deployment_id=None, host="db2", file="c.dump", size=3,
            sha256="2" * 64, label="v2",
        )  # fmt: skip
        assert [b.id for b in ledger.backups("prod")] == [second, first]
        assert [b.label for b in ledger.backups("prod")] == ["v2", "v1"]
