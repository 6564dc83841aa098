"""examples/shop's database and cache on a real lab host: PostgreSQL 15 and Redis 7 from
Debian, set up by the deploy before anything is switched, and the API's schema migrated by
alembic in the before_switch hook. v1 creates the schema; v2 migrates it and the API serves
the new column; a v3 whose migration fails is stopped before any host is switched, every host
stays on v2 and the schema is untouched. The generated credentials never leave the data host
but inside the releases' env files."""

from __future__ import annotations

import json
import secrets
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from shop_lab import Shop

pytestmark = pytest.mark.integration

FAILING = '''"""A migration that fails halfway: the schema must stay as it was."""

from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.execute("ALTER TABLE items ADD COLUMN colour TEXT")
    op.execute("SELECT 1 / 0")
'''


def _deploy(shop: Shop, version: str, api: Path | None = None) -> subprocess.CompletedProcess[str]:
    extra = ["--artifact", f"api={api}"] if api is not None else []
    return shop.cli("deploy", "lab", "--version", version, *extra)


def _json(proc: subprocess.CompletedProcess[str]) -> dict:  # type: ignore[type-arg]
    return json.loads(proc.stdout)


def test_migrations_run_before_the_switch_and_a_failed_one_switches_nothing(
    shop: Shop, tmp_path: Path
) -> None:
    outputs: list[str] = []
    config = shop.root / "deploy.yml"
    config.write_text(
        config.read_text().replace(
            'database: {type: postgresql, version: "15", storage: 1Gi, component: data}',
            'database: {type: postgresql, version: "15", storage: 1Gi, component: data, '
            "backup: {before_migrate: true, keep: 5}}",
        )
    )
    v1 = tmp_path / "api-v1"
    shutil.copytree(shop.root / "api", v1)
    (v1 / "migrations" / "versions" / "0002_stock.py").unlink()
    first = _deploy(shop, "v1", v1)
    outputs += [first.stdout, first.stderr]
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "hook before_switch on" in first.stdout  # its outcome and output are shown
    assert shop.get("/api/schema")[2].strip() == "0001"
    items = json.loads(shop.get("/api/items")[2])
    assert [sorted(i) for i in items] == [["id", "name", "price"]] * 2
    assert int(shop.get("/api/visits")[2]) + 1 == int(shop.get("/api/visits")[2])

    second = _deploy(shop, "v2")
    outputs += [second.stdout, second.stderr]
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert shop.get("/api/schema")[2].strip() == "0002"
    assert {i["name"]: i["stock"] for i in json.loads(shop.get("/api/items")[2])} == {
        "tea": 10,
        "coffee": 10,
    }

    v3 = tmp_path / "api-v3"
    shutil.copytree(shop.root / "api", v3)
    (v3 / "migrations" / "versions" / "0003_fails.py").write_text(FAILING)
    third = shop.cli("deploy", "lab", "--version", "v3", "--artifact", f"api={v3}", "--json")
    outputs += [third.stdout, third.stderr]
    assert third.returncode == 1, third.stdout[-3000:]
    result = _json(third)
    assert (result["status"], result["stage"]) == ("FAILED", "hook")
    assert "hook before_switch failed" in result["reason"]
    (hook,) = result["hooks"]
    assert hook["ok"] is False
    assert "ZeroDivision" in hook["output"] or "division by zero" in hook["output"]
    # no host was switched, the schema is as v2 left it
    current = {
        h.name: shop.ssh(h, f"readlink /srv/{shop.app}/current").strip() for h in shop.lab.hosts[:3]
    }
    assert {Path(c).name for c in current.values()} == {"v2"}, current
    assert shop.get("/api/schema")[2].strip() == "0002"
    assert "colour" not in json.loads(shop.get("/api/items")[2])[0]
    history = json.loads(shop.cli("history", "lab", "--json").stdout)
    assert history[0]["stage"] == "hook"
    assert history[0]["hooks"][0]["name"] == "before_switch"

    # a dump before each migration, the failed one's too; restoring one brings its schema back
    backups = _json(shop.cli("db", "backups", "lab", "--json"))["backups"]
    assert [b["label"] for b in backups] == ["v3", "v2", "v1"]
    before_v2 = next(b for b in backups if b["label"] == "v2")
    before_v3 = next(b for b in backups if b["label"] == "v3")
    restored = shop.cli("db", "restore", "lab", str(before_v2["id"]), "--yes")
    outputs += [restored.stdout, restored.stderr]
    assert restored.returncode == 0, restored.stdout[-2000:] + restored.stderr[-2000:]
    assert shop.get("/api/schema")[2].strip() == "0001"
    restored = shop.cli("db", "restore", "lab", str(before_v3["id"]), "--yes")
    assert restored.returncode == 0, restored.stdout[-2000:]
    assert shop.get("/api/schema")[2].strip() == "0002"
    dumps = shop.ssh(shop.lab.hosts[0], f"sudo ls /var/lib/deployer/backups/{shop.app}-lab")
    assert len(dumps.split()) == 3, dumps

    # the accessories report themselves, in status too
    accessories = shop.cli("accessory", "status", "lab", "--json")
    assert accessories.returncode == 0, accessories.stdout[-2000:]
    states = {a["kind"]: a for a in _json(accessories)["accessories"]}
    assert states["database"]["running"]
    assert states["cache"]["running"]
    assert states["database"]["connections"] is not None
    assert states["cache"]["used_memory"] > 0
    status = _json(shop.cli("status", "lab", "--json"))
    assert [a["kind"] for a in status["accessories"]] == ["database", "cache"]
    outputs += [accessories.stdout, json.dumps(status)]

    # the credentials: generated on the data host, kept there (root 0600) and in the
    # releases' env files only
    data = shop.lab.hosts[0]
    name = f"{shop.app}-lab"
    canaries = []
    for kind in ("postgresql", "redis"):
        path = f"/etc/deployer/accessories/{name}/{kind}.password"
        mode = shop.ssh(data, f"sudo stat -c '%a %U' {path}").split()
        assert mode == ["600", "root"], (path, mode)
        canaries.append(shop.ssh(data, f"sudo cat {path}").strip())
    assert all(len(c) >= 16 for c in canaries)
    for text in outputs:
        assert not any(c in text for c in canaries)
    for path in (shop.root / ".deployer").rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            assert not any(c.encode() in blob for c in canaries), path
    dump = "\n".join(sqlite3.connect(shop.root / ".deployer" / "ledger.sqlite3").iterdump())
    assert not any(c in dump for c in canaries)
    for host in shop.lab.hosts[:3]:
        found = shop.ssh(
            host,
            "sudo grep -rl -e "
            + " -e ".join(canaries)
            + " /tmp /var/tmp /root/.ansible /home/deploy/.ansible 2>/dev/null; true",
        )
        assert found.strip() == "", (host.name, found)


