"""deployer_hook on a host (no lab): the hook runs in a release as the service user, with the
env files read as systemd reads them, its output masked and cut to its tail, its process
group killed on timeout, and nothing below deploy_to followed if it is a link. Run as root
(as the module runs on the hosts); `nobody` stands in for the service user."""

from __future__ import annotations

import os
import pwd
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "collections"))

from ansible_collections.deployer.core.plugins.module_utils import envfile
from ansible_collections.deployer.core.plugins.modules import deployer_hook, deployer_release
from ansible_collections.deployer.core.plugins.plugin_utils import lean
from test_lean import run_host

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the module runs as root on the hosts")

USER = "nobody"
UID = pwd.getpwnam(USER).pw_uid
DB_PASSWORD = "s3cr3t-db-pass"
DATABASE_URL = f"postgresql://shop:{DB_PASSWORD}@db.internal:5432/shop"


@pytest.fixture
def tree() -> Iterator[Path]:
    """<deploy_to>/releases/v1/{api/, .deployer/env, .deployer/env.database} as
    deployer_release leaves it: root's, writable by root alone; plus a shared directory
    the service user may write. Under /tmp, not pytest's tmp_path, whose parents the
    service user cannot enter."""
    base = Path(tempfile.mkdtemp(prefix="deployer-hook-test-"))
    deploy_to = base / "srv"
    release = deploy_to / "releases" / "v1"
    (release / "api").mkdir(parents=True)
    (release / ".deployer").mkdir()
    for path in (base, deploy_to, deploy_to / "releases", release, release / "api"):
        path.chmod(0o755)
    write_env(release, "env", {"API_TOKEN": "tok-123456", "SHARED": "from-env", "ONE": "1"})
    write_env(release, "env.database", {"DATABASE_URL": DATABASE_URL, "SHARED": "from-db"})
    shared = deploy_to / "shared"
    shared.mkdir(mode=0o755)
    os.chown(shared, UID, -1)
    yield deploy_to
    shutil.rmtree(base)


def write_env(release: Path, name: str, env: dict[str, str]) -> None:
    path = release / ".deployer" / name
    path.write_bytes(deployer_release.render_env(env, list(env)))
    path.chmod(0o600)


def params(deploy_to: Path, command: list[str], **more: Any) -> dict[str, Any]:
    return {
        "name": "before_switch",
        "deploy_to": str(deploy_to),
        "version": "v1",
        "directory": "api",
        "user": USER,
        "command": command,
        "env": {},
        "env_files": ["env", "env.database"],
        "timeout": 30,
        "output_limit": 65536,
        **more,
    }


def sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


def failure(p: dict[str, Any]) -> deployer_hook.HookError:
    with pytest.raises(deployer_hook.HookError) as info:
        deployer_hook.run(p)
    return info.value


# --- environment ---------------------------------------------------------------------------


def test_the_env_files_are_merged_in_order_then_env_on_a_clean_environment(tree: Path) -> None:
    os.environ["DEPLOYER_TEST_LEAK"] = "leaked"
    try:
        # the env files' values are masked in the output: show a part of SHARED only
        script = 'env; echo "SHARED_FROM=${SHARED#from-}"'
        hook = deployer_hook.run(params(tree, sh(script), env={"PLAIN": "p", "ONE": 2}))
    finally:
        del os.environ["DEPLOYER_TEST_LEAK"]
    env = dict(line.split("=", 1) for line in hook["output"].splitlines())
    env.pop("PWD")  # the shell's own
    assert env == {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": pwd.getpwnam(USER).pw_dir,
        "USER": USER,
        "LANG": "C.UTF-8",
        "API_TOKEN": "********",
        "SHARED": "********",
        "SHARED_FROM": "db",  # the later file wins
        "ONE": "2",  # env wins over the files
        "DATABASE_URL": "********",
        "PLAIN": "p",
    }
    assert hook["rc"] == 0
    assert not hook["timed_out"]
    assert not hook["truncated"]


def test_a_missing_env_file_is_skipped_and_only_named_files_are_read(tree: Path) -> None:
    hook = deployer_hook.run(
        params(
            tree,
            sh('echo "[${SHARED#from-}][${DATABASE_URL:-none}]"'),
            env_files=["env", "env.redis"],
        )
    )
    assert hook["output"] == "[env][none]\n"


