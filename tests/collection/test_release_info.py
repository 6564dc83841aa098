"""deployer_switch records the current version for node exporter's textfile collector: the
sample Prometheus reads as `deployer_release_info` in the dashboards and the watch window."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "collections"))

from ansible_collections.deployer.core.plugins.modules.deployer_switch import record_release


def test_records_the_current_version(tmp_path: Path) -> None:
    path = tmp_path / "deployer-hello-lab.prom"
    record_release({"path": str(path), "environment": "lab"}, "hello", "v1")
    assert path.read_text() == (
        "# HELP deployer_release_info The release deployer made current for this app here.\n"
        "# TYPE deployer_release_info gauge\n"
        'deployer_release_info{app="hello",environment="lab",version="v1"} 1\n'
    )
    assert path.stat().st_mode & 0o777 == 0o644


def test_label_values_are_escaped(tmp_path: Path) -> None:
    path = tmp_path / "x.prom"
    record_release({"path": str(path), "environment": "e\\nv"}, 'a"pp', "v1\n")
    sample = path.read_text().splitlines()[-1]
    assert sample == r'deployer_release_info{app="a\"pp",environment="e\\nv",version="v1\n"} 1'


def test_a_new_version_replaces_the_old_and_stopping_removes_it(tmp_path: Path) -> None:
    path = tmp_path / "x.prom"
    info = {"path": str(path), "environment": "lab"}
    record_release(info, "hello", "v1")
    record_release(info, "hello", "v2")
    assert 'version="v2"' in path.read_text()
    assert "v1" not in path.read_text()
    record_release(info, "hello", None)
    assert not path.exists()


def test_nothing_is_written_without_the_collector_directory(tmp_path: Path) -> None:
    path = tmp_path / "absent" / "x.prom"
    record_release({"path": str(path), "environment": "lab"}, "hello", "v1")
    assert not path.parent.exists()
    record_release(None, "hello", "v1")  # monitoring off: a no-op