def test_a_standby_follows_the_primary_and_refuses_writes(shop: Shop) -> None:
    """database.replicas: 2 puts a streaming-replication standby on the data component's
    second host; what the app writes on the primary is read back on the standby."""
    lab = shop.lab
    text = (shop.root / "deploy.yml").read_text()
    text = text.replace("      data: lab[0]\n", "      data: lab[2:4]\n")
    text = text.replace(
        'database: {type: postgresql, version: "15", storage: 1Gi, component: data}',
        'database: {type: postgresql, version: "15", storage: 1Gi, component: data, replicas: 2}',
    )
    (shop.root / "deploy.yml").write_text(text)
    primary, standby = lab.hosts[2], lab.hosts[3]
    try:
        first = shop.cli("deploy", "lab", "--version", "v1")
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        db = shop.app
        insert = "INSERT INTO items (name, price) VALUES ('tisane', 2.5)"
        shop.ssh(primary, f'sudo -u postgres psql -d {db} -qc "{insert}"')
        deadline = time.monotonic() + 30
        seen = ""
        while time.monotonic() < deadline and "tisane" not in seen:
            seen = shop.ssh(standby, f"sudo -u postgres psql -d {db} -tAc 'SELECT name FROM items'")
            time.sleep(0.5)
        assert "tisane" in seen, seen
        refused = shop.ssh(standby, f'sudo -u postgres psql -d {db} -c "{insert}" 2>&1')
        assert "read-only" in refused, refused
        status = json.loads(shop.cli("accessory", "status", "lab", "database", "--json").stdout)
        roles = {(a["host"], a["role"]): a for a in status["accessories"]}
        assert roles[(standby.name, "standby")]["in_recovery"] is True
        assert roles[(primary.name, "primary")]["running"] is True
        again = shop.cli("deploy", "lab", "--version", "v2")  # converged: the standby stays
        assert again.returncode == 0, again.stdout[-3000:]
    finally:
        for host in (primary, standby):  # back to a plain cluster of their own
            shop.ssh(
                host,
                "sudo pg_dropcluster --stop 15 main; sudo pg_createcluster 15 main >/dev/null; "
                "sudo systemctl disable --now postgresql@15-main; "
                f"sudo rm -rf /etc/deployer/accessories/{shop.app}-lab; true",
            )


