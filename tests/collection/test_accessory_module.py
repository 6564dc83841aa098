"""deployer_accessory's pure parts: parameters, pg_hba.conf's managed block, the rendered
configuration, package versions, the storage check, the client URLs and the SCRAM verifier
PostgreSQL gets instead of the password. The host side runs in molecule/postgresql and
molecule/redis."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "collections"))

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.deployer.core.plugins.action import (
    deployer_accessory as action_accessory,
)
from ansible_collections.deployer.core.plugins.module_utils import accessory as acc
from ansible_collections.deployer.core.plugins.modules import deployer_accessory
from ansible_collections.deployer.core.plugins.plugin_utils import lean

DEBIAN_HBA = (
    "local   all             postgres                                peer\n"
    "host    all             all             127.0.0.1/32            scram-sha-256\n"
)


def params(**changes: Any) -> dict[str, Any]:
    base = {"kind": "postgresql", "name": "shop-lab", "version": "15", "address": "10.0.0.5"}
    result = ArgumentSpecValidator(deployer_accessory.MODULE_SPEC["argument_spec"]).validate(
        {**base, **changes}
    )
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


# --- parameters --------------------------------------------------------------------------


def test_defaults_come_from_the_name_and_the_kind() -> None:
    p = acc.check_params(params(clients=["10.0.0.11", "10.0.0.11", "10.0.0.12"]))
    assert (p["database"], p["user"], p["port"]) == ("shop_lab", "shop_lab", 5432)
    assert p["listen"] == ["10.0.0.5", "127.0.0.1"]
    assert p["clients"] == ["10.0.0.11", "10.0.0.12"]
    redis = acc.check_params(params(kind="redis", version="7", listen=["10.0.0.5", "127.0.0.1"]))
    assert (redis["port"], redis["listen"]) == (6379, ["10.0.0.5", "127.0.0.1"])
    assert acc.credentials_file("shop-lab", "redis") == (
        "/etc/deployer/accessories/shop-lab/redis.password"
    )
    assert acc.unit("redis", "shop-lab", "7") == "redis-server@shop-lab.service"
    assert acc.unit("postgresql", "shop-lab", "15") == "postgresql@15-main.service"
    assert acc.packages("postgresql", "15") == ["postgresql-15"]


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"name": "Shop"}, "name"),
        ({"name": "shop/../etc"}, "name"),
        ({"name": "-shop"}, "name"),
        ({"name": "a" * 64}, "name"),
        ({"version": "15.2"}, "version"),
        ({"address": "db.internal"}, "address"),
        ({"listen": ["0.0.0.0 ; x"]}, "listen"),
        ({"clients": ["10.0.0.0/8"]}, "clients"),
        ({"port": 70000}, "port"),
        ({"database": "shop-lab"}, "database"),
        ({"user": 'a"b'}, "user"),
        ({"password": "line\nbreak"}, "password"),
        ({"password": "caf\u00e9-caf\u00e9"}, "password"),
        ({"storage_bytes": -1}, "storage_bytes"),
    ],
)
def test_unsafe_parameters_are_refused_by_name(changes: dict[str, Any], error: str) -> None:
    with pytest.raises(acc.AccessoryError, match="^" + error):
        acc.check_params(params(**changes))


def test_a_refused_password_is_never_echoed() -> None:
    with pytest.raises(acc.AccessoryError) as raised:
        acc.check_params(params(password="s3cret\x07value"))
    assert "s3cret" not in str(raised.value)


def test_the_password_option_is_no_log() -> None:
    assert deployer_accessory.MODULE_SPEC["argument_spec"]["password"]["no_log"] is True


# --- pg_hba.conf -------------------------------------------------------------------------


def test_the_hba_block_has_one_scram_line_per_client() -> None:
    block = acc.hba_block("shop-lab", "shop_lab", "shop_lab", ["10.0.0.11", "fd00::7"])
    assert block.splitlines() == [
        "# BEGIN deployer accessory shop-lab (managed by deployer; do not edit)",
        'host    "shop_lab"    "shop_lab"    10.0.0.11/32    scram-sha-256',
        'host    "shop_lab"    "shop_lab"    fd00::7/128    scram-sha-256',
        "# END deployer accessory shop-lab",
    ]
    assert acc.hba_block("shop-lab", "shop_lab", "shop_lab", []) == ""


def test_merging_keeps_every_other_line_and_other_environments_blocks() -> None:
    shop = acc.hba_block("shop-lab", "shop_lab", "shop_lab", ["10.0.0.11"])
    blog = acc.hba_block("blog-lab", "blog_lab", "blog_lab", ["10.0.0.21"])
    text = acc.merge_hba(acc.merge_hba(DEBIAN_HBA, "shop-lab", shop), "blog-lab", blog)
    assert text == DEBIAN_HBA + shop + blog
    assert acc.merge_hba(text, "shop-lab", shop) == text  # converged: unchanged
    moved = acc.hba_block("shop-lab", "shop_lab", "shop_lab", ["10.0.0.12"])
    assert acc.merge_hba(text, "shop-lab", moved) == DEBIAN_HBA + moved + blog
    assert acc.merge_hba(text, "shop-lab", "") == DEBIAN_HBA + blog  # no client: block gone
    assert acc.merge_hba("host all all ::1/128 md5", "shop-lab", shop) == (
        "host all all ::1/128 md5\n" + shop
    )


def test_a_block_without_its_end_is_refused() -> None:
    broken = DEBIAN_HBA + acc.HBA_BEGIN % "shop-lab" + "\nhost all all 0.0.0.0/0 trust\n"
    with pytest.raises(acc.AccessoryError, match="end line"):
        acc.merge_hba(broken, "shop-lab", acc.hba_block("shop-lab", "a", "b", ["10.0.0.1"]))


# --- configuration -----------------------------------------------------------------------


def test_the_postgresql_conf_sets_the_addresses_and_the_port() -> None:
    text = acc.pg_conf("shop-lab", ["10.0.0.5", "127.0.0.1"], 5433)
    assert text.splitlines()[1:] == ["listen_addresses = '10.0.0.5,127.0.0.1'", "port = 5433"]


def test_the_redis_conf_binds_guards_and_keeps_its_own_data() -> None:
    lines = acc.redis_conf("shop-lab", ["10.0.0.5", "127.0.0.1"], 6380, "pw").splitlines()
    for line in (
        "bind 10.0.0.5 127.0.0.1",
        "port 6380",
        "protected-mode yes",
        'requirepass "pw"',
        "dir /var/lib/redis/shop-lab",
        "supervised systemd",
        "daemonize no",
        "pidfile /run/redis-shop-lab/redis-server.pid",
        'logfile ""',
    ):
        assert line in lines
    assert acc.redis_conf_path("shop-lab") == "/etc/redis/redis-shop-lab.conf"


def test_a_password_cannot_add_a_redis_directive() -> None:
    line = [
        ln
        for ln in acc.redis_conf("x", ["127.0.0.1"], 6379, 'a" b\\"').splitlines()
        if ln.startswith("requirepass")
    ]
    assert line == ['requirepass "a\\" b\\\\\\""']


# --- versions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "version", "major"),
    [
        ("postgresql", "15.20-0+deb12u1", "15"),
        ("postgresql", "15+248+deb12u2", "15"),
        ("postgresql", "16.4-1.pgdg120+1", "16"),
        ("redis", "5:7.0.15-1~deb12u10", "7"),
        ("redis", "5:6.0.16-1+deb11u2", "6"),
        ("redis", "7.2.4-1", "7"),
        ("redis", "", None),
        ("redis", None, None),
        ("redis", "5:", None),
    ],
)
def test_the_major_version_of_a_debian_package_version(
    kind: str, version: str | None, major: str | None
) -> None:
    assert acc.major_of(kind, version) == major


def test_another_major_version_fails_naming_both() -> None:
    acc.check_major("redis", "7", "5:7.0.15-1~deb12u10", "installed here")
    with pytest.raises(acc.AccessoryError) as raised:
        acc.check_major("postgresql", "16", "15.20-0+deb12u1", "installed here")
    message = str(raised.value)
    assert "postgresql installed here is 15 (15.20-0+deb12u1)" in message
    assert "asks for postgresql 16" in message


# --- storage -----------------------------------------------------------------------------


def test_the_storage_check_names_the_path_and_both_byte_counts() -> None:
    path = "/var/lib/redis/shop-lab"
    assert acc.storage_error(path, path, 10, 0) is None
    assert acc.storage_error(path, path, 10, 10) is None
    assert acc.storage_error(path, path, 9, 10) == (
        "not enough room for the data directory /var/lib/redis/shop-lab: 9 bytes free, "
        "10 bytes required"
    )
    message = acc.storage_error(path, "/var/lib/redis", 9, 10) or ""
    assert "(measured at /var/lib/redis, the nearest existing parent)" in message


def test_free_space_is_measured_at_the_nearest_existing_parent(tmp_path: Path) -> None:
    from ansible_collections.deployer.core.plugins.module_utils.layout import free_bytes

    assert free_bytes(str(tmp_path / "a/b/c"))[1] == str(tmp_path)
    assert free_bytes(str(tmp_path))[1] == str(tmp_path)


# --- URLs --------------------------------------------------------------------------------


def test_the_urls_carry_the_password_url_encoded() -> None:
    assert acc.env_of("postgresql", "10.0.0.5", 5432, "pw", "shop_lab", "shop_lab") == {
        "DATABASE_URL": "postgresql://shop_lab:pw@10.0.0.5:5432/shop_lab"
    }
    assert acc.env_of("redis", "10.0.0.5", 6379, "p@ss:w/rd?#") == {
        "REDIS_URL": "redis://:p%40ss%3Aw%2Frd%3F%23@10.0.0.5:6379/0"
    }
    assert acc.env_of("redis", "fd00::5", 6379, "pw")["REDIS_URL"] == "redis://:pw@[fd00::5]:6379/0"


def test_scrub_removes_the_password_in_both_forms() -> None:
    text = "failed for p@ss and postgresql://u:p%40ss@h/db"
    assert acc.scrub(text, ["p@ss", None]) == "failed for ******** and postgresql://u:********@h/db"


# --- SCRAM-SHA-256 -----------------------------------------------------------------------


def test_the_verifier_proves_rfc_7677s_exchange() -> None:
    """RFC 7677's example (password `pencil`): the StoredKey and ServerKey of the verifier
    check the client's proof and produce the server's signature of that exchange."""
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    verifier = acc.scram_verifier("pencil", salt, 4096)
    head, keys = verifier.rsplit("$", 1)
    assert head == "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ=="
    stored_key, server_key = (base64.b64decode(k) for k in keys.split(":"))
    nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth = (
        "n=user,r=rOprNGfwEbeRWgbNEkqO,"
        f"r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
        f"c=biws,r={nonce}"
    ).encode()
    proof = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    signature = hmac.new(stored_key, auth, hashlib.sha256).digest()
    client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
    assert hashlib.sha256(client_key).digest() == stored_key
    server = hmac.new(server_key, auth, hashlib.sha256).digest()
    assert base64.b64encode(server).decode() == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_a_stored_verifier_is_matched_with_its_own_salt() -> None:
    stored = acc.scram_verifier("pencil")
    assert stored != acc.scram_verifier("pencil")  # a fresh salt each time
    assert acc.scram_matches("pencil", stored)
    assert not acc.scram_matches("pencil!", stored)
    assert not acc.scram_matches("pencil", "md5" + "0" * 32)
    assert not acc.scram_matches("pencil", "")
    assert not acc.scram_matches("pencil", "SCRAM-SHA-256$4096:!!$a:b")


# --- the module's result on the controller -----------------------------------------------


def test_a_refusal_fails_at_the_accessory_stage_without_the_password() -> None:
    from test_lean import run_host

    source = lean.module_spec("deployer_accessory")[0]
    rc, result = run_host(
        "deployer_accessory", source, params(name="Bad/Name", password="hunter2-hunter2")
    )
    assert rc == 1
    assert result["deployer"] == {
        "stage": "accessory",
        "accessory": {"kind": "postgresql", "name": "Bad/Name"},
    }
    assert result["msg"].startswith("postgresql Bad/Name: name: ")
    assert "hunter2" not in json.dumps(result)


def _controller_result(module_result: dict[str, Any], password: str) -> dict[str, Any]:
    """What the lean action plugin hands back for `module_result` (the host's stdout)."""
    action = object.__new__(action_accessory.ActionModule)
    action._task = types.SimpleNamespace(check_mode=False, async_val=0)
    action.lean_interpreter = lambda task_vars: "/usr/bin/python3"
    action._compute_environment_string = lambda: ""
    action._low_level_execute_command = lambda *a, **k: {
        "rc": 1 if module_result.get("failed") else 0,
        "stdout": json.dumps(module_result),
        "stderr": "",
    }
    return action.run_module(params(kind="redis", version="7", password=password), {})


def test_the_env_is_left_unmasked_and_everything_else_masked() -> None:
    url = {"REDIS_URL": "redis://:given-password@10.0.0.5:6379/0"}
    ok = _controller_result({"env": url, "note": "given-password"}, "given-password")
    assert ok["env"] == url  # later plays read it (the task is no_log)
    assert ok["note"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    failed = _controller_result(
        {"failed": True, "msg": "given-password", "env": url}, "given-password"
    )
    assert "given-password" not in json.dumps(failed)


# --- streaming replication ---------------------------------------------------------------

# What pg_basebackup -R wrote on the molecule standby (a password with a "-" is quoted, and
# the whole conninfo quoted again for postgresql.auto.conf: '' for ').
AUTO_CONF = (
    "# Do not edit this file manually!\n"
    "# It will be overwritten by the ALTER SYSTEM command.\n"
    "primary_conninfo = 'user=shop_lab_replication password=''pw-1'' channel_binding=prefer "
    "connect_timeout=10 host=172.26.0.2 port=5432 sslmode=prefer sslcompression=0 sslsni=1 "
    "ssl_min_protocol_version=TLSv1.2 gssencmode=prefer krbsrvname=postgres "
    "target_session_attrs=any'\n"
)


def test_primary_conninfo_is_read_from_postgresql_auto_conf() -> None:
    conninfo = acc.parse_conninfo(acc.conf_value(AUTO_CONF, "primary_conninfo"))
    assert conninfo["user"] == "shop_lab_replication"
    assert conninfo["password"] == "pw-1"
    assert (conninfo["host"], conninfo["port"]) == ("172.26.0.2", "5432")
    assert conninfo["target_session_attrs"] == "any"
    assert acc.conf_value(AUTO_CONF, "restore_command") is None


def test_quotes_and_backslashes_survive_both_levels_of_quoting() -> None:
    # pg_basebackup: password='a\'b\\c d' in the conninfo, then ' and \ doubled for the .conf.
    text = "primary_conninfo = 'user=u password=''a\\\\''b\\\\\\\\c d'' host=10.0.0.5'\n"
    value = acc.conf_value(text, "primary_conninfo")
    assert value == "user=u password='a\\'b\\\\c d' host=10.0.0.5"
    assert acc.parse_conninfo(value) == {"user": "u", "password": "a'b\\c d", "host": "10.0.0.5"}
    later = text + "primary_conninfo = 'host=10.0.0.9'\n"  # the last setting wins
    assert acc.parse_conninfo(acc.conf_value(later, "primary_conninfo")) == {"host": "10.0.0.9"}
    assert acc.parse_conninfo(" host = 10.0.0.5  port=5433 ") == {
        "host": "10.0.0.5",
        "port": "5433",
    }


@pytest.mark.parametrize("text", ["host", "host=10.0.0.5 =x", "password='open"])
def test_an_unreadable_conninfo_is_an_error(text: str) -> None:
    with pytest.raises(acc.AccessoryError, match="primary_conninfo"):
        acc.parse_conninfo(text)


@pytest.mark.parametrize(
    ("conninfo", "matches"),
    [
        ({"host": "10.0.0.5", "port": "5432", "user": "shop_lab_replication"}, True),
        ({"host": "10.0.0.5", "user": "shop_lab_replication"}, True),  # libpq's default port
        ({"hostaddr": "10.0.0.5", "host": "db", "user": "shop_lab_replication"}, True),
        ({"host": "10.0.0.6", "port": "5432", "user": "shop_lab_replication"}, False),
        ({"host": "10.0.0.5", "port": "5433", "user": "shop_lab_replication"}, False),
        ({"host": "10.0.0.5", "port": "5432", "user": "postgres"}, False),
        ({"host": "db.internal", "user": "shop_lab_replication"}, False),
        ({}, False),
    ],
)
def test_a_standby_matches_only_its_primary_and_role(
    conninfo: dict[str, str], matches: bool
) -> None:
    assert acc.conninfo_matches(conninfo, "10.0.0.5", 5432, "shop_lab_replication") is matches


def test_the_primary_lets_each_standby_replicate_as_the_replication_role() -> None:
    p = acc.check_params(params(clients=["10.0.0.11"], standbys=["10.0.0.6", "10.0.0.6"]))
    assert (p["role"], p["standbys"], p["replication_user"]) == (
        "primary",
        ["10.0.0.6"],
        "shop_lab_replication",
    )
    block = acc.hba_block(
        "shop-lab", p["database"], p["user"], p["clients"], p["standbys"], p["replication_user"]
    )
    assert block.splitlines()[1:-1] == [
        'host    "shop_lab"    "shop_lab"    10.0.0.11/32    scram-sha-256',
        # `replication` unquoted: the keyword (quoted, it would name a database)
        'host    replication    "shop_lab_replication"    10.0.0.6/32    scram-sha-256',
    ]
    assert acc.hba_block("shop-lab", "d", "u", [], ["10.0.0.6"], "u_replication").startswith(
        acc.HBA_BEGIN % "shop-lab"
    )
    conf = acc.pg_conf("shop-lab", ["10.0.0.5", "127.0.0.1"], 5432, replication=True)
    assert conf.splitlines()[-1] == "wal_keep_size = '256MB'"
    assert "wal_keep_size" not in acc.pg_conf("shop-lab", ["10.0.0.5"], 5432)
    assert acc.replication_file("shop-lab") == (
        "/etc/deployer/accessories/shop-lab/postgresql.replication.password"
    )


def test_a_standby_takes_its_primary_and_the_replication_password() -> None:
    p = acc.check_params(
        params(
            role="standby",
            address="10.0.0.6",
            primary_address="10.0.0.5",
            primary_port=5433,
            replication_password="given-replication-pw",
        )
    )
    assert (p["primary_address"], p["primary_port"]) == ("10.0.0.5", 5433)
    status = acc.check_params(params(role="standby", primary_address="10.0.0.5", state="status"))
    assert status["role"] == "standby"  # a status needs no password


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"role": "standby", "replication_password": "pw-pw-pw"}, "primary_address: a standby"),
        ({"role": "standby", "primary_address": "10.0.0.5"}, "replication_password: a standby"),
        (
            {"role": "standby", "primary_address": "db", "replication_password": "pw"},
            "primary_address: 'db' is not an IP address",
        ),
        (
            {
                "role": "standby",
                "primary_address": "10.0.0.5",
                "replication_password": "pw",
                "standbys": ["10.0.0.7"],
            },
            "standbys: only the primary",
        ),
        ({"primary_address": "10.0.0.5"}, "primary_address: only a standby"),
        ({"standbys": ["10.0.0.0/24"]}, "standbys"),
        ({"replication_password": "line\nbreak"}, "replication_password"),
        ({"primary_port": 0}, "primary_port"),
        ({"user": "u" * 60}, "too long for its replication role"),
        ({"kind": "redis", "version": "7", "standbys": ["10.0.0.6"]}, "postgresql only"),
    ],
)
def test_unsafe_replication_parameters_are_refused_by_name(
    changes: dict[str, Any], error: str
) -> None:
    with pytest.raises(acc.AccessoryError, match=re.escape(error)):
        acc.check_params(params(**changes))