@pytest.mark.parametrize(
    "value",
    [
        'a "q" $HOME `x` \\n \\\\',
        "multi\nline\n",
        "  spaced  ",
        "#not-a-comment",
        "it's",
        "",
        "ünïcode ✓",
    ],
)
def test_the_env_files_read_back_exactly_what_deployer_release_wrote(value: str) -> None:
    text = deployer_release.render_env({"V": value, "A": "1"}, ["V"])
    assert dict(envfile.parse(text)) == {"V": value, "A": "1"}


def test_the_env_parser_reads_what_systemd_reads() -> None:
    text = (
        "# comment\n; also a comment\n"
        "PLAIN=  some value  \n"
        "SINGLE='a \\ \"b\"'\n"
        'DOUBLE="x \\q \\$y"\n'
        "JOINED='a'\"b\"c\n"
        "LITERAL=a'b'\"c\"\n"
        "CONT=one\\\ntwo\n"
        "ESC=a\\ b\\\\c\n"
        "EMPTY=\n"
        "  SPACED_KEY  =v\n"
        "BAD-NAME=x\n"
        "NOEQUALS\n"
        "LAST=final"
    )
    assert dict(envfile.parse(text)) == {
        "PLAIN": "some value",
        "SINGLE": 'a \\ "b"',
        "DOUBLE": "x \\q $y",
        "JOINED": "abc",  # quoted parts where a value starts are joined
        "LITERAL": "a'b'\"c\"",  # inside an unquoted value quotes are plain characters
        "CONT": "onetwo",
        "ESC": "a b\\c",
        "EMPTY": "",
        "SPACED_KEY": "v",
        "LAST": "final",
    }


def test_the_hook_runs_as_the_user_with_its_groups_in_the_service_directory(tree: Path) -> None:
    hook = deployer_hook.run(params(tree, sh("id -u; id -g; id -G; pwd; cat /proc/self/status")))
    lines = hook["output"].splitlines()
    entry = pwd.getpwnam(USER)
    assert lines[0] == str(UID)
    assert lines[1] == str(entry.pw_gid)
    assert sorted(lines[2].split()) == sorted(str(g) for g in os.getgrouplist(USER, entry.pw_gid))
    assert lines[3] == str(tree / "releases" / "v1" / "api")
    status = dict(line.split(":", 1) for line in lines[4:] if ":" in line)
    assert status["Uid"].split() == [str(UID)] * 4  # real, effective, saved, fs: no way back


def test_the_hook_writes_where_the_service_user_may_and_nowhere_else(tree: Path) -> None:
    hook = deployer_hook.run(
        params(
            tree, sh(f"echo done > {tree}/shared/marker; echo x > ../code.py; true"), directory=""
        )
    )
    assert (tree / "shared" / "marker").stat().st_uid == UID
    assert not (tree / "releases" / "code.py").exists()
    assert "Permission denied" in hook["output"]


def test_stdin_is_dev_null(tree: Path) -> None:
    hook = deployer_hook.run(params(tree, sh("cat; echo rc=$?")))
    assert hook["output"] == "rc=0\n"


# --- masking and the tail ----------------------------------------------------------------


def test_env_file_values_and_url_passwords_are_masked(tree: Path) -> None:
    script = (
        f"echo token=tok-123456; echo 'connecting to {DATABASE_URL}';"
        f" echo 'password {DB_PASSWORD} alone'; echo one=1;"
        " echo 'other url redis://:pw@cache:6379/0'"
    )
    output = deployer_hook.run(params(tree, sh(script)))["output"]
    assert "tok-123456" not in output
    assert DB_PASSWORD not in output
    assert "pw@" not in output
    assert output.splitlines() == [
        "token=********",
        "connecting to ********",  # the whole value is a secret too
        "password ******** alone",
        "one=1",  # shorter than 4 characters: not masked
        "other url redis://:********@cache:6379/0",  # any URL's password in the output
    ]


def test_plain_settings_of_the_app_s_env_file_are_shown_and_its_secrets_masked(
    tree: Path,
) -> None:
    release = tree / "releases" / "v1"
    path = release / ".deployer" / "env"
    path.write_bytes(
        deployer_release.render_env({"GREETING": "hello", "API_TOKEN": "tok-123456"}, ["API_TOKEN"])
    )
    output = deployer_hook.run(params(tree, sh('echo "$GREETING $API_TOKEN"'), env_files=["env"]))[
        "output"
    ]
    assert output == "hello ********\n"


def test_a_percent_encoded_url_password_is_masked_as_written_and_decoded(tree: Path) -> None:
    write_env(tree / "releases" / "v1", "env.redis", {"REDIS_URL": "redis://u:p%40ss!w@r/0"})
    output = deployer_hook.run(
        params(tree, sh("echo 'a p%40ss!w b p@ss!w'"), env_files=["env.redis"])
    )["output"]
    assert output == "a ******** b ********\n"


