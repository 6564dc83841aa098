"""The benchmark harness at N=2, once, so it cannot rot. It measures; it asserts no timing.

It brings up (and tears down) its own lab, `bench-smoke`; two sessions running at once would
tear down each other's: give one another name with DEPLOYER_TEST_LAB (its lab is then
`<name>-bench`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.bench]

REPO = Path(__file__).resolve().parents[2]
# a session with a lab of its own (DEPLOYER_TEST_LAB) gets a bench lab of its own too, never
# its integration lab (the harness tears its lab down at the end)
LAB_NAME = (
    f"{os.environ['DEPLOYER_TEST_LAB']}-bench"
    if "DEPLOYER_TEST_LAB" in os.environ
    else "bench-smoke"
)


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
            LAB_NAME,
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
    assert set(medians) == {"deployer", "rolling", "plain", "floor"}
    assert all(value > 0 for value in medians.values())
    compare = results["compare"]
    assert len(compare["runs"]["rolling"]) == 1  # alternated with the others, one per run
    assert compare["rolling_strategy"] == {"kind": "rolling", "batch_size": "50%"}
    assert compare["rolling_batches"] == 2  # two batches of one at N=2
    assert compare["rolling_vs_floor"] > 0
    assert results["rollback"]["median"] > 0
    full_stack = results["full_stack"]  # frontend on one host, API on the other
    assert (full_stack["hosts"], len(full_stack["deploy_runs"])) == (2, 1)
    assert full_stack["deploy_median"] > 0
    assert full_stack["rollback_median"] > 0
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
    for phase in ("deploy", "rollback"):  # the same app behind the edge proxy: promised
        proxied = results["load_proxy"][phase]
        assert proxied["sent"] > 0
        assert proxied["failed"] == 0, proxied
    assert results["proxied_deploy_s"] > 0
    assert any(line.startswith(("PASS", "MISS")) for line in results["verdicts"])
    for target in (
        "deploy_vs_plain",
        "deploy_vs_floor",
        "rolling_vs_floor",
        "rollback_seconds",
        "cli_overhead_ms",
    ):
        assert any(line.split()[1] == f"{target}:" for line in results["verdicts"]), target
    assert "deployer/plain" in proc.stdout
    assert "rolling/floor" in proc.stdout
