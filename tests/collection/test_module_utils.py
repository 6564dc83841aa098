"""Unit tests of the deployer.core host-side code (no lab): tar vetting, env rendering,
release tree bookkeeping, pruning order and the health checks against loopback servers."""

from __future__ import annotations

import io
import json
import os
import socket
import sys
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "collections"))

from ansible_collections.deployer.core.plugins.module_utils import health, layout, systemd, unpack
from ansible_collections.deployer.core.plugins.modules import deployer_release

UID, GID = os.getuid(), os.getgid()


# --- tarballs -------------------------------------------------------------------------


def make_tar(path: Path, *members: tuple[str, bytes | str]) -> Path:
    """Members: (name, b"content") for files, (name, "->target") for symlinks,
    (name, "=>target") for hard links, (name, "/") for directories."""
    with tarfile.open(path, "w:gz") as tar:
        for name, spec in members:
            info = tarfile.TarInfo(name)
            data = None
            if isinstance(spec, bytes):
                info.size, info.mode, data = len(spec), 0o4777, io.BytesIO(spec)
            elif spec == "/":
                info.type, info.mode = tarfile.DIRTYPE, 0o777
            elif spec.startswith("->"):
                info.type, info.linkname = tarfile.SYMTYPE, spec[2:]
            else:
                info.type, info.linkname = tarfile.LNKTYPE, spec[2:]
            tar.addfile(info, data)
    return path


def extract(tmp_path: Path, *members: tuple[str, bytes | str]) -> Path:
    archive = make_tar(tmp_path / "a.tar.gz", *members)
    dest = tmp_path / "out"
    dest.mkdir()
    unpack.unpack(str(archive), str(dest), UID, GID, "u", "g")
    return dest


def test_unpack_keeps_a_normal_tree_and_strips_special_mode_bits(tmp_path: Path) -> None:
    dest = extract(
        tmp_path,
        ("./bin/", "/"),
        ("./bin/run", b"#!/bin/sh\n"),
        ("lib/x.py", b"x"),
        ("bin/alias", "->run"),
        ("lib/y.py", "=>lib/x.py"),
        ("lib/up", "->../bin/run"),
    )
    assert (dest / "bin" / "run").read_bytes() == b"#!/bin/sh\n"
    assert (dest / "bin" / "run").stat().st_mode & 0o7777 == 0o755
    assert os.readlink(dest / "bin" / "alias") == "run"
    assert (dest / "lib" / "y.py").read_bytes() == b"x"


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        ([("../evil", b"x")], "'..'"),
        ([("/etc/evil", b"x")], "absolute"),
        ([("a/../../evil", b"x")], "'..'"),
        ([("a/../b", b"x")], "'..'"),
        ([("link", "->/etc")], "points outside"),
        ([("link", "->../..")], "points outside"),
        ([("link", "->sub"), ("link/passwd", b"x")], "written through the link"),
        ([("hard", "=>../etc/passwd")], "hard link"),
        ([(".deployer/meta.json", b"{}")], "reserves"),
        # each link is inside on its own, but followed together they leave the tree
        ([("a/", "/"), ("a/b", "->.."), ("c", "->a/b/..")], "resolves outside"),
    ],
)
def test_unpack_rejects_members_that_escape(
    tmp_path: Path, members: list[tuple[str, bytes | str]], reason: str
) -> None:
    with pytest.raises(unpack.UnsafeArchive, match=reason):
        extract(tmp_path, *members)


def test_unpack_rejects_devices(tmp_path: Path) -> None:
    path = tmp_path / "dev.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("null")
        info.type = tarfile.CHRTYPE
        tar.addfile(info)
    with pytest.raises(unpack.UnsafeArchive, match="device"):
        unpack.unpack(str(path), str(tmp_path), UID, GID, "u", "g")


# --- env file -------------------------------------------------------------------------