def test_the_credentials_are_kept_in_the_project_s_vault_and_never_rotated(shop: Shop) -> None:
    """With a vault in the project, the first deploy reads the generated credentials back
    (sealed with a one-time pad) into it; a data host that lost its credentials gets the
    vault's again; a vault that disagrees with the host stops the deploy before any switch."""
    from ansible.parsing.vault import VaultLib, VaultSecret

    password = secrets.token_hex(12)
    vault = VaultLib([("default", VaultSecret(password.encode()))])
    path = shop.root / "secrets.vault.yml"
    path.write_bytes(vault.encrypt("# the team's own secrets\napi_token: t0ken-kept\n"))
    config = shop.root / "deploy.yml"
    config.write_text(
        config.read_text()
        + "secrets: {vault_file: secrets.vault.yml, vault_password_env: SHOP_VAULT_PASSWORD}\n"
    )
    shop.environ["SHOP_VAULT_PASSWORD"] = password
    outputs: list[str] = []
    name = f"{shop.app}-lab"
    data = shop.lab.hosts[0]

    def stored(kind: str) -> str:
        return shop.ssh(data, f"sudo cat /etc/deployer/accessories/{name}/{kind}.password").strip()

    first = _deploy(shop, "v1")
    outputs += [first.stdout, first.stderr]
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    database, cache = f"deployer.{name}.database.password", f"deployer.{name}.cache.password"
    assert f"added to the vault (secrets.vault.yml): {database}, {cache}" in first.stdout
    text = vault.decrypt(path.read_bytes()).decode()
    assert text.startswith("# the team's own secrets\napi_token: t0ken-kept\n")
    appended = (line.split(": ", 1) for line in text.splitlines()[2:])
    kept = {json.loads(k): json.loads(v) for k, v in appended}
    assert kept == {database: stored("postgresql"), cache: stored("redis")}
    assert int(shop.get("/api/visits")[2]) >= 0  # the API reaches both with them

    # the data host lost its credentials (rebuilt): the next set-up gives it the vault's
    shop.ssh(data, f"sudo rm /etc/deployer/accessories/{name}/redis.password")
    again = shop.cli("accessory", "setup", "lab", "cache")
    outputs += [again.stdout, again.stderr]
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert stored("redis") == kept[cache]
    assert "added to the vault" not in again.stdout
    assert vault.decrypt(path.read_bytes()).decode() == text

    # a vault that disagrees with the host: nothing is rotated behind the releases' env files
    path.write_bytes(vault.encrypt(text.replace(kept[database], "not-the-hosts-password")))
    second = shop.cli("deploy", "lab", "--version", "v2", "--json")
    outputs += [second.stdout, second.stderr]
    assert second.returncode == 1, second.stdout[-3000:]
    result = _json(second)
    assert result["stage"] == "accessory"
    assert result["status"] == "FAILED"
    assert "postgresql.password holds another password" in result["reason"]
    assert "not-the-hosts-password" not in second.stdout
    assert stored("postgresql") == kept[database]
    current = {shop.ssh(h, f"readlink /srv/{shop.app}/current").strip() for h in shop.lab.hosts[:3]}
    assert {Path(c).name for c in current} == {"v1"}
    assert int(shop.get("/api/visits")[2]) >= 0

    canaries = list(kept.values())
    for text in outputs:
        assert not any(c in text for c in canaries)
    for found in (shop.root / ".deployer").rglob("*"):
        if found.is_file():
            blob = found.read_bytes()
            assert not any(c.encode() in blob for c in canaries), found
    dump = "\n".join(sqlite3.connect(shop.root / ".deployer" / "ledger.sqlite3").iterdump())
    assert not any(c in dump for c in canaries)
