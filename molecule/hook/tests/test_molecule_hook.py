"""deployer.core.hook: the hook ran in the release as the service user (what it wrote in
the shared directory), a failing hook and a timed-out one failed with stage hook and
masked output."""

import hashlib
import json
import os
from pathlib import Path

import pytest

DB_PASSWORD = "molecule-db-pass"  # noqa: S105 - the fake one converge stages


@pytest.fixture
def app(host):
    return host.ansible.get_variables()["flow_app"]


@pytest.fixture
def results():
    path = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "hook-results.json")
    return json.loads(path.read_text())


def test_the_hook_ran_as_the_service_user_in_the_service_directory(host, app):
    record = host.file(f"/srv/{app}/shared/data/migrated")
    assert (record.user, record.group) == (app, app)
    user = host.user(app)
    assert record.content_string.splitlines()[:7] == [
        f"uid={user.uid}",
        f"gid={user.gid}",
        f"cwd=/srv/{app}/releases/v1/api",
        f"home={user.home}",
        "greeting=hello",  # from .deployer/env
        "target=head",  # from hook_env
        "database_url_set=True",  # from .deployer/env.database
    ]


def test_the_hook_got_the_variables_systemd_gives_the_service(host, app):
    """The same env file, read by systemd for a transient unit: the same values."""
    record = dict(
        line.split("=", 1)
        for line in host.file(f"/srv/{app}/shared/data/migrated").content_string.splitlines()
    )
    env_file = f"/srv/{app}/releases/v1/.deployer/env.database"
    for name, key in (("DATABASE_URL", "url_sha256"), ("DATABASE_OPTIONS", "options_sha256")):
        cmd = host.run(
            "systemd-run --quiet --wait --pipe --collect -p EnvironmentFile=%s printenv %s",
            env_file,
            name,
        )
        assert cmd.rc == 0, cmd.stderr
        assert hashlib.sha256(cmd.stdout.removesuffix("\n").encode()).hexdigest() == record[key]


def test_the_staged_unit_reads_the_extra_env_file_after_env(host, app):
    unit = host.file(f"/srv/{app}/releases/v1/.deployer/units/{app}.service").content_string
    assert [line for line in unit.splitlines() if line.startswith("EnvironmentFile=")] == [
        f"EnvironmentFile=-/srv/{app}/current/.deployer/env",
        f"EnvironmentFile=-/srv/{app}/current/.deployer/env.database",
    ]


def test_the_env_files_are_roots_alone(host, app):
    for name in ("env", "env.database"):
        env = host.file(f"/srv/{app}/releases/v1/.deployer/{name}")
        assert (env.mode, env.user, env.group) == (0o600, "root", "root")
    assert DB_PASSWORD in host.file(f"/srv/{app}/releases/v1/.deployer/env.database").content_string


def test_a_failing_hook_fails_with_stage_hook_and_masked_output(results):
    failed = results["failed"]
    masked = "FATAL: password authentication failed (password ********)"
    assert failed["msg"] == f"hook after_failure failed (exit 3): {masked}"
    assert failed["deployer"]["stage"] == "hook"
    hook = failed["deployer"]["hook"]
    assert (hook["name"], hook["rc"], hook["timed_out"]) == ("after_failure", 3, False)
    assert hook["output"].splitlines() == [
        "connecting to ********",
        masked,
    ]
    assert DB_PASSWORD not in json.dumps(results)


def test_a_hook_past_its_timeout_is_killed(host, results):
    timed_out = results["timed_out"]
    assert timed_out["msg"] == "hook after_switch timed out after 2 s: waiting"
    hook = timed_out["deployer"]["hook"]
    assert (hook["timed_out"], hook["rc"]) == (True, -9)
    assert 2 <= hook["seconds"] < 10
    assert not host.process.filter(comm="sleep")  # the whole group was killed
