"""A vault that decrypts to something other than a YAML mapping is refused naming the file,
and its decrypted content never appears in the message, a traceback or the output."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from deployer.config.models import Secrets
from deployer.errors import ConfigError
from deployer.exitcodes import ExitCode
from deployer.secrets import resolve

pytestmark = pytest.mark.hostile

ROOT = Path(__file__).resolve().parents[3]
CANARY = "vaultcanary" + secrets.token_hex(8)
PASSWORD = "vaultpassword" + secrets.token_hex(8)

# plaintexts that are not a YAML mapping of names to values, each holding the canary
PLAINTEXTS: dict[str, bytes] = {
    "tab indentation": f"db_password: {CANARY}\n\tapi_key: {CANARY}\n".encode(),
    "tab after a key": f"db_password:\n\t{CANARY}\n".encode(),
    "unclosed quote": f'db_password: "{CANARY}\n'.encode(),
    "undefined alias": f"db_password: *{CANARY}\n".encode(),
    "bad escape": f'db_password: "\\{CANARY[0]}{CANARY}"\n'.replace("\\v", "\\q").encode(),
    "a list": f"- {CANARY}\n- {CANARY}\n".encode(),
    "a scalar": f"{CANARY}\n".encode(),
    "a complex key": f"? [{CANARY}]\n: 1\n".encode(),
    "a duplicate key": f"{CANARY}: 1\n{CANARY}: 2\n".encode(),
    "not UTF-8": b"db_password: \xff\xfe" + CANARY.encode() + b"\n",
    "two documents": f"a: {CANARY}\n---\nb: {CANARY}\n".encode(),
    "deep nesting": (f"db_password: {CANARY}\nx: " + "[" * 5000 + "]" * 5000 + "\n").encode(),
}


def write_vault(directory: Path, plain: bytes) -> Path:
    from ansible.parsing.vault import VaultLib, VaultSecret

    vault = VaultLib([("default", VaultSecret(PASSWORD.encode()))])
    path = directory / "secrets.vault.yml"
    path.write_bytes(vault.encrypt(plain))
    return path


def vault_settings() -> Secrets:
    return Secrets.model_validate(
        {
            "vault_file": "secrets.vault.yml",
            "vault_password_env": "TEST_VAULT_PASSWORD",
            "env": {"DB_PASSWORD": {"vault": "db_password"}},
        }
    )


@pytest.mark.parametrize("case", list(PLAINTEXTS))
def test_malformed_vault_content_is_never_shown(tmp_path: Path, case: str) -> None:
    path = write_vault(tmp_path, PLAINTEXTS[case])
    with pytest.raises(ConfigError) as info:
        resolve(vault_settings(), tmp_path, {"TEST_VAULT_PASSWORD": PASSWORD})
    (problem,) = info.value.problems
    assert problem.startswith(f"secrets.vault_file: {path}: ")
    assert "not a YAML mapping" in problem
    assert CANARY not in problem
    assert CANARY[:6] not in problem
    # no chained YAML error (whose text quotes the document) would show in a traceback
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


def test_a_well_formed_vault_still_resolves(tmp_path: Path) -> None:
    write_vault(tmp_path, f"db_password: {CANARY}\n".encode())
    env = {"TEST_VAULT_PASSWORD": PASSWORD}
    assert resolve(vault_settings(), tmp_path, env) == {"DB_PASSWORD": CANARY}


def test_an_empty_vault_lacks_the_key(tmp_path: Path) -> None:
    write_vault(tmp_path, b"")
    with pytest.raises(ConfigError) as info:
        resolve(vault_settings(), tmp_path, {"TEST_VAULT_PASSWORD": PASSWORD})
    assert info.value.problems == (
        "secrets.env.DB_PASSWORD.vault: key 'db_password' is not in the vault",
    )


def test_a_password_file_that_is_not_text_is_refused(tmp_path: Path) -> None:
    (tmp_path / "vault.pass").write_bytes(b"\xff\xfe" + CANARY.encode())
    write_vault(tmp_path, f"db_password: {CANARY}\n".encode())
    settings = Secrets.model_validate(
        {
            "vault_file": "secrets.vault.yml",
            "vault_password_file": "vault.pass",
            "env": {"DB_PASSWORD": {"vault": "db_password"}},
        }
    )
    with pytest.raises(ConfigError) as info:
        resolve(settings, tmp_path, {})
    (problem,) = info.value.problems
    assert problem.startswith("secrets.vault_password_file: ")
    assert CANARY not in problem


CONFIG = """\
app: {name: myapp}
service: {command: /bin/true, port: 8000}
health: {tcp: {}}
secrets:
  vault_file: secrets.vault.yml
  vault_password_env: TEST_VAULT_PASSWORD
  env: {DB_PASSWORD: {vault: db_password}}
environments:
  prod:
    hosts: {web: [{address: 127.0.0.1, port: 9}]}
    ssh: {connect_timeout: 1}
"""


@pytest.mark.parametrize("case", ["tab indentation", "unclosed quote", "undefined alias"])
def test_the_cli_exits_2_without_a_traceback_or_the_content(tmp_path: Path, case: str) -> None:
    write_vault(tmp_path, PLAINTEXTS[case])
    (tmp_path / "deploy.yml").write_text(CONFIG)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TEST_VAULT_PASSWORD": PASSWORD}
    env.pop("DEPLOYER_CONFIG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "deployer", "deploy", "prod", "--version", "v1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == ExitCode.BAD_INPUT, (proc.stdout, proc.stderr)
    assert "secrets.vault_file" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert CANARY not in proc.stderr + proc.stdout
    assert not (tmp_path / ".deployer" / "ledger.sqlite3").exists()
