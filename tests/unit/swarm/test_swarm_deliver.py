"""Thin `docker load` archives: which layer files may be left out for a node."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from deployer.targets.swarm.deliver import skippable


def _archive(path: Path) -> None:
    """A `docker save`-shaped archive: two images sharing their two bottom layers."""
    members = {
        "manifest.json": json.dumps(
            [
                {
                    "Config": "a.json",
                    "RepoTags": ["web:v2"],
                    "Layers": ["l1/layer.tar", "l2/layer.tar", "l3/layer.tar"],
                },
                {
                    "Config": "b.json",
                    "RepoTags": ["site:v2"],
                    "Layers": ["l1/layer.tar", "l2/layer.tar", "l4/layer.tar"],
                },
            ]
        ),
        "a.json": json.dumps({"rootfs": {"diff_ids": ["d1", "d2", "d3"]}}),
        "b.json": json.dumps({"rootfs": {"diff_ids": ["d1", "d2", "d4"]}}),
    }
    with tarfile.open(path, "w") as archive:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def test_layers_whose_chain_the_node_has_are_skipped(tmp_path: Path) -> None:
    _archive(tmp_path / "images.tar")
    present = {("d1",), ("d1", "d2"), ("d1", "d2", "d4")}
    with tarfile.open(tmp_path / "images.tar") as archive:
        assert skippable(archive, present) == {"l1/layer.tar", "l2/layer.tar", "l4/layer.tar"}


def test_a_layer_is_sent_when_its_chain_differs(tmp_path: Path) -> None:
    """Same diff ID on another parent is another layer: only whole chains count."""
    _archive(tmp_path / "images.tar")
    with tarfile.open(tmp_path / "images.tar") as archive:
        assert skippable(archive, {("d2",), ("d9", "d1")}) == set()
        assert skippable(archive, set()) == set()