def test_long_output_keeps_the_tail_with_a_note_of_what_was_cut(tree: Path) -> None:
    script = "i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done; echo tok-123456"
    hook = deployer_hook.run(params(tree, sh(script), output_limit=100))
    first, rest = hook["output"].split("\n", 1)
    assert hook["truncated"]
    total = sum(len(f"line-{i}\n") for i in range(2000)) + len("tok-123456\n")
    assert first == f"[deployer: the first {total - 100} bytes of the hook's output were cut]"
    assert rest.endswith("line-1999\n********\n")
    assert len(rest) <= 100


def test_a_secret_cut_in_half_by_the_tail_is_masked_too() -> None:
    secret = b"abcdefghijkl"
    raw = b"...." + secret + b"tail"  # what the Tail kept (limit 10 + 12 of padding)
    # the output was cut 5 bytes into the secret: "fghijkl" would show
    text, truncated = deployer_hook.mask_tail(raw[9:], 100, 10, [secret])
    assert truncated
    assert "fghijkl" not in text
    assert "ijkl" not in text
    assert text.endswith("********tail")
    # the cut falls inside a whole secret of the kept bytes: its mask is kept whole
    text, _ = deployer_hook.mask_tail(raw, 100, 8, [secret])
    assert text.endswith("\n********tail")


def test_no_secret_in_a_short_output_needs_no_note() -> None:
    assert deployer_hook.mask_tail(b"ok\n", 3, 10, []) == ("ok\n", False)


# --- failures ----------------------------------------------------------------------------


def test_a_non_zero_exit_fails_with_the_masked_last_line(tree: Path) -> None:
    error = failure(params(tree, sh("echo working; echo 'auth failed for tok-123456' >&2; exit 3")))
    assert str(error) == "hook before_switch failed (exit 3): auth failed for ********"
    assert error.hook["rc"] == 3
    assert error.hook["output"].startswith("working\n")


def test_a_timeout_kills_the_whole_process_group(tree: Path) -> None:
    pids = tree / "shared" / "pids"
    script = f"sleep 300 & echo $! > {pids}; echo started; sleep 300"
    started = time.monotonic()
    error = failure(params(tree, sh(script), timeout=1, directory=""))
    assert time.monotonic() - started < 10
    assert str(error) == "hook before_switch timed out after 1 s: started"
    assert error.hook["timed_out"]
    assert error.hook["rc"] == -9
    child = int(pids.read_text())
    assert not alive(child)


def test_what_a_finished_hook_leaves_in_its_group_is_killed(tree: Path) -> None:
    pids = tree / "shared" / "pids"
    started = time.monotonic()
    hook = deployer_hook.run(params(tree, sh(f"sleep 300 & echo $! > {pids}; echo bye")))
    assert time.monotonic() - started < 10  # not held up by the child holding the pipe
    assert hook["output"] == "bye\n"
    assert hook["rc"] == 0
    assert not alive(int(pids.read_text()))


def alive(pid: int) -> bool:
    """Running (a zombie nobody reaped here does not count)."""
    for _ in range(50):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        if state in ("Z", "X"):
            return False
        time.sleep(0.1)
    return True


def test_a_command_that_does_not_exist_fails_cleanly(tree: Path) -> None:
    error = failure(params(tree, ["no-such-migrate"]))
    assert "could not start no-such-migrate" in str(error)
    assert error.hook["rc"] is None


# --- refused: nothing below deploy_to is followed ------------------------------------------