def test_env_file_quotes_every_value_for_systemd() -> None:
    text = deployer_release.render_env(
        {"B": 'a "q" $HOME `x` \\n', "A": True, "C": 3, "D": None, "E": "multi\nline"}
    ).decode()
    assert text.splitlines()[1:] == [
        'A="true"',
        'B="a \\"q\\" \\$HOME \\`x\\` \\\\n"',
        'C="3"',
        'D=""',
        'E="multi',
        'line"',
    ]


def test_env_file_rejects_bad_names_without_echoing_values() -> None:
    with pytest.raises(deployer_release.StageError) as info:
        deployer_release.render_env({"BAD-NAME": "s3cret"})
    assert "BAD-NAME" in str(info.value)
    assert "s3cret" not in str(info.value)


# --- the release tree -----------------------------------------------------------------


def release(tree: layout.Tree, version: str, state: str, staged: str, switched: str | None) -> None:
    os.makedirs(os.path.join(tree.release(version), layout.META_DIR))
    meta = {
        "version": version,
        "sha256": "0" * 64,
        "state": state,
        "staged_at": staged,
        "switched_at": switched,
        "reason": None,
    }
    tree.write_meta(version, meta)


def test_tree_lists_releases_and_finds_current_and_previous_good(tmp_path: Path) -> None:
    tree = layout.Tree(str(tmp_path))
    release(tree, "v2", "good", "2024-01-02", "2024-01-05")
    release(tree, "v1", "good", "2024-01-01", "2024-01-06")  # rolled back to: newer switch
    release(tree, "v3", "bad", "2024-01-03", None)
    os.makedirs(tree.release("v4") + layout.PARTIAL + "abcd")
    layout.point_current(tree, "v3")
    infos = tree.releases_info()
    assert [r["version"] for r in infos] == ["v1", "v2", "v3"]
    assert tree.current() == "v3"
    assert os.readlink(tree.current_link) == "releases/v3"
    assert layout.previous_good(infos, "v3") == "v1"
    assert layout.previous_good(infos, "v1") == "v2"
    assert tree.partials() == [tree.release("v4") + layout.PARTIAL + "abcd"]


def prune(tmp_path: Path, keep: int, new: str) -> list[str]:
    module = SimpleNamespace(
        check_mode=False,
        params={
            "deploy_to": str(tmp_path),
            "app": "x",
            "version": new,
            "sha256": "0" * 64,
            "archive": None,
            "service_user": "x",
            "service_group": None,
            "env": {},
            "units": {},
            "keep_releases": keep,
            "required_bytes": 0,
            "shared_dirs": [],
            "shared_files": [],
        },
    )
    stager = deployer_release.Stager(module)
    stager.prune()
    return stager.result["pruned"]


def test_prune_order_bad_then_stale_staged_then_oldest_good(tmp_path: Path) -> None:
    tree = layout.Tree(str(tmp_path))
    release(tree, "g1", "good", "2024-01-01", "2024-01-01")
    release(tree, "g2", "good", "2024-01-02", "2024-01-02")
    release(tree, "b3", "bad", "2024-01-03", None)
    release(tree, "s4", "staged", "2024-01-04", None)
    release(tree, "g5", "good", "2024-01-05", "2024-01-05")  # previous good
    release(tree, "g6", "good", "2024-01-06", "2024-01-06")  # current
    release(tree, "n7", "staged", "2024-01-07", None)  # being staged
    layout.point_current(tree, "g6")
    assert prune(tmp_path, 4, "n7") == ["b3", "s4", "g1"]
    assert sorted(tree.versions()) == ["g2", "g5", "g6", "n7"]
    # never current (the next rollback target) nor the new one, even with keep 1
    assert prune(tmp_path, 1, "n7") == ["g2", "g5"]
    assert sorted(tree.versions()) == ["g6", "n7"]


def test_prune_keeps_the_previous_good_one_while_current_is_not_good(tmp_path: Path) -> None:
    tree = layout.Tree(str(tmp_path))
    release(tree, "g1", "good", "2024-01-01", "2024-01-01")
    release(tree, "g2", "good", "2024-01-02", "2024-01-02")
    release(tree, "s3", "staged", "2024-01-03", None)  # current, its switch failed
    release(tree, "n4", "staged", "2024-01-04", None)
    layout.point_current(tree, "s3")
    assert prune(tmp_path, 1, "n4") == ["g1"]
    assert sorted(tree.versions()) == ["g2", "n4", "s3"]