def test_the_replication_password_is_no_log_and_left_unmasked_in_replication() -> None:
    spec = deployer_accessory.MODULE_SPEC["argument_spec"]
    assert spec["replication_password"]["no_log"] is True
    result = {"replication": {"password": "given-password", "user": "shop_lab_replication"}}
    ok = _controller_result(result, "given-password")
    assert ok["replication"] == result["replication"]


# --- backups -----------------------------------------------------------------------------


def test_a_backup_is_named_by_its_utc_time_and_label() -> None:
    when = datetime.datetime(2026, 12, 4, 1, 51, 12, 999, tzinfo=datetime.UTC)
    name = acc.backup_name(when, "v1.2_rc-3")
    assert name == "20261204T015112Z-v1.2_rc-3.dump"
    assert acc.BACKUP_RE.match(name)
    assert acc.partial_name(name) == ".20261204T015112Z-v1.2_rc-3.dump.partial"
    assert acc.check_params(params(state="backup", backup_label="v1"))["backup_dir"] == (
        "/var/lib/deployer/backups/shop-lab"
    )


def test_pruning_selects_the_oldest_backups_beyond_keep_and_nothing_else() -> None:
    names = [
        "20260102T000000Z-v2.dump",
        "notes.txt",
        ".20260104T000000Z-v4.dump.partial",
        "20260101T000000Z-v1.dump",
        "20260103T000000Z-v3.dump",
        "20260101T000000Z-v1.dump.bak",
        "other-20250101T000000Z-v0.dump",
    ]
    assert acc.backups_to_prune(names, 2) == ["20260101T000000Z-v1.dump"]
    assert acc.backups_to_prune(names, 1) == [
        "20260101T000000Z-v1.dump",
        "20260102T000000Z-v2.dump",
    ]
    assert acc.backups_to_prune(names, 7) == []


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",
        "a/b.dump",
        "/etc/passwd",
        "..",
        "x..dump",
        ".20260101T000000Z-v1.dump.partial",
        "",
        "a b.dump",
        "a" * 256,
    ],
)
def test_a_restore_takes_a_plain_file_name_only(name: str) -> None:
    with pytest.raises(acc.AccessoryError, match="backup_file"):
        acc.check_backup_file(name)
    with pytest.raises(acc.AccessoryError, match="backup_file"):
        acc.check_params(params(state="restore", backup_file=name))


