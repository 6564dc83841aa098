"""The deployer.core playbooks against a real 2-host lab (systemd + sshd containers).

Every test deploys its own app (unique name, port and /srv/<app>) with plain
ansible-playbook, host key checking on, and looks at the hosts with docker exec.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import tarfile
from pathlib import Path

import pytest
from coll_harness import Deployment, Run

pytestmark = pytest.mark.integration


def ok(run: Run, what: str = "") -> None:
    assert run.rc == 0, f"{what} rc={run.rc}\n{run.stdout[-6000:]}\n{run.stderr[-2000:]}"


def failed_msgs(run: Run) -> list[str]:
    """Messages of failed results; the no_log staging task's own failure is censored (the
    rescue that follows re-raises its message), so it is left out."""
    return [
        e["result"]["msg"]
        for e in run.events
        if e["status"] == "failed" and "censored" not in e["result"]
    ]


def test_stage_switch_rollback_prune(deployment: Deployment) -> None:
    d = deployment
    d.extra_hosts = {}
    lab1, lab2 = d.hosts
    v1, v2, v3 = d.tarball("v1"), d.tarball("v2"), d.tarball("v3", source="broken")

    # v1: staged everywhere, nothing switched yet
    run = d.prepare("v1", v1)
    ok(run, "prepare v1")
    for host in d.hosts:
        staged = run.deployer("debug", host)
        assert "upload_skipped" not in staged
        assert staged["unpacked"] is True
        assert staged["units_changed"] == [f"{d.app}.service", f"{d.app}.socket"]
        assert d.current(host) == ""
        assert d.meta(host, "v1")["state"] == "staged"
        assert run.stage(host) is None  # only a failure reports a stage
    assert run.deployer("deployer_lock", lab1)["acquired"] is True

    run = d.switch("v1")
    ok(run, "switch v1")
    for host in d.hosts:
        result = run.deployer("deployer_switch", host)
        assert result == {
            **result,
            "previous": None,
            "current": "v1",
            "switched": True,
            "healthy": True,
        }
        assert d.get(host) == "hello from v1\n"
        assert d.meta(host, "v1")["state"] == "good"
        assert d.meta(host, "v1")["switched_at"]

    # layout: env file, shared links, ownership
    env = d.sh(lab1, f"stat -c '%a %U' {d.deploy_to}/current/.deployer/env").stdout.split()
    assert env == ["600", "root"]
    links = d.sh(
        lab1, f"readlink {d.deploy_to}/releases/v1/data {d.deploy_to}/releases/v1/config/local.ini"
    ).stdout.split()
    assert links == [f"{d.deploy_to}/shared/data", f"{d.deploy_to}/shared/config/local.ini"]
    owners = d.sh(lab1, f"stat -c '%U:%G' {d.deploy_to}/releases/v1/app.py").stdout.strip()
    assert owners == f"root:{d.app}"
    data = d.sh(lab1, f"stat -c %U {d.deploy_to}/shared/data").stdout.strip()
    assert data == d.app

    # idempotent: the same stage + switch again changes nothing and restarts nothing
    pid = d.sh(lab1, f"systemctl show -p MainPID --value {d.app}.service").stdout.strip()
    again = d.prepare("v1", v1)
    ok(again, "prepare v1 again")
    assert again.changed() == []
    assert again.deployer("debug", lab1)["upload_skipped"] is True  # nothing uploaded again
    assert again.deployer("debug", lab1)["unpacked"] is False
    again = d.switch("v1")
    ok(again, "switch v1 again")
    assert again.changed() == []
    assert again.deployer("deployer_switch", lab1)["restarted"] is False
    assert d.sh(lab1, f"systemctl show -p MainPID --value {d.app}.service").stdout.strip() == pid

    # v2
    ok(d.prepare("v2", v2), "prepare v2")
    ok(d.switch("v2"), "switch v2")
    assert [d.get(h) for h in d.hosts] == ["hello from v2\n"] * 2

    # v3 is broken: the switch fails and names the check and what it saw
    ok(d.prepare("v3", v3), "prepare v3")
    run = d.switch("v3", retries=3, interval=0.2)
    assert run.rc != 0
    expected = f"HTTP GET http://127.0.0.1:{d.port}/healthz returned 500, expected 200 (3 attempts)"
    assert all(expected in msg for msg in failed_msgs(run)), failed_msgs(run)
    # the module's failure, then the role's rescue failing with the same message
    assert sorted(e["host"] for e in run.events if e["status"] == "failed") == sorted(d.hosts * 2)
    result = run.deployer("deployer_switch", lab2)
    assert (result["healthy"], result["current"]) == (False, "v3")
    assert (result["previous"], result["attempts"]) == ("v2", 3)
    # switched, then unhealthy: the health check's failure, said by a field, not a task name
    for host in d.hosts:
        assert (run.reply(host)["switched"], run.stage(host)) == (True, "health")

    # facts see v3 live, v2 as the previous good one, and v3 unhealthy
    facts = d.play(
        "facts",
        {
            "deployer_hosts": d.hosts,
            "deployer_deploy_to": d.deploy_to,
            "deployer_health": d.health(),
        },
    )
    ok(facts, "facts")
    seen = facts.deployer("deployer_preflight", lab1)
    assert (seen["current"], seen["previous_good"]) == ("v3", "v2")
    assert [r["version"] for r in seen["releases"]] == ["v1", "v2", "v3"]
    assert facts.deployer("deployer_health", lab1)["healthy"] is False

    # rollback: every host back to v2, v3 marked bad
    run = d.play(
        "rollback",
        {
            "deployer_hosts": d.hosts,
            "deployer_rollback_to": {lab1: "v2", lab2: "v2"},
            "deployer_mark_bad": "v3",
            "deployer_reason": "healthz returned 500 on lab1",
            "deployer_deploy_to": d.deploy_to,
            "deployer_health": d.health(),
        },
    )
    ok(run, "rollback")
    for host in d.hosts:
        result = run.deployer("deployer_switch", host)
        assert (result["previous"], result["current"], result["marked_bad"]) == ("v3", "v2", "v3")
        assert d.get(host) == "hello from v2\n"
        meta = d.meta(host, "v3")
        assert (meta["state"], meta["reason"]) == ("bad", "healthz returned 500 on lab1")

    # staging refuses the bad version before anything is uploaded
    run = d.prepare("v3", v3)
    assert run.rc != 0
    assert any("v3 is marked bad on this host" in m for m in failed_msgs(run)), failed_msgs(run)
    for host in d.hosts:
        assert d.uploads(host) == []
        assert run.stage(host) == "stage"

    # prune (keep 3, counting current): bad first, then the oldest good; never current
    # nor the previous good one
    v4, v5 = d.tarball("v4"), d.tarball("v5")
    ok(d.prepare("v4", v4), "prepare v4")
    ok(d.switch("v4"), "switch v4")
    run = d.prepare("v5", v5, deployer_keep_releases=3)
    ok(run, "prepare v5")
    for host in d.hosts:
        assert run.deployer("debug", host)["pruned"] == ["v3", "v1"]
        assert d.ls(host, f"{d.deploy_to}/releases") == ["v2", "v4", "v5"]
        assert d.current(host) == "releases/v4"
        assert d.uploads(host) == []


def test_a_tarball_too_big_to_stream_is_uploaded_first_and_cleaned_up(
    deployment: Deployment,
) -> None:
    """Above the streaming limit (8 MiB) the tarball goes by sftp into a private temporary
    directory and the staging step reads it from there (below it, it rides on the staging
    step's stdin: no file transfer at all); the result and the cleanup are the same."""
    d = deployment
    small = d.prepare("v0", d.tarball("v0"), "-vvv")
    ok(small, "prepare a small v0")
    assert "PUT " not in small.stdout  # streamed
    blob = os.urandom(9 * 1024 * 1024)  # random: gzip cannot shrink it under the limit
    big = d.tarball("v1", extra={"blob.bin": blob})
    assert big.stat().st_size > 8 * 1024 * 1024
    run = d.prepare("v1", big, "-vvv")
    ok(run, "prepare a big v1")
    assert "PUT " in run.stdout  # one file transfer per host
    for host in d.hosts:
        staged = run.deployer("debug", host)
        assert staged["unpacked"] is True
        size = d.sh(host, f"stat -c %s {d.deploy_to}/releases/v1/blob.bin").stdout.strip()
        assert size == str(len(blob))
        assert d.uploads(host) == []


def test_sha256_mismatch_is_rejected_and_leaves_nothing(deployment: Deployment) -> None:
    d = deployment
    artifact = d.tarball("v1")
    run = d.prepare("v1", artifact, deployer_artifact_sha256="0" * 64)
    assert run.rc != 0
    msgs = failed_msgs(run)
    assert len(msgs) == 2, msgs
    assert all("sha256 mismatch" in m for m in msgs), msgs
    for host in d.hosts:
        assert run.stage(host) == "stage"  # it arrived: verifying it is staging's check
        assert d.ls(host, f"{d.deploy_to}/releases") == []
        assert d.uploads(host) == []


@pytest.mark.parametrize(
    ("name", "kind", "target", "expected"),
    [
        ("../evil", tarfile.REGTYPE, "", "'..'"),
        ("/etc/evil", tarfile.REGTYPE, "", "absolute"),
        ("escape", tarfile.SYMTYPE, "/etc", "points outside"),
        ("sub/up", tarfile.SYMTYPE, "../../x", "points outside"),
    ],
)
def test_unsafe_archive_is_rejected(
    deployment: Deployment, name: str, kind: bytes, target: str, expected: str
) -> None:
    d = deployment
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    content = b"x" if kind == tarfile.REGTYPE else None
    info.size = len(content or b"")
    artifact = d.tarball("v1", members=[(info, content)])
    run = d.prepare("v1", artifact, deployer_hosts=d.hosts[:1])
    assert run.rc != 0
    assert any(expected in m for m in failed_msgs(run)), failed_msgs(run)
    assert run.stage(d.hosts[0]) == "stage"
    assert d.ls(d.hosts[0], f"{d.deploy_to}/releases") == []
    assert d.uploads(d.hosts[0]) == []
    assert d.sh(d.hosts[0], "test -e /etc/evil").returncode != 0


def test_disk_full_during_unpack_leaves_the_host_as_it_was(deployment: Deployment) -> None:
    d = deployment
    host = d.hosts[0]
    # the room check refuses what obviously does not fit, before unpacking anything
    artifact = d.tarball("v1", extra={"blob": secrets.token_bytes(2_200_000)})
    run = d.prepare("v1", artifact, deployer_hosts=[host], deployer_required_bytes=10**15)
    assert run.rc != 0
    assert any("not enough disk space" in m for m in failed_msgs(run)), failed_msgs(run)
    assert run.stage(host) == "preflight"
    assert d.ls(host, f"{d.deploy_to}/releases") == []
    assert d.uploads(host) == []
    # and a disk that fills up while unpacking leaves no trace
    mount = d.sh(host, f"mkdir -p {d.deploy_to} && mount -t tmpfs -o size=1m tmpfs {d.deploy_to}")
    assert mount.returncode == 0, mount.stderr
    try:
        run = d.prepare("v1", artifact, deployer_hosts=[host], deployer_required_bytes=0)
        assert run.rc != 0
        msgs = failed_msgs(run)
        assert any("No space left on device" in m for m in msgs), msgs
        assert run.stage(host) == "upload"  # the streamed tarball did not fit: never arrived
        assert d.ls(host, f"{d.deploy_to}/releases") == []
        assert d.uploads(host) == []
    finally:
        d.sh(host, f"umount {d.deploy_to}")


def test_a_tarball_that_does_not_unpack_fails_in_the_stage_step(deployment: Deployment) -> None:
    """Right sha256, not a tarball: it arrived (no upload failure), unpacking failed."""
    d = deployment
    host = d.hosts[0]
    junk = d.workdir / "junk.tar.gz"
    junk.write_bytes(b"not a tarball\n" * 100)
    run = d.prepare(
        "v1",
        junk,
        deployer_hosts=[host],
        deployer_artifact_sha256=hashlib.sha256(junk.read_bytes()).hexdigest(),
    )
    assert run.rc != 0
    assert any("unpacking" in m for m in failed_msgs(run)), failed_msgs(run)
    assert run.stage(host) == "stage"
    assert d.ls(host, f"{d.deploy_to}/releases") == []


def test_a_monitoring_failure_reports_the_monitoring_stage(deployment: Deployment) -> None:
    """Any failure inside the monitoring role (here its first task cannot be templated, so
    nothing runs on the host) is reported as monitoring's, with the original message."""
    d = deployment
    host = d.hosts[0]
    playbook = d.workdir / "monitoring_fails.yml"
    playbook.write_text(
        f"""---
- name: Set up monitoring that cannot be
  hosts: {host}
  gather_facts: false
  become: true
  tasks:
    - name: Set up monitoring
      ansible.builtin.import_role:
        name: deployer.core.monitoring
        rolespec_validate: false
      vars:
        monitoring_server: "{{{{ deployer_no_such_variable }}}}"
"""
    )
    run = d.play(Path(playbook), {})
    assert run.rc != 0
    msgs = failed_msgs(run)
    assert len(msgs) == 2, msgs
    assert "deployer_no_such_variable" in msgs[0]
    assert msgs[1] == msgs[0]  # the rescue fails with the original message
    assert run.stage(host) == "monitoring"
    assert [e["action"] for e in run.events if e["status"] == "failed"] == [
        "ansible.builtin.apt",
        "ansible.builtin.fail",
    ]


def test_unreachable_host_stops_prepare_before_any_change(deployment: Deployment) -> None:
    d = deployment
    d.extra_hosts = {
        "lab9": {"ansible_host": "127.0.0.1", "ansible_port": 1, "ansible_user": "deploy"}
    }
    run = d.prepare("v1", d.tarball("v1"), deployer_hosts=[*d.hosts, "lab9"])
    assert run.rc == 4, run.stdout[-3000:]
    assert [e["host"] for e in run.events if e["status"] == "unreachable"] == ["lab9"]
    assert run.results("deployer_release") == []
    for host in d.hosts:
        assert d.ls(host, f"{d.deploy_to}/releases") == []
        assert d.uploads(host) == []


def test_lock_acquire_release_status(deployment: Deployment) -> None:
    d = deployment

    def lock(action: str, token: str, user: str = "alice") -> Run:
        return d.play(
            "lock", {"deployer_lock": d.lock(token, user=user), "deployer_lock_action": action}
        )

    first = lock("acquire", "token-a")
    ok(first, "acquire a")
    assert first.deployer("deployer_lock", d.hosts[0])["acquired"] is True
    assert [e["host"] for e in first.results("deployer_lock")] == [d.hosts[0]]

    second = lock("acquire", "token-b", user="bob")
    assert second.rc != 0
    held = second.deployer("deployer_lock", d.hosts[0])
    assert (held["held"], held["mine"], held["stale"]) == (True, False, False)
    assert held["holder"]["user"] == "alice"
    assert "held by alice" in failed_msgs(second)[0]
    assert second.stage(d.hosts[0]) == "lock"

    again = lock("acquire", "token-a")
    ok(again, "re-acquire a")
    assert again.changed() == []

    # a deployment that finds the lock taken stops before preflight
    run = d.prepare("v1", d.tarball("v1"), deployer_lock=d.lock("token-b", user="bob"))
    assert run.rc != 0
    assert run.results("deployer_preflight") + run.results("deployer_release") == []
    assert (run.reply(d.hosts[0])["held"], run.stage(d.hosts[0])) == (True, "lock")

    wrong = lock("release", "token-b")
    assert wrong.rc != 0
    assert "token does not match" in failed_msgs(wrong)[0]

    status = lock("status", "")
    ok(status, "status")
    assert status.deployer("deployer_lock", d.hosts[0])["holder"]["user"] == "alice"

    released = lock("release", "token-a")
    ok(released, "release a")
    assert released.deployer("deployer_lock", d.hosts[0])["released"] is True
    status = lock("status", "")
    assert status.deployer("deployer_lock", d.hosts[0])["held"] is False

    # a primary that is not an inventory host cannot silently skip the lock
    run = d.play(
        "lock",
        {"deployer_lock": d.lock("t"), "deployer_lock_action": "acquire", "deployer_primary": "x"},
    )
    assert run.rc != 0
    assert "deployer_primary x is not an inventory host" in failed_msgs(run)[0]
    assert run.results("deployer_lock") == []

    ok(lock("acquire", "token-b", user="bob"), "acquire b")
    broken = lock("break", "")
    ok(broken, "break")
    assert broken.deployer("deployer_lock", d.hosts[0])["holder"]["user"] == "bob"


def test_secrets_are_never_logged(deployment: Deployment) -> None:
    d = deployment
    secret = "s3cret-" + secrets.token_hex(8)
    run = d.prepare(
        "v1",
        d.tarball("v1"),
        "-vvv",
        deployer_secret_env={"API_TOKEN": secret, "QUOTED": 'a "b" $c `d` \\e'},
        deployer_service={
            "command": "/usr/bin/python3 app.py",
            "port": d.port,
            "env": {"GREETING": "hello", "ONE": "1", "APP": d.app, "V": "v1"},
        },
    )
    ok(run, "prepare with secrets")
    # short env values ("1", the app name) must not get masked inside the results
    staged = run.deployer("debug", d.hosts[0])
    assert staged["path"] == f"{d.deploy_to}/releases/v1"
    assert [r["version"] for r in staged["releases"]] == ["v1"]
    assert secret not in run.stdout + run.stderr
    assert secret not in "".join(str(e) for e in run.events)
    host = d.hosts[0]
    env = d.sh(host, f"cat {d.deploy_to}/releases/v1/.deployer/env").stdout
    assert f'API_TOKEN="{secret}"' in env
    assert 'QUOTED="a \\"b\\" \\$c \\`d\\` \\\\e"' in env
    assert 'GREETING="hello"' in env
    ok(d.switch("v1"), "switch v1")
    # systemd reads the file back to exactly the values given
    environ = d.sh(
        host,
        f"cat /proc/$(systemctl show -p MainPID --value {d.app}.service)/environ | tr '\\0' '\\n'",
    ).stdout.splitlines()
    assert f"API_TOKEN={secret}" in environ
    assert 'QUOTED=a "b" $c `d` \\e' in environ


def test_switch_to_a_version_that_is_not_staged(deployment: Deployment) -> None:
    d = deployment
    ok(d.prepare("v1", d.tarball("v1")), "prepare v1")
    run = d.switch("v9")
    assert run.rc != 0
    assert all(
        "version v9 is not staged on this host (staged: v1)" in m for m in failed_msgs(run)
    ), failed_msgs(run)
    assert [run.stage(h) for h in d.hosts] == ["switch", "switch"]
    # the same failure in a rollback is the rollback's
    run = d.play(
        "rollback",
        {
            "deployer_hosts": d.hosts[:1],
            "deployer_rollback_to": {d.hosts[0]: "v9"},
            "deployer_mark_bad": None,
            "deployer_reason": "test",
            "deployer_deploy_to": d.deploy_to,
            "deployer_health": d.health(),
        },
    )
    assert run.rc != 0
    assert all("version v9 is not staged" in m for m in failed_msgs(run)), failed_msgs(run)
    assert (run.reply(d.hosts[0])["switched"], run.stage(d.hosts[0])) == (False, "rollback")
    # a batch naming a host the inventory does not have fails instead of skipping it
    run = d.switch("v1", hosts=[d.hosts[0], "ghost"])
    assert run.rc != 0
    assert "not in the inventory: ghost" in failed_msgs(run)[0]
    assert run.results("deployer_switch") == []


def test_first_deploy_broken_rollback_to_nothing_stops_service(deployment: Deployment) -> None:
    d = deployment
    ok(d.prepare("v1", d.tarball("v1", source="broken")), "prepare broken v1")
    assert d.switch("v1", retries=2, interval=0.2).rc != 0
    run = d.play(
        "rollback",
        {
            "deployer_hosts": d.hosts,
            "deployer_rollback_to": {},
            "deployer_mark_bad": "v1",
            "deployer_reason": "first deploy failed",
            "deployer_deploy_to": d.deploy_to,
            "deployer_health": d.health(),
        },
    )
    ok(run, "rollback to nothing")
    for host in d.hosts:
        result = run.deployer("deployer_switch", host)
        assert (result["previous"], result["current"], result["marked_bad"]) == ("v1", None, "v1")
        assert d.current(host) == ""
        assert d.sh(host, f"systemctl is-active {d.app}.socket").stdout.strip() == "inactive"
        assert d.meta(host, "v1")["state"] == "bad"


def test_restart_under_load_loses_no_request_and_resources_apply(deployment: Deployment) -> None:
    d = deployment
    host = d.hosts[0]
    d.extra_hosts = {}
    lab_hosts = {h.name: h for h in d.lab.hosts}
    # resources come from the deployer_resources host var
    d.extra_hosts[host] = {
        "ansible_host": lab_hosts[host].address,
        "ansible_port": lab_hosts[host].port,
        "ansible_user": lab_hosts[host].user,
        "deployer_resources": {"cpu_quota": "50%", "memory_max": "128M"},
    }
    ok(d.prepare("v1", d.tarball("v1")), "prepare v1")
    ok(d.switch("v1"), "switch v1")
    unit = d.sh(host, f"cat /etc/systemd/system/{d.app}.service").stdout
    assert "CPUQuota=50%" in unit
    assert "MemoryMax=128M" in unit
    assert "CPUQuota" not in d.sh(d.hosts[1], f"cat /etc/systemd/system/{d.app}.service").stdout
    ok(d.prepare("v2", d.tarball("v2")), "prepare v2")
    # 60 requests 50 ms apart (and one slow in-flight request) while v2 replaces v1
    load = (
        f"for i in $(seq 60); do curl -s -o /dev/null -w '%{{http_code}}\\n' -m 10 "
        f"http://127.0.0.1:{d.port}/; sleep 0.05; done > /tmp/{d.app}.codes; "
        f"curl -s -m 20 'http://127.0.0.1:{d.port}/slow?seconds=2' > /tmp/{d.app}.slow"
    )
    background = subprocess.Popen(
        [
            "docker",
            "exec",
            d.container(host),
            "sh",
            "-c",
            f"(curl -s -m 20 'http://127.0.0.1:{d.port}/slow?seconds=2'"
            f" > /tmp/{d.app}.inflight &) ; {load}",
        ]
    )
    try:
        ok(d.switch("v2", hosts=[host]), "switch v2 under load")
    finally:
        background.wait(timeout=60)
    codes = d.sh(host, f"cat /tmp/{d.app}.codes").stdout.split()
    assert codes == ["200"] * 60, codes
    assert d.sh(host, f"cat /tmp/{d.app}.inflight").stdout == "slow hello from v1\n"
    assert d.get(host) == "hello from v2\n"


def test_watch_reports_health_over_a_window(deployment: Deployment) -> None:
    d = deployment
    ok(d.prepare("v1", d.tarball("v1")), "prepare v1")
    ok(d.switch("v1"), "switch v1")
    run = d.play(
        "watch",
        {
            "deployer_hosts": d.hosts,
            "deployer_health": d.health(),
            "deployer_watch": {"duration": 1, "period": 0.5, "threshold": 2},
        },
    )
    ok(run, "watch")
    for host in d.hosts:
        assert run.deployer("deployer_health", host) == {
            "healthy": True,
            "checks": 3,
            "failures": 0,
            "max_consecutive_failures": 0,
            "message": "healthy: 3 checks passed",
        }
    d.sh(d.hosts[1], f"systemctl stop {d.app}.socket {d.app}.service")
    run = d.play(
        "watch",
        {
            "deployer_hosts": d.hosts,
            "deployer_health": d.health(),
            "deployer_watch": {"duration": 1, "period": 0.5, "threshold": 2},
        },
    )
    assert run.rc != 0
    bad = run.deployer("deployer_health", d.hosts[1])
    assert (bad["healthy"], bad["checks"]) == (False, 2)
    assert "Connection refused" in bad["message"]
    assert run.deployer("deployer_health", d.hosts[0])["healthy"] is True