# --- health checks --------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = 500 if self.path == "/bad" else 200
        body = b"ok\n" if code == 200 else b"boom\n"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_port() -> Any:
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_http_check_names_url_status_and_attempts(http_port: int) -> None:
    spec = {"http": {"port": http_port, "path": "/bad", "status": 200}, "retries": 3, "interval": 0}
    assert health.with_retries(spec, sleep=lambda _s: None) == (
        False,
        3,
        f"HTTP GET http://127.0.0.1:{http_port}/bad returned 500, expected 200 (3 attempts)",
    )
    good = {"http": {"port": http_port, "path": "/healthz", "body": "ok"}, "retries": 3}
    assert health.with_retries(good)[:2] == (True, 1)
    body = {"http": {"port": http_port, "path": "/healthz", "body": "ready"}}
    assert "does not contain 'ready'" in health.attempt(body)[1]


def test_tcp_and_command_checks() -> None:
    port = free_port()
    ok, message = health.attempt({"tcp": {"port": port, "timeout": 1}})
    assert not ok
    assert f"TCP connect 127.0.0.1:{port} failed" in message
    assert health.attempt({"command": {"run": "true"}}) == (True, "command 'true' exited 0")
    ok, message = health.attempt({"command": {"run": "echo nope; exit 3"}})
    assert (ok, message) == (False, "command 'echo nope; exit 3' exited 3: nope")
    ok, message = health.attempt({"command": {"run": "sleep 5", "timeout": 0.2}})
    assert (ok, message) == (False, "command 'sleep 5' timed out after 0.2s")


def test_watch_counts_consecutive_failures(http_port: int) -> None:
    clock = iter(float(i) for i in range(100))

    def now() -> float:
        return next(clock)

    spec = {"http": {"port": http_port, "path": "/bad"}}
    result = health.watch(
        spec, duration=10, period=1, threshold=3, sleep=lambda _s: None, clock=now
    )
    assert (result["healthy"], result["checks"], result["failures"]) == (False, 3, 3)
    assert result["message"].endswith("(3 consecutive failed checks)")
    single = health.watch({"http": {"port": http_port, "path": "/healthz"}}, 0, 5, 3)
    assert single == {
        "healthy": True,
        "checks": 1,
        "failures": 0,
        "max_consecutive_failures": 0,
        "message": "healthy: 1 check passed",
    }
    once_bad = health.watch(spec, 0, 5, 3)
    assert once_bad["healthy"] is False  # one sample: the threshold caps at 1


def test_watch_does_not_count_failures_inside_the_grace_period(http_port: int) -> None:
    """Samples of the first `grace` seconds are reported, not counted: with 10 s of grace,
    a window that fails throughout is judged on the samples after it."""
    elapsed = [0.0]

    def now() -> float:
        return elapsed[0]

    def sleep(seconds: float) -> None:
        elapsed[0] += seconds

    spec = {"http": {"port": http_port, "path": "/bad"}}
    kwargs = {"duration": 20, "period": 1, "threshold": 3, "sleep": sleep, "clock": now}
    result = health.watch(spec, grace=10, **kwargs)
    # 10 samples in the grace period (t = 0..9) plus the 3 that count (t = 10, 11, 12).
    assert (result["healthy"], result["checks"], result["failures"]) == (False, 13, 13)
    elapsed[0] = 0.0
    warming = health.watch(spec, grace=30, **kwargs)  # the whole window is grace
    assert (warming["healthy"], warming["failures"]) == (True, 21)
    assert warming["message"].startswith(
        "healthy: 21 checks, 21 failed (21 in the grace period, not counted; at most 0 in a row"
    )


