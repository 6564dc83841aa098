"""Execution nodes on the control host's side: a streamed run end to end (transmit, a local
worker standing in for `ssh node ansible-runner worker`, process), a broken stream, the
node check's verdicts, and the merge of a run's parts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from deployer.config.sites import ExecutionNode
from deployer.errors import DeployerError, UnreachableError
from deployer.exitcodes import ExitCode
from deployer.paths import collections_dir
from deployer.targets.ssh import nodes
from deployer.targets.ssh.runner import (
    HostOutcome,
    NodeStreamError,
    Runner,
    RunResult,
    Stream,
)

CANARY = "streamcanary-7f3a9c"
NODE = ExecutionNode(
    site="west",
    address="node.example.net",
    port=22,
    user="deploy",
    private_key=None,
    known_hosts=(Path("/kh"),),
    jump=(),
    config_path="environments.production.ssh.nodes.west",
)


def _inventory() -> dict[str, object]:
    return {"all": {"children": {"env_x": {"vars": {}, "children": {"web": {"hosts": {}}}}}}}


def _local_stream(remote: Path) -> Stream:
    worker = [sys.executable, "-m", "ansible_runner", "worker"]
    return Stream(
        label=NODE.label,
        remote=PurePosixPath(remote),
        worker=[*worker, "--private-data-dir", str(remote), "--delete"],
        cleanup=["rm", "-rf", "--", str(remote)],
        env={
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "ANSIBLE_COLLECTIONS_PATH": str(collections_dir()),
        },
    )


def test_a_streamed_run_ends_with_nothing_left_of_it_on_either_side(tmp_path: Path) -> None:
    remote = tmp_path / "node" / "runs" / "R"
    remote.parent.mkdir(parents=True)
    runner = Runner(tmp_path / "state")
    result = runner.run(
        "exec.yml",  # over no hosts: the whole protocol, the vault prompt included
        _inventory(),
        {"deployer_note": "x"},
        secret_vars={"deployer_secret_env": {"TOKEN": CANARY}},
        stream=_local_stream(remote),
    )
    assert result.status == "successful", result
    assert result.rc == 0
    assert not remote.exists()  # worker --delete, then the cleanup
    assert not (tmp_path / "state" / "runs" / "stream" / "x").exists()
    assert list((tmp_path / "state" / "runs" / "stream").iterdir()) == []
    for path in tmp_path.rglob("*"):  # the secret: never on disk after the run, either side
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path


def test_a_broken_stream_names_the_node_and_is_cleaned_up(tmp_path: Path) -> None:
    marker = tmp_path / "cleaned"
    stream = Stream(
        label=NODE.label,
        remote=PurePosixPath("/nonexistent"),
        worker=["sh", "-c", "cat >/dev/null; echo 'Connection refused' >&2; exit 255"],
        cleanup=["touch", str(marker)],
    )
    runner = Runner(tmp_path / "state")
    with pytest.raises(NodeStreamError) as caught:
        runner.run("exec.yml", _inventory(), {}, stream=stream)
    assert "environments.production.ssh.nodes.west" in str(caught.value)
    assert "Connection refused" in str(caught.value)
    assert marker.exists()  # the node's private dir is removed even so
    assert list((tmp_path / "state" / "runs" / "stream").iterdir()) == []


def _fake_ssh(monkeypatch: pytest.MonkeyPatch, code: str) -> None:
    monkeypatch.setattr(nodes, "node_ssh", lambda *a, **k: [sys.executable, "-c", code])


def test_a_node_that_cannot_be_reached_is_exit_4_naming_its_config_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake_ssh(
        monkeypatch, "import sys; sys.stderr.write('Host key verification failed.'); sys.exit(255)"
    )
    target = _target(tmp_path)
    with pytest.raises(UnreachableError) as caught:
        nodes.ready(target, NODE, tmp_path)
    assert caught.value.exit_code == ExitCode.UNREACHABLE
    message = str(caught.value)
    assert "environments.production.ssh.nodes.west" in message
    assert "host key does not match known_hosts" in message


def test_a_node_without_python_is_a_clear_install_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake_ssh(monkeypatch, "import sys; sys.stderr.write('python3: not found'); sys.exit(127)")
    with pytest.raises(DeployerError) as caught:
        nodes.ready(_target(tmp_path), NODE, tmp_path)
    assert caught.value.exit_code == ExitCode.DEPLOY_FAILED
    assert "environments.production.ssh.nodes.west" in str(caught.value)
    assert "python3: not found" in str(caught.value)


@pytest.mark.parametrize(
    "answer",
    [
        "{'home': 'relative/dir', 'venv': True, 'collection': True}",
        "{'home': '/home/d/../../etc', 'venv': True, 'collection': True}",
        "{'home': '/home/d\\n/x', 'venv': True, 'collection': True}",
        "{'home': ['/home/d'], 'venv': True, 'collection': True}",
        "{'home': '/home/d', 'venv': 'yes', 'collection': True}",
    ],
)
def test_a_node_whose_check_answer_is_not_plain_is_refused_before_any_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, answer: str
) -> None:
    _fake_ssh(monkeypatch, f"import json; print(json.dumps({answer}))")
    with pytest.raises(DeployerError) as caught:
        nodes.ready(_target(tmp_path), NODE, tmp_path)
    assert "environments.production.ssh.nodes.west" in str(caught.value)
    assert "its install check answered" in str(caught.value)


def test_an_installed_node_costs_one_ssh_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[list[str]] = []
    real = subprocess.run

    def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        calls.append(argv)
        return real(argv, **kwargs)  # type: ignore[call-overload,no-any-return]

    code = (
        "import json; print(json.dumps({'home': '/home/d/.deployer-node', 'venv': True, "
        "'collection': True}))"
    )
    _fake_ssh(monkeypatch, code)
    monkeypatch.setattr(nodes.subprocess, "run", run)
    home = nodes.ready(_target(tmp_path), NODE, tmp_path)
    assert len(calls) == 1
    assert str(home.runner).startswith("/home/d/.deployer-node/venv-")
    env = home.env()
    assert env["ANSIBLE_COLLECTIONS_PATH"].endswith(nodes.collection_hash())


def test_the_pins_are_the_control_hosts_installed_versions() -> None:
    import importlib.metadata

    pins = dict(nodes.pinned_versions())
    assert pins == {
        "ansible-core": importlib.metadata.version("ansible-core"),
        "ansible-runner": importlib.metadata.version("ansible-runner"),
    }


def _result(hosts: dict[str, HostOutcome], status: str, started: float) -> RunResult:
    return RunResult(
        playbook="prepare.yml",
        status=status,
        rc=0 if status == "successful" else 2,
        hosts=hosts,
        seconds=1.0,
        artifact_dir=Path("/a"),
        phases={"": hosts},
        phase_started={"": started},
    )


def test_merge_keeps_every_host_the_worst_status_and_the_first_start() -> None:
    west = _result({"w1": HostOutcome("w1", ok=3)}, "successful", 10.0)
    east = _result({"e1": HostOutcome("e1", failed=True, message="no")}, "failed", 9.0)
    merged = nodes.merge([west, east])
    assert set(merged.hosts) == {"w1", "e1"}
    assert merged.status == "failed"
    assert merged.rc == 2
    assert merged.phase_started == {"": 9.0}
    assert merged.failed_hosts() == ["e1"]
    assert not merged.ok


def test_a_broken_part_makes_its_hosts_unreachable_naming_the_node() -> None:
    part = nodes.broken_part(("e1", "e2"), "execution node east: gone", "x.yml", Path("/a"))
    assert all(o.unreachable and "east" in o.message for o in part.hosts.values())


def _target(tmp_path: Path):  # type: ignore[no-untyped-def]
    from deployer.config.loader import load_project
    from deployer.config.resolve import resolve

    (tmp_path / "deploy.yml").write_text(
        "app: {name: myapp}\nservice: {command: /usr/bin/python3 app.py, port: 8000}\n"
        "health: {http: {path: /healthz}}\n"
        "environments:\n  production:\n    hosts:\n      web: [{address: 10.0.0.5}]\n"
        "    ssh:\n      nodes:\n        west: {address: node.example.net, groups: [web]}\n"
    )
    return resolve(load_project(tmp_path / "deploy.yml"), "production")


def test_what_a_node_streams_back_is_never_unpacked_or_written_under_its_names(
    tmp_path: Path,
) -> None:
    """A hostile node's artifacts (a symlink, then a file through it) and an event whose
    uuid climbs out of the artifacts directory: nothing lands on the control host."""
    import base64
    import io
    import json
    import stat
    import zipfile

    from ansible_runner.streaming import Processor

    from deployer.targets.ssh.runner import _Collector, _node_processor

    outside = tmp_path / "outside"
    outside.mkdir()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        link = zipfile.ZipInfo("escape")
        link.create_system = 3
        link.external_attr = (0o777 | stat.S_IFLNK) << 16
        archive.writestr(link, str(outside))
        archive.writestr("escape/planted", "owned")
        archive.writestr("rc", "2")
    data = buffer.getvalue()
    event = {"event": "runner_on_ok", "counter": 1, "uuid": "../../../../outside/evil"}
    event["event_data"] = {"host": "w1", "task": "t", "res": {"changed": False}}
    wire = b"".join(
        [
            json.dumps({"status": "running"}).encode() + b"\n",
            json.dumps(event).encode() + b"\n",
            json.dumps({"zipfile": len(data)}).encode() + b"\n",
            base64.b64encode(data),
            json.dumps({"status": "failed"}).encode() + b"\n",
            json.dumps({"eof": True}).encode() + b"\n",
        ]
    )
    collector = _Collector(None, lambda s: s)
    runs = tmp_path / "runs"
    processor = _node_processor(Processor)(
        _input=io.BytesIO(wire),
        private_data_dir=str(runs),
        ident="R",
        event_handler=lambda e: bool(collector(e)) and False,
        quiet=True,
    )
    processor.run()
    assert processor.node_rc == 2
    assert collector.outcomes()["w1"].ok == 1  # the event was folded
    assert list(outside.iterdir()) == []  # nothing planted through the link
    assert [p.name for p in runs.rglob("*") if p.is_file()] == []


def test_an_interrupted_streamed_run_leaves_nothing_on_the_node(tmp_path: Path) -> None:
    remote = tmp_path / "node" / "runs" / "R"
    remote.parent.mkdir(parents=True)
    stream = _local_stream(remote)
    # the worker is held before it reads the job, so the cut comes mid-stream
    stream = Stream(
        label=stream.label,
        remote=stream.remote,
        worker=["sh", "-c", f"mkdir -p {remote} && echo {CANARY} > {remote}/x && sleep 30"],
        cleanup=stream.cleanup,
    )
    asked: list[float] = []

    def cancel() -> bool:
        asked.append(0.0)
        return len(asked) > 3

    runner = Runner(tmp_path / "state")
    result = runner.run(
        "exec.yml",
        _inventory(),
        {},
        secret_vars={"deployer_secret_env": {"TOKEN": CANARY}},
        cancel=cancel,
        stream=stream,
    )
    assert result.canceled
    assert not remote.exists()  # the cleanup ran after the cut
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path
