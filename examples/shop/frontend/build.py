#!/usr/bin/env python3
"""The frontend's build step (run by deployer on the control host before packing): copies
src/ into dist/, naming each script and stylesheet after its content's hash
(app.<hash>.js), so the edge proxy can let browsers cache them for a year, and points
index.html at the new names. Stdlib only."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC, DIST = HERE / "src", HERE / "dist"


def main() -> None:
    shutil.rmtree(DIST, ignore_errors=True)
    DIST.mkdir()
    html = (SRC / "index.html").read_text()
    for asset in sorted(SRC.iterdir()):
        if asset.suffix not in (".js", ".css"):
            continue
        digest = hashlib.sha256(asset.read_bytes()).hexdigest()[:12]
        name = f"{asset.stem}.{digest}{asset.suffix}"
        shutil.copyfile(asset, DIST / name)
        html = html.replace(f'"{asset.name}"', f'"{name}"')
    (DIST / "index.html").write_text(html)


if __name__ == "__main__":
    main()