def test_a_restore_of_a_backup_file_is_accepted() -> None:
    p = acc.check_params(
        params(
            state="restore",
            backup_file="20261204T015112Z-v1.dump",
            backup_sha256="AB" * 32,
            backup_dir="/srv/backups/shop",
        )
    )
    assert (p["backup_file"], p["backup_sha256"], p["backup_dir"]) == (
        "20261204T015112Z-v1.dump",
        "ab" * 32,
        "/srv/backups/shop",
    )
    assert deployer_accessory.stage_of("restore") == "restore"
    assert deployer_accessory.stage_of("backup") == "backup"
    assert deployer_accessory.stage_of("present") == "accessory"


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"state": "backup"}, "backup_label: a backup needs"),
        ({"state": "backup", "backup_label": "v1/../x"}, "backup_label"),
        ({"state": "backup", "backup_label": "v" * 65}, "backup_label"),
        ({"state": "backup", "backup_label": "v1", "backup_keep": 0}, "backup_keep"),
        ({"state": "backup", "backup_label": "v1", "backup_dir": "backups"}, "backup_dir"),
        ({"state": "backup", "backup_label": "v1", "backup_dir": "/srv/../etc"}, "backup_dir"),
        ({"state": "backup", "backup_label": "v1", "backup_dir": "/"}, "backup_dir"),
        ({"state": "restore"}, "backup_file: a restore needs"),
        ({"state": "restore", "backup_file": "f.dump", "backup_sha256": "x" * 64}, "sha256"),
        (
            {
                "state": "restore",
                "backup_file": "f.dump",
                "role": "standby",
                "primary_address": "10.0.0.5",
            },
            "a standby is read-only",
        ),
        ({"kind": "redis", "version": "7", "state": "backup", "backup_label": "v1"}, "postgresql"),
    ],
)
def test_unsafe_backup_parameters_are_refused_by_name(changes: dict[str, Any], error: str) -> None:
    with pytest.raises(acc.AccessoryError, match=re.escape(error)):
        acc.check_params(params(**changes))


def test_only_the_addresses_and_the_port_take_a_restart() -> None:
    plain = acc.pg_conf("shop-lab", ["10.0.0.5", "127.0.0.1"], 5432)
    replicating = acc.pg_conf("shop-lab", ["10.0.0.5", "127.0.0.1"], 5432, replication=True)
    assert not acc.pg_conf_needs_restart(plain, replicating)  # wal_keep_size: a reload
    assert not acc.pg_conf_needs_restart(replicating, plain)
    assert acc.pg_conf_needs_restart(plain, acc.pg_conf("shop-lab", ["10.0.0.5"], 5432))
    assert acc.pg_conf_needs_restart(plain, acc.pg_conf("shop-lab", ["10.0.0.5"], 5433))
    assert acc.pg_conf_needs_restart(None, plain)  # a new file: the cluster's first settings
