"""The PostgreSQL ledger on a real server (tests/ledger_db.py): the same schema as SQLite's,
its migrations, the server's answers when it cannot be used, and what its concurrency
relies on. What both engines share is tested in test_ledger.py on both."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from deployer.exitcodes import ExitCode
from deployer.ledger import (
    SCHEMA_VERSION,
    HookResult,
    HostResult,
    HostStatus,
    Kind,
    Ledger,
    LedgerUnreachable,
    LedgerUnreadable,
    Postgres,
    Status,
)
from deployer.ledger.postgres import SCHEMA_TABLE, TYPES
from deployer.ledger.schema import TABLES, statements

ROOT = Path(__file__).resolve().parents[3]
CANARY = "s3cr3t-CANARY-pg-41c7"


def begin(ledger: Ledger, version: str = "v1", **fields: Any) -> int:
    row: dict[str, Any] = {
        "environment": "prod",
        "kind": Kind.DEPLOY,
        "version": version,
        "previous_version": None,
        "artifact_sha256": None,
        "user": "alice",
        "control_host": "ctl-1",
        "pid": 1,
    }
    return ledger.begin(**{**row, **fields})


def test_the_schema_is_sqlites_table_for_table_and_column_for_column(
    tmp_path: Path, postgres: Any
) -> None:
    Ledger(tmp_path / "l.sqlite3").close()
    postgres.ledger().close()
    with sqlite3.connect(tmp_path / "l.sqlite3") as raw:
        names = [r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        embedded = {
            t: [c[1] for c in raw.execute(f"PRAGMA table_info({t})")]
            for t in names
            if t != "sqlite_sequence"
        }
    columns = postgres.sql(
        "SELECT table_name, column_name, data_type, collation_name FROM"
        " information_schema.columns WHERE table_schema = 'public'"
        " ORDER BY table_name, ordinal_position"
    )
    shared: dict[str, list[str]] = {}
    for c in columns:
        shared.setdefault(c["table_name"], []).append(c["column_name"])
    assert set(embedded) == set(TABLES)  # a table a migration adds is copied too
    assert shared.pop(SCHEMA_TABLE) == ["version"]
    assert shared == embedded
    # text compares byte by byte, numbers are 64-bit and double precision, as on SQLite
    texts = [c for c in columns if c["data_type"] == "text"]
    assert texts
    assert all(c["collation_name"] == "C" for c in texts)
    assert {c["data_type"] for c in columns} == {"text", "bigint", "double precision"}
    assert postgres.sql(f"SELECT version FROM {SCHEMA_TABLE}") == [{"version": SCHEMA_VERSION}]


def test_hosts_sort_as_on_sqlite_whatever_the_servers_collation(
    tmp_path: Path, postgres_server: Any
) -> None:
    import ledger_db

    hosts = ["web-2", "Web10", "web10", "web_1", "a b"]
    with ledger_db.database(postgres_server, icu_locale="en-US") as db:
        assert db.sql("SELECT x FROM (VALUES ('web_1'), ('Web10')) v(x) ORDER BY x") == [
            {"x": "web_1"},
            {"x": "Web10"},
        ]  # the database's own rules: not byte order
        for where in (tmp_path / "l.sqlite3", db.where):
            with Ledger(where) as ledger:
                deployment_id = begin(ledger)
                ledger.record_hosts(deployment_id, [HostResult(h, HostStatus.OK) for h in hosts])
                for host in hosts:
                    ledger.record_observation("prod", host, "v1", healthy=True)
                assert [h.host for h in ledger.get(deployment_id).hosts] == sorted(hosts)
                assert list(ledger.observations("prod")) == sorted(hosts)


def test_a_version_1_database_is_migrated_keeping_its_rows(postgres: Any) -> None:
    for statement in statements(1, TYPES):
        postgres.sql(statement)
    postgres.sql(f"CREATE TABLE {SCHEMA_TABLE} (version BIGINT NOT NULL)")
    postgres.sql(f"INSERT INTO {SCHEMA_TABLE} VALUES (1)")
    postgres.sql(
        'INSERT INTO deployments (environment, kind, version, "user", control_host, pid,'
        " started_at, ended_at, status) VALUES ('prod', 'deploy', 'v1', 'alice', 'ctl', 1,"
        " '2025-03-01T10:00:00.000000+00:00', '2025-03-01T10:01:00.000000+00:00', 'SUCCEEDED')"
    )
    with postgres.ledger() as ledger:
        [row] = ledger.history()
        assert (row.id, row.version, row.status, row.error_rate) == (
            1,
            "v1",
            Status.SUCCEEDED,
            None,
        )
        assert ledger.current("prod") == "v1"
        assert begin(ledger, "v2") == 2  # ids go on after the ones it had
    assert postgres.sql(f"SELECT version FROM {SCHEMA_TABLE}") == [{"version": SCHEMA_VERSION}]


def test_a_newer_schema_is_refused_and_left_alone(postgres: Any) -> None:
    postgres.ledger().close()
    postgres.sql(f"UPDATE {SCHEMA_TABLE} SET version = {SCHEMA_VERSION + 1}")
    with pytest.raises(LedgerUnreadable, match="schema version") as info:
        postgres.ledger()
    assert postgres.url in info.value.message
    assert postgres.password not in info.value.message
    assert info.value.exit_code == ExitCode.BAD_INPUT
    assert postgres.sql(f"SELECT version FROM {SCHEMA_TABLE}") == [{"version": SCHEMA_VERSION + 1}]


def test_a_database_of_another_program_is_refused(postgres: Any) -> None:
    postgres.sql("CREATE TABLE deployments (x INTEGER)")
    with pytest.raises(LedgerUnreadable, match="not a deployer ledger"):
        postgres.ledger()
    tables = postgres.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    assert tables == [{"tablename": "deployments"}]  # nothing of the ledger's was created


def test_a_wrong_password_is_refused_without_showing_it(postgres: Any) -> None:
    wrong = "not-the-password-" + CANARY
    with pytest.raises(LedgerUnreachable) as info:
        Ledger(Postgres(postgres.url, wrong))
    assert info.value.exit_code == ExitCode.BAD_INPUT
    assert info.value.credentials is True
    assert "password authentication failed" in info.value.message
    assert postgres.url in info.value.message
    assert wrong not in info.value.message
    assert CANARY not in repr(info.value)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_server_that_does_not_answer_is_unreachable() -> None:
    url = f"postgresql://deployer@127.0.0.1:{_closed_port()}/ledger"
    with pytest.raises(LedgerUnreachable, match="Connection refused") as info:
        Ledger(Postgres(url, "x" * 12))
    assert info.value.credentials is False
    assert info.value.message.startswith(f"cannot connect to ledger {url}: ")
    assert "\n" not in info.value.message


def test_a_connection_the_server_ended_is_opened_again(postgres: Any) -> None:
    with postgres.ledger() as ledger:
        first = begin(ledger)
        ended = postgres.sql(
            "SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'deployer'"
        )
        assert ended == [{"ended": True}]
        ledger.finish(first, Status.SUCCEEDED)  # on a new connection
        assert ledger.current("prod") == "v1"


def test_hooks_recorded_at_once_from_two_control_hosts_are_numbered_apart(
    postgres: Any,
) -> None:
    """Numbering a hook reads before it writes: the deployment's row is locked meanwhile,
    as SQLite's write lock did, so two writers never take the same number."""
    with postgres.ledger() as opened:
        deployment_id = begin(opened)
    ledgers = [postgres.ledger(), postgres.ledger()]
    barrier = threading.Barrier(2)
    failures: list[BaseException] = []

    def record(ledger: Ledger, host: str) -> None:
        barrier.wait()
        try:
            for _ in range(25):
                ledger.record_hook(deployment_id, HookResult("after_switch", host, True))
        except BaseException as exc:
            failures.append(exc)

    threads = [
        threading.Thread(target=record, args=(ledger, f"web{i}"))
        for i, ledger in enumerate(ledgers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for ledger in ledgers:
        ledger.close()
    assert failures == []
    with postgres.ledger() as ledger:
        hooks = ledger.get(deployment_id).hooks
    assert len(hooks) == 50
    assert sorted(h.host for h in hooks) == ["web0"] * 25 + ["web1"] * 25
    numbers = postgres.sql("SELECT seq FROM deployment_hooks ORDER BY seq")
    assert [r["seq"] for r in numbers] == list(range(1, 51))


def test_free_text_is_masked_before_it_reaches_the_server(postgres: Any) -> None:
    def populate(ledger: Ledger) -> None:
        deployment_id = begin(ledger, user=f"alice {CANARY}", control_host=f"ctl {CANARY}")
        ledger.record_hosts(
            deployment_id, [HostResult("web1", HostStatus.FAILED, "switch", message=CANARY)]
        )
        ledger.record_hook(
            deployment_id, HookResult("before_switch", "web1", False, 1, output=CANARY)
        )
        ledger.finish(deployment_id, Status.FAILED, reason=f"password={CANARY} rejected")
        ledger.mark_bad("prod", "v1", deployment_id=deployment_id, reason=f"bad {CANARY}")

    def everything() -> str:
        return " ".join(
            str(r["row"]) for t in TABLES for r in postgres.sql(f"SELECT t::text AS row FROM {t} t")
        )

    with postgres.ledger() as plain:  # control: the scan finds what is stored unmasked
        populate(plain)
    assert CANARY in everything()
    for table in reversed(TABLES):
        postgres.sql(f"DELETE FROM {table}")
    with postgres.ledger(redact=lambda text: text.replace(CANARY, "[MASKED]")) as masked:
        populate(masked)
        assert masked.history()[0].reason == "password=[MASKED] rejected"
    assert "[MASKED]" in everything()
    assert CANARY not in everything()


def test_sqlite_needs_no_psycopg_and_postgres_names_the_extra(tmp_path: Path) -> None:
    script = f"""
import sys
sys.modules["psycopg"] = None  # as where the postgres extra is not installed
from pathlib import Path
from deployer.ledger import Ledger, LedgerUnreachable, Postgres
with Ledger(Path({str(tmp_path / "l.sqlite3")!r})) as ledger:
    ledger.history()
try:
    Ledger(Postgres("postgresql://deployer@127.0.0.1:1/ledger"))
except LedgerUnreachable as exc:
    print(exc.message)
"""
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "needs the `postgres` extra" in proc.stdout
    assert "pip install 'deployer[postgres]'" in proc.stdout
