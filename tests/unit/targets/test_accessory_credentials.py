"""The accessories' credentials and the project's vault: what the vault holds goes to the
hosts inside the run's encrypted secret vars; what it lacks comes back from the hosts sealed
with a one-time pad, is unsealed in memory and appended to the vault without disturbing a
byte of what was there. A host's reply is parsed, never trusted."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from ansible.parsing.vault import VaultLib, VaultSecret

from deployer import secrets as secret_values
from deployer.config.loader import load_project
from deployer.config.resolve import Target, resolve
from deployer.errors import ConfigError
from deployer.exitcodes import ExitCode
from deployer.targets.ssh.context import SshSession
from deployer.targets.ssh.replies import Reply, checked
from deployer.targets.ssh.runner import HostOutcome, RunResult

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "collections"))
from ansible_collections.deployer.core.plugins.module_utils import accessory as acc

ROOT = Path(__file__).resolve().parents[3]
SHOP = ROOT / "tests" / "golden" / "accessories" / "shop" / "deploy.yml"
PASSWORD = "vaultpassword" + secrets.token_hex(8)
SECRETS = "secrets: {vault_file: secrets.vault.yml, vault_password_env: SHOP_VAULT_PASSWORD}\n"
DB = "deployer.shop-production.database.password"
REPL = "deployer.shop-production.database.replication_password"
CACHE = "deployer.shop-production.cache.password"


def vault_lib() -> VaultLib:
    return VaultLib([("default", VaultSecret(PASSWORD.encode()))])


def decrypt(path: Path) -> str:
    return vault_lib().decrypt(path.read_bytes()).decode()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "deploy.yml").write_text(SHOP.read_text() + SECRETS)
    (tmp_path / "secrets.vault.yml").write_bytes(
        vault_lib().encrypt("# kept by hand\napi_key: abc123\n", vault_id="prod")
    )
    monkeypatch.setenv("SHOP_VAULT_PASSWORD", PASSWORD)
    return tmp_path


def target_of(project: Path) -> Target:
    return resolve(load_project(project / "deploy.yml"), "production")


def session_of(project: Path) -> SshSession:
    target = target_of(project)
    found = secret_values.accessory_credentials(target.accessories, target.secrets, project)
    return SshSession(target=target, credentials=found, keeps_credentials=True)


def test_the_vault_keys_name_the_instance_the_kind_and_the_credential(project: Path) -> None:
    target = target_of(project)
    database, cache = target.accessory("database"), target.accessory("cache")
    assert database is not None
    assert cache is not None
    assert [database.vault_key(c) for c in database.credentials] == [DB, REPL]
    assert [cache.vault_key(c) for c in cache.credentials] == [CACHE]


def test_a_vault_credential_that_is_no_password_is_refused_by_key_only(project: Path) -> None:
    canary = "canary" + secrets.token_hex(6) + "\u00e9"
    (project / "secrets.vault.yml").write_bytes(vault_lib().encrypt(f'"{DB}": "{canary}"\n'))
    target = target_of(project)
    with pytest.raises(ConfigError) as raised:
        secret_values.accessory_credentials(target.accessories, target.secrets, project)
    assert DB in raised.value.problems[0]
    assert canary not in str(raised.value.problems)


def test_a_bad_vault_credential_exits_2_before_any_host_is_touched(project: Path) -> None:
    (project / "secrets.vault.yml").write_bytes(vault_lib().encrypt(f'"{CACHE}": [1, 2]\n'))
    proc = subprocess.run(
        [sys.executable, "-m", "deployer", "accessory", "setup", "production"],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, "SHOP_VAULT_PASSWORD": PASSWORD},
        timeout=60,
    )
    assert proc.returncode == ExitCode.BAD_INPUT, proc.stdout + proc.stderr
    assert CACHE in proc.stdout + proc.stderr
    assert not (project / ".deployer" / "runs").exists()  # no run was laid out


def test_what_the_vault_holds_goes_as_given_and_a_pad_only_for_what_it_lacks(
    project: Path,
) -> None:
    (project / "secrets.vault.yml").write_bytes(vault_lib().encrypt(f'"{DB}": "dbsecret1"\n'))
    session = session_of(project)
    assert session.credentials == {"database": {"password": "dbsecret1"}}
    pads = session._pads()
    assert set(pads) == {"database", "cache"}  # the replication password and the cache's lack
    assert all(len(p) == acc.SEAL_BYTES * len(acc.SEALED) for p in pads.values())
    assert pads["database"] != pads["cache"]
    sent = session._secret_vars(pads)
    assert sent is not None
    kept = sent["deployer_accessory_secrets"]
    assert kept["database"]["password"] == "dbsecret1"
    assert base64.b64decode(kept["database"]["seal"]) == pads["database"]
    assert set(kept["cache"]) == {"seal"}


def test_no_pad_goes_when_the_vault_holds_everything(project: Path) -> None:
    (project / "secrets.vault.yml").write_bytes(
        vault_lib().encrypt(f'"{DB}": "a1234"\n"{REPL}": "b1234"\n"{CACHE}": "c1234"\n')
    )
    session = session_of(project)
    assert session._pads() == {}
    sent = session._secret_vars({})
    assert sent is not None
    assert sent["deployer_accessory_secrets"]["cache"] == {"password": "c1234"}


def test_the_module_s_seal_is_what_the_controller_unseals() -> None:
    assert (acc.SEALED, acc.SEAL_BYTES) == (secret_values.SEALED, secret_values.SEAL_BYTES)
    pad = secret_values.new_pad()
    checked_pad = acc.check_seal(base64.b64encode(pad).decode())
    for credential in acc.SEALED:
        value = secrets.token_urlsafe(32)
        sealed = acc.seal(value, checked_pad, credential)
        assert value not in sealed
        assert value not in base64.b64decode(sealed).decode("latin-1")
        assert secret_values.unseal(sealed, pad, credential) == value
        assert secret_values.unseal(sealed, secret_values.new_pad(), credential) != value
    longest = "x" * 1024
    assert secret_values.unseal(acc.seal(longest, checked_pad, "password"), pad, "password") == (
        longest
    )


def test_the_two_values_use_separate_halves_of_the_pad() -> None:
    pad = secret_values.new_pad()
    one = base64.b64decode(acc.seal("same-value", pad, "password"))
    two = base64.b64decode(acc.seal("same-value", pad, "replication_password"))
    assert one != two


@pytest.mark.parametrize(
    "sealed", [None, 7, "", "not base64!", "A" * 2000, base64.b64encode(b"\x00" * 8).decode()]
)
def test_a_sealed_reply_of_any_other_shape_unseals_to_nothing(sealed: object) -> None:
    assert secret_values.unseal(sealed, b"\x00" * 2048, "password") is None


def test_the_module_refuses_a_pad_of_the_wrong_size_without_echoing_it() -> None:
    short = base64.b64encode(b"k" * 16).decode()
    with pytest.raises(acc.AccessoryError) as raised:
        acc.check_seal(short)
    assert short not in str(raised.value)
    with pytest.raises(acc.AccessoryError):
        acc.check_seal("%%%")


def test_a_reply_s_sealed_values_are_kept_by_shape_only() -> None:
    good = base64.b64encode(b"x" * 43).decode()
    reply = Reply.of(
        checked(
            {
                "accessories": {
                    "postgresql": {"sealed": {"password": good, "replication_password": "$(id)"}},
                    "redis": {"sealed": {"password": 5, "other": good}},
                    "mysql": {"sealed": {"password": good}},
                }
            }
        )
    )
    assert reply.sealed == {"postgresql": {"password": good}}


def _sealed_reply(
    host: str, pads: dict[str, bytes], values: dict[str, dict[str, str]]
) -> RunResult:
    report = {
        engine: {"sealed": {c: acc.seal(v, pads[kind], c) for c, v in found.items()}}
        for kind, engine, found in (
            ("database", "postgresql", values.get("database", {})),
            ("cache", "redis", values.get("cache", {})),
        )
        if found
    }
    outcome = HostOutcome(host, ok=2, data=checked({"accessories": report}))
    return RunResult("accessories.yml", "successful", 0, {host: outcome}, 1.0, Path("/nonexistent"))


def test_sealed_credentials_are_appended_to_the_vault_keeping_its_text(project: Path) -> None:
    session = session_of(project)
    pads = session._pads()
    values = {
        "database": {"password": "db-" + secrets.token_hex(8), "replication_password": "r-x1"},
        "cache": {"password": "cache-" + secrets.token_hex(8)},
    }
    session._keep_sealed(_sealed_reply("db1", pads, values), pads)
    text = decrypt(project / "secrets.vault.yml")
    assert text.startswith("# kept by hand\napi_key: abc123\n")
    assert (
        (project / "secrets.vault.yml").read_bytes().startswith(b"$ANSIBLE_VAULT;1.2;AES256;prod")
    )
    target = target_of(project)
    again = secret_values.accessory_credentials(target.accessories, target.secrets, project)
    assert again == values
    assert session.credentials == values  # later runs of the command send them as given
    assert session._pads() == {}
    assert session.notes == [f"added to the vault (secrets.vault.yml): {DB}, {REPL}, {CACHE}"]
    assert session.redact(f"url {values['cache']['password']}") == "url ********"


def test_keys_the_vault_already_has_are_never_replaced(project: Path) -> None:
    (project / "secrets.vault.yml").write_bytes(vault_lib().encrypt(f'"{DB}": "first"\n'))
    target = target_of(project)
    added = secret_values.keep_in_vault(
        target.secrets, project, {DB: "second", CACHE: "c1234"}, project / "lock"
    )
    assert added == (CACHE,)
    assert decrypt(project / "secrets.vault.yml") == f'"{DB}": "first"\n"{CACHE}": "c1234"\n'


def test_a_flow_style_vault_is_rewritten_as_yaml_with_every_key(project: Path) -> None:
    (project / "secrets.vault.yml").write_bytes(vault_lib().encrypt("{api_key: abc}"))
    target = target_of(project)
    secret_values.keep_in_vault(target.secrets, project, {CACHE: "c1234"}, project / "lock")
    assert secret_values.accessory_credentials(target.accessories, target.secrets, project) == {
        "cache": {"password": "c1234"}
    }
    assert "api_key: abc" in decrypt(project / "secrets.vault.yml")


def test_two_writers_of_one_checkout_lose_no_key(project: Path) -> None:
    target = target_of(project)
    keys = [f"k{i}" for i in range(8)]
    threads = [
        threading.Thread(
            target=secret_values.keep_in_vault,
            args=(target.secrets, project, {k: "v" + k}, project / "lock"),
        )
        for k in keys
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    text = decrypt(project / "secrets.vault.yml")
    assert all(f'"{k}": "v{k}"' in text for k in keys), text


def test_a_vault_that_cannot_be_written_leaves_a_note_and_the_host_s_copy(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = session_of(project)
    pads = session._pads()
    before = (project / "secrets.vault.yml").read_bytes()
    monkeypatch.delenv("SHOP_VAULT_PASSWORD")  # the vault cannot be opened any more
    session._keep_sealed(_sealed_reply("db1", pads, {"cache": {"password": "c1234"}}), pads)
    assert (project / "secrets.vault.yml").read_bytes() == before
    (note,) = session.notes
    assert "could not be added to the vault" in note
    assert "tries again" in note
    assert "c1234" not in note


def test_only_the_accessory_s_own_host_is_believed(project: Path) -> None:
    session = session_of(project)
    pads = session._pads()
    session._keep_sealed(_sealed_reply("db2", pads, {"cache": {"password": "c1234"}}), pads)
    assert session.notes == []
    assert "c1234" not in decrypt(project / "secrets.vault.yml")


def test_a_later_step_s_failure_keeps_what_the_accessory_step_sealed(project: Path) -> None:
    session = session_of(project)
    pads = session._pads()
    data = _sealed_reply("db1", pads, {"cache": {"password": "c1234"}}).hosts["db1"].data
    failed = RunResult(
        "prepare.yml",
        "failed",
        2,
        {"db1": HostOutcome("db1", failed=True, data=data)},
        1.0,
        Path("/nonexistent"),
    )
    session._keep_sealed(failed, pads)
    assert '"c1234"' in decrypt(project / "secrets.vault.yml")
