"""The benchmark harness at N=2, once, so it cannot rot. It measures; it asserts no timing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_bench_harness_runs_end_to_end_at_two_hosts(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "run.py"),
            "--hosts",
            "2",
            "--runs",
            "1",
            "--scale",
            "1,2",
            "--rate",
            "40",
            "--lab",
            "bench-smoke",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    medians = results["compare"]["median"]
    assert set(medians) == {"deployer", "plain", "floor"}
    assert all(value > 0 for value in medians.values())
    assert results["rollback"]["median"] > 0
    assert set(results["scaling"]) == {"1", "2"}
    assert results["cli"]["median_ms"] > 0
    assert results["peak_memory_mib"] > 0
    for phase in ("deploy", "rollback"):
        load = results["load"][phase]
        assert load["sent"] > 0
        assert load["failed"] == 0, load  # zero downtime is the product's promise
    own = results["load_port"]["deploy"]  # an app binding its own port: measured, not promised
    assert own["sent"] > 0
    assert own["ok"] > 0
    assert any(line.startswith(("PASS", "MISS")) for line in results["verdicts"])
    assert "deployer/plain" in proc.stdout