def test_a_symlinked_release_is_refused(tree: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    (tree / "releases" / "v1").rename(elsewhere)
    (tree / "releases" / "v1").symlink_to(elsewhere)
    with pytest.raises(deployer_hook.Refused, match="releases/v1 is a symlink"):
        deployer_hook.run(params(tree, ["true"]))


def test_a_symlinked_directory_is_refused(tree: Path) -> None:
    api = tree / "releases" / "v1" / "api"
    api.rmdir()
    api.symlink_to(tree / "shared")
    with pytest.raises(deployer_hook.Refused, match="releases/v1/api is a symlink"):
        deployer_hook.run(params(tree, ["true"]))


def test_a_symlinked_env_file_is_refused(tree: Path, tmp_path: Path) -> None:
    (tmp_path / "stolen").write_text("X=1\n")
    (tree / "releases" / "v1" / ".deployer" / "env.cache").symlink_to(tmp_path / "stolen")
    with pytest.raises(deployer_hook.Refused, match=r"env\.cache is a symlink"):
        deployer_hook.run(params(tree, ["true"], env_files=["env.cache"]))


def test_a_release_the_service_user_can_change_is_refused(tree: Path) -> None:
    os.chown(tree / "releases" / "v1" / "api", UID, -1)
    with pytest.raises(deployer_hook.Refused, match="is not root's alone"):
        deployer_hook.run(params(tree, ["true"]))


def test_a_missing_release_is_refused(tree: Path) -> None:
    with pytest.raises(deployer_hook.Refused, match="releases/v9 does not exist"):
        deployer_hook.run(params(tree, ["true"], version="v9"))


@pytest.mark.parametrize("directory", ["..", "../v2", "api/../..", "/etc", ".deployer", "a/b", "."])
def test_directory_must_be_one_plain_name(tree: Path, directory: str) -> None:
    with pytest.raises(deployer_hook.Refused, match="invalid directory"):
        deployer_hook.run(params(tree, ["true"], directory=directory))


@pytest.mark.parametrize("name", ["meta.json", "../env", "env.", "env.Bad", "units", "env/x"])
def test_env_files_must_be_env_files(tree: Path, name: str) -> None:
    with pytest.raises(deployer_hook.Refused, match="invalid env file"):
        deployer_hook.run(params(tree, ["true"], env_files=[name]))


def test_check_mode_checks_but_does_not_run(tree: Path) -> None:
    hook = deployer_hook.run(params(tree, sh(f"touch {tree}/shared/ran")), check=True)
    assert hook["rc"] is None
    assert not (tree / "shared" / "ran").exists()


def test_current_runs_in_the_release_current_points_at_and_says_which(tree: Path) -> None:
    (tree / "current").symlink_to("releases/v1")
    hook = deployer_hook.run(params(tree, sh("pwd"), version=None, current=True))
    assert hook["version"] == "v1"
    assert hook["output"].strip().endswith("/releases/v1/api")
    (tree / "current").unlink()
    (tree / "current").symlink_to("/etc")
    with pytest.raises(deployer_hook.Refused, match="does not point into releases/"):
        deployer_hook.run(params(tree, sh("pwd"), version=None, current=True))
    (tree / "current").unlink()
    with pytest.raises(deployer_hook.Missing, match="no release runs here"):
        deployer_hook.run(params(tree, sh("pwd"), version=None, current=True))
    with pytest.raises(deployer_hook.Refused, match="not both"):
        deployer_hook.run(params(tree, sh("pwd"), current=True))


# --- the module, as the lean runner runs it on a host --------------------------------------


def test_the_module_reports_stage_hook_only_on_failure(tree: Path) -> None:
    source = lean.module_spec("deployer_hook")[0]
    rc, result = run_host("deployer_hook", source, params(tree, sh("echo ok")))
    assert rc == 0
    assert result["changed"] is True
    assert result["deployer"] == {
        "hook": {
            "name": "before_switch",
            "version": "v1",
            "rc": 0,
            "seconds": result["deployer"]["hook"]["seconds"],
            "timed_out": False,
            "output": "ok\n",
            "truncated": False,
        }
    }
    rc, result = run_host("deployer_hook", source, params(tree, sh("echo $API_TOKEN; exit 4")))
    assert rc == 1
    assert result["failed"] is True
    assert result["changed"] is True  # it ran
    assert result["msg"] == "hook before_switch failed (exit 4): ********"
    assert result["deployer"]["stage"] == "hook"
    assert result["deployer"]["hook"]["output"] == "********\n"
    rc, result = run_host("deployer_hook", source, params(tree, ["true"], directory=".."))
    assert rc == 1
    assert result["msg"].startswith("hook before_switch cannot run: invalid directory")
    assert result["deployer"]["stage"] == "hook"
    assert result["deployer"]["hook"]["rc"] is None
    assert not result.get("changed")


@pytest.mark.parametrize("cut", [1, 5, 63, 64, 65, 3000, 4095])
def test_the_rest_of_a_long_secret_at_the_cut_is_masked(cut: int) -> None:
    secret = bytes(range(256)) * 16  # 4 KiB, like a certificate in an env file
    raw = secret[cut:] + b"\nafter\n"
    text, truncated = deployer_hook.mask_tail(raw, len(raw) + cut, len(raw), [secret])
    assert truncated
    assert text.endswith("\n********\nafter\n")
    # a secret of which only a part was printed, with nothing after it
    text, _ = deployer_hook.mask_tail(secret[cut : cut + 100], 10_000, 100, [secret])
    assert text.endswith("\n********")