def test_example_apps_differ_only_in_the_broken_flag() -> None:
    root = Path(__file__).resolve().parents[2] / "examples" / "hello"
    good = (root / "app" / "app.py").read_text().splitlines()
    broken = (root / "broken" / "app.py").read_text().splitlines()
    diff = [(a, b) for a, b in zip(good, broken, strict=True) if a != b]
    assert len(diff) == 1
    assert diff[0][0].startswith("BROKEN = False")
    assert diff[0][1].startswith("BROKEN = True")


def test_meta_is_written_atomically_as_json(tmp_path: Path) -> None:
    tree = layout.Tree(str(tmp_path))
    release(tree, "v1", "staged", "2024-01-01", None)
    assert json.loads(Path(tree.meta_path("v1")).read_text())["state"] == "staged"
    assert [p.name for p in Path(tree.meta_path("v1")).parent.iterdir()] == ["meta.json"]


# --- systemd --------------------------------------------------------------------------


def test_systemd_timestamps_keep_their_microseconds() -> None:
    stamp = systemd.timestamp("Sun 2026-11-29 02:59:15.952684 UTC")
    assert stamp == pytest.approx(1795921155.952684, abs=1e-6)
    assert systemd.timestamp("Sun 2026-11-29 02:59:15 UTC") == 1795921155.0
    for value in ("", "n/a", "@1795921155", "Sun 2026-11-29 02:59:xx.1 UTC", "Sun x y UTC", None):
        assert systemd.timestamp(value) is None


def test_a_file_written_earlier_in_the_same_second_is_not_newer(tmp_path: Path) -> None:
    unit = tmp_path / "app.service"
    unit.write_text("[Service]\n")
    os.utime(unit, (1795921155.2, 1795921155.2))
    assert not systemd.newer_than([str(unit)], 1795921155.9)  # started after the write
    assert systemd.newer_than([str(unit)], 1795921155.1)  # written after the start
    assert systemd.newer_than([str(unit)], None)
    assert not systemd.newer_than([str(tmp_path / "missing")], 1.0)


# --- module documentation ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    sorted(
        p.stem
        for p in (Path(__file__).resolve().parents[2] / "collections").glob(
            "ansible_collections/deployer/core/plugins/modules/*.py"
        )
    ),
)
def test_module_documentation_is_yaml_that_ansible_doc_can_read(name: str) -> None:
    import importlib

    import yaml

    module = importlib.import_module(f"ansible_collections.deployer.core.plugins.modules.{name}")
    for part in ("DOCUMENTATION", "EXAMPLES", "RETURN"):
        assert yaml.safe_load(getattr(module, part)), (name, part)


def test_a_release_with_templates_runs_one_instance_per_port_its_target_wants() -> None:
    from ansible_collections.deployer.core.plugins.module_utils import units

    target = b"[Unit]\nWants=shop@8001.socket shop@8000.socket evil@1.socket shop@x.socket\n"
    release = {"shop@.service": b"", "shop@.socket": b"", "shop.target": target}
    wanted = units.instances("shop", release)
    assert [(i.service, i.socket, i.port) for i in wanted] == [
        ("shop@8000.service", "shop@8000.socket", 8000),
        ("shop@8001.service", "shop@8001.socket", 8001),
    ]
    (plain,) = units.instances("shop", {"shop.service": b""})
    assert (plain.service, plain.socket, plain.port) == ("shop.service", None, None)
    health = {"http": {"port": 8000, "path": "/healthz"}, "tcp": {"port": 9100}}
    second = units.instance_health(health, wanted[1], wanted)
    assert second["http"] == {"port": 8001, "path": "/healthz"}  # the instance's own port
    assert second["tcp"] == {"port": 9100}  # another port stays as it is
    assert units.instance_health(health, plain, [plain]) is health


def test_a_sample_over_instances_fails_when_any_instance_fails(http_port: int) -> None:
    good = {"http": {"port": http_port, "path": "/healthz"}}
    bad = {"http": {"port": http_port, "path": "/bad"}}
    assert health.attempt_each([good, good])[0] is True
    ok, message = health.attempt_each([good, bad])
    assert not ok
    assert "/bad" in message
    result = health.watch([good, bad], 0, 5, 1)
    assert result["healthy"] is False
