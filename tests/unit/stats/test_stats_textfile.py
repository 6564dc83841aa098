"""write_textfile: what node exporter's textfile collector reads is always a whole file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from deployer.stats import write_textfile


def test_writes_a_world_readable_file(tmp_path: Path) -> None:
    target = tmp_path / "deployer.prom"
    write_textfile("a 1\n", target)
    assert target.read_text() == "a 1\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["deployer.prom"]


def test_replaces_by_rename_not_in_place(tmp_path: Path) -> None:
    target = tmp_path / "deployer.prom"
    target.write_text("old 1\n")
    reader = target.open()  # a collector in the middle of reading the old file
    before = target.stat().st_ino
    write_textfile("new 2\n", target)
    assert target.stat().st_ino != before
    assert reader.read() == "old 1\n"
    reader.close()
    assert target.read_text() == "new 2\n"


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "deployer.prom"
    target.write_text("old 1\n")
    with pytest.raises(UnicodeEncodeError):
        write_textfile("bad \udc80 1\n", target)  # a lone surrogate cannot be written
    assert target.read_text() == "old 1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["deployer.prom"]


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_textfile("a 1\n", tmp_path / "absent" / "deployer.prom")
