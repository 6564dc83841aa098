#!/usr/bin/env python3
"""deployer's benchmark: one command, side by side, on the local lab.

    .venv/bin/python bench/run.py                 # the full run (10 hosts, 5 runs, up to 50)
    .venv/bin/python bench/run.py --hosts 2 --runs 1 --scale 1,2   # a quick check

1. deploy wall time at N hosts: deployer (the whole fleet at once) vs deployer rolling in two
   batches (`batch_size: 50%`, its own app and port) vs a plain one-task-per-step playbook vs
   the floor (one ssh per host), same tarball and hosts, runs alternated; medians and ratios;
2. rollback wall time at N; 3d. the full-stack example (examples/shop: a static frontend
   on one host, its API on the others) deploy and rollback wall times at N; 3. failed
   requests and the longest gap between successes under a
   constant HTTP load during a deploy and during a rollback (the example app on its systemd
   socket), and during a deploy of the same app binding its own port (no proxy in front:
   reported, not a target); 4. deploy time at each scale
   (table + PNG); 5. CLI overhead before the first SSH connection and the control process's
   peak memory at the largest scale; 3e. rollback wall time behind the edge proxy,
   blue-green (a flip back) against rolling 25 % (`--only blue_green` measures this part
   alone); 3f. a canary step's overhead: a canary of one step short of the flip against the
   same app blue-green, minus the analysis window (`--only canary`).
   Results: <out>/results.json, <out>/scaling.png.
`--only nodes`: deploy wall time and control-host CPU time at --hosts hosts, direct against
through two execution nodes (bench/nodes.py); <out>/nodes.json.
This is not a test: it measures. tests/bench/test_bench_smoke.py runs it at N=2 so it
cannot rot. Targets are checked and printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.contenders import (
    BLUE_GREEN_PORT,
    CANARY_BLUE_GREEN_PORT,
    CANARY_PORT,
    FULL_STACK_PORT,
    PORT_MODE_PORT,
    PROXIED_PORT,
    PROXIED_ROLLBACK_PORT,
    ROLLING_PORT,
    TWO_BATCHES,
    Bench,
    floor,
    floor_setup,
    plain,
)
from bench.load import Load
from bench.nodes import line as nodes_line
from bench.nodes import nodes_vs_direct
from deployer import lab as labs

TARGETS = {  # issue 14's speed targets (deploy_vs_plain kept from before)
    "deploy_vs_plain": 0.35,  # at most this fraction of the plain playbook's median
    "deploy_vs_floor": 2.5,  # whole fleet at once: at most this multiple of the floor's median
    "rolling_vs_floor": 3.0,  # rolling in two batches: at most this multiple of the floor's
    "rollback_seconds": 1.5,  # median rollback at N hosts
    "cli_overhead_ms": 250.0,
}


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def rolling_bench(root: Path, lab: Any, n: int) -> Bench:
    """deployer rolling in two batches to the same hosts: its own project, app,
    environment and port, so it never shares a lock, a release or a socket with `bench`."""
    return Bench(
        root,
        lab,
        n,
        app="benchroll",
        environment="rolling",
        port=ROLLING_PORT,
        strategy=dict(TWO_BATCHES),
    )


def rolling_batches(rolling: Bench) -> int:
    """How many batches deployer's own arithmetic makes of that strategy and those hosts."""
    from deployer.config.models import Strategy
    from deployer.plan.strategy import batches

    return len(batches(Strategy(**rolling.strategy), [h.name for h in rolling.hosts]))


def compare(bench: Bench, rolling: Bench, runs: int) -> dict[str, Any]:
    """Alternate the four contenders `runs` times; every run ships a new version to each."""
    times: dict[str, list[float]] = {"deployer": [], "rolling": [], "plain": [], "floor": []}
    floor_setup(bench)
    bench.deploy("warm")  # first installs, not timed
    rolling.deploy("warm")
    plain(bench, "warm")
    floor(bench, "warm")
    for i in range(runs):
        version = f"r{i}-{int(time.time())}"
        times["deployer"].append(bench.deploy(version))
        times["rolling"].append(rolling.deploy(version))
        times["plain"].append(plain(bench, version))
        times["floor"].append(floor(bench, version))
        say(f"  run {i + 1}/{runs}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()))
    medians = {k: median(v) for k, v in times.items()}
    return {
        "runs": times,
        "median": medians,
        "deployer_vs_plain": medians["deployer"] / medians["plain"],
        "deployer_vs_floor": medians["deployer"] / medians["floor"],
        "rolling_vs_floor": medians["rolling"] / medians["floor"],
        "rolling_strategy": dict(rolling.strategy),
        "rolling_batches": rolling_batches(rolling),
    }


def rollbacks(bench: Bench, runs: int) -> dict[str, Any]:
    seconds = []
    for i in range(runs):
        bench.deploy(f"rb{i}-{int(time.time())}")
        seconds.append(bench.deployer("rollback", bench.environment)[0])
    return {"runs": seconds, "median": median(seconds)}


def blue_green(root: Path, lab: Any, n: int, runs: int) -> dict[str, Any]:
    """Rollback wall time, blue-green (a flip back to the slot that still runs the previous
    release) against rolling a quarter of the hosts at a time behind the same edge proxy
    (drain, restart, put back), the same app binding its own port: `runs` alternated deploys
    and rollbacks each, medians."""
    flip = Bench(
        root / "bluegreen",
        lab,
        n,
        listen="port",
        app="benchbg",
        port=BLUE_GREEN_PORT,
        strategy={"kind": "blue_green"},
        domain="benchbg.lab.test",
    )
    drain = Bench(
        root / "bgrolling",
        lab,
        n,
        listen="port",
        app="benchbgroll",
        port=PROXIED_ROLLBACK_PORT,
        strategy={"kind": "rolling", "batch_size": "25%"},
        domain="benchbgroll.lab.test",
    )
    times: dict[str, list[float]] = {"blue_green": [], "rolling": []}
    for bench in (flip, drain):
        bench.prepare()
        bench.deploy("warm")
    for i in range(runs):
        for name, bench in (("blue_green", flip), ("rolling", drain)):
            bench.deploy(f"bg{i}-{int(time.time())}")
            times[name].append(bench.deployer("rollback", bench.environment)[0])
        say(f"  run {i + 1}/{runs}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()))
    return {"runs": times, "median": {k: median(v) for k, v in times.items()}}


CANARY_ANALYSIS = 4
"""Seconds of the bench canary's analysis (Prometheus scrapes every second)."""


def canary(root: Path, lab: Any, n: int, runs: int) -> dict[str, Any]:
    """A canary step's overhead: the same app deployed blue-green and as a canary of one step
    short of the flip (`steps: [50, 100]`, analysis CANARY_ANALYSIS s, monitored; blue-green
    refuses monitoring), `runs` alternated deploys each; the overhead of the step is the
    canary's median minus blue-green's minus the analysis window it waits by design (the
    analysis's run around its window, the flip's own switch run, the monitoring set-up the
    canary's prepare run carries). A light load straight to both slots of every host gives
    the analysis requests of both versions to judge."""
    monitored = {
        "features": {"monitoring": True},
        "monitoring": {
            "server": lab.hosts[0].name,
            "scrape_interval": 1,
            "min_requests": 0,
            "metrics": {
                "requests": "hello_requests_total",
                "duration": "hello_request_duration_seconds",
            },
        },
    }
    benches = {
        "canary": Bench(
            root / "canary",
            lab,
            n,
            listen="port",
            app="benchcanary",
            port=CANARY_PORT,
            strategy={"kind": "canary", "steps": [50, 100], "analysis": CANARY_ANALYSIS},
            domain="benchcanary.lab.test",
            environment_extra=monitored,
        ),
        "blue_green": Bench(
            root / "canarybg",
            lab,
            n,
            listen="port",
            app="benchcanarybg",
            port=CANARY_BLUE_GREEN_PORT,
            strategy={"kind": "blue_green"},
            domain="benchcanarybg.lab.test",
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in benches}
    parts: dict[str, list[float]] = {"analysis_run_beyond_window": [], "flip_run": []}
    for bench in benches.values():
        bench.prepare()
        bench.deploy("warm")
    slots = [
        (h.ip, port) for h in benches["canary"].hosts for port in (CANARY_PORT, CANARY_PORT + 1)
    ]
    load = Load([t for t in slots if t[0]], rate=40, max_seconds=600).start()
    try:
        for i in range(runs):
            for name, bench in benches.items():
                times[name].append(bench.deploy(f"c{i}-{int(time.time())}"))
                if name == "canary":
                    for part, seconds in _canary_parts(bench).items():
                        parts[part].append(seconds)
            say(
                f"  run {i + 1}/{runs}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items())
            )
    finally:
        load.stop()
    medians = {k: median(v) for k, v in times.items()}
    step = medians["canary"] - medians["blue_green"] - CANARY_ANALYSIS
    return {
        "runs": times,
        "median": medians,
        "analysis_seconds": CANARY_ANALYSIS,
        "step_overhead_s": step,
        "parts": parts,
        "parts_median": {k: median(v) for k, v in parts.items() if v},
    }


def _canary_parts(bench: Bench) -> dict[str, float]:
    """From the ledger's canary steps of the last deploy: the analysis's run beyond its
    window (from the first shift's end to the verdict, minus the window) and the flip's run
    (from the verdict to the flip)."""
    from deployer.ledger import Ledger

    with Ledger(bench.root / ".deployer" / "ledger.sqlite3") as ledger:
        last = ledger.history(bench.environment, 1)[0]
    at = {s.action: s.at for s in last.canary_steps if s.at is not None}
    if not {"shift", "analysis", "flip"} <= set(at):
        raise RuntimeError(f"the canary did not go through its steps: {last.reason}")
    return {
        "analysis_run_beyond_window": (at["analysis"] - at["shift"]).total_seconds()
        - CANARY_ANALYSIS,
        "flip_run": (at["flip"] - at["analysis"]).total_seconds(),
    }


def _canary_line(result: dict[str, Any], hosts: int) -> str:
    medians, parts = result["median"], result["parts_median"]
    return (
        f"canary at {hosts} hosts: a step's analysis run "
        f"{parts.get('analysis_run_beyond_window', float('nan')):.2f}s beyond its "
        f"{result['analysis_seconds']} s window, the flip's run "
        f"{parts.get('flip_run', float('nan')):.2f}s; deploy medians: canary 50/100 % "
        f"{medians['canary']:.2f}s, blue-green {medians['blue_green']:.2f}s "
        f"(difference minus the window: {result['step_overhead_s']:.2f}s)"
    )


def under_load(
    bench: Bench,
    rate: int,
    phases: tuple[str, ...] = ("deploy", "rollback"),
    *,
    through_proxy: bool = False,
) -> dict[str, Any]:
    """Failed requests and the longest gap while deploying, then while rolling back
    (straight to the app on every host, or through the edge proxy on every host)."""
    port = 80 if through_proxy else bench.port
    targets = [(h.ip, port) for h in bench.hosts if h.ip]
    out: dict[str, Any] = {}
    commands = {
        "deploy": ("deploy", bench.environment, "--version", f"load-{int(time.time())}"),
        "rollback": ("rollback", bench.environment),
    }
    for phase, args in ((p, commands[p]) for p in phases):
        load = Load(targets, rate=rate, max_seconds=120).start()
        time.sleep(1.0)  # a baseline second before the change
        bench.deployer(*args)
        time.sleep(1.0)
        result = load.stop()
        out[phase] = {
            "sent": result.sent,
            "ok": result.ok,
            "failed": result.failed,
            "errors": result.errors,
            "longest_gap_s": round(result.longest_gap, 3),
            "rate": round(result.rate, 1),
        }
        say(
            f"  {phase} under {rate} req/s: {result.failed} failed of {result.sent}, "
            f"longest gap {result.longest_gap:.3f}s"
        )
    return out


def scaling(root: Path, lab: Any, sizes: list[int]) -> dict[int, float]:
    out: dict[int, float] = {}
    for n in sizes:
        bench = Bench(root / f"scale-{n}", lab, n)
        bench.prepare()
        bench.deploy("warm")
        out[n] = bench.deploy(f"s{n}-{int(time.time())}")
        say(f"  {n} hosts: {out[n]:.2f}s")
    return out


SHOP = Path(__file__).resolve().parents[1] / "examples" / "shop"


def full_stack(root: Path, lab: Any, n: int, runs: int) -> dict[str, Any]:
    """examples/shop as shipped, but the whole fleet at once (next to the one-service
    figures): its static frontend, PostgreSQL and Redis on the first host, its API (two
    instances per host) on the other n - 1, its migration hook before every switch; `runs`
    deploys of a new version and `runs` rollbacks, medians."""
    import shutil

    import yaml

    shutil.copytree(SHOP, root, ignore=shutil.ignore_patterns("dist", "__pycache__", ".deployer"))
    config = yaml.safe_load((root / "deploy.yml").read_text())

    def entry(host: Any) -> dict[str, Any]:
        return {
            "name": host.name,
            "address": host.address,
            "port": host.port,
            "user": host.user,
            "private_address": host.ip,
        }

    hosts = list(lab.hosts[:n])
    config["app"]["name"] = "benchshop"
    config["services"]["api"]["port"] = FULL_STACK_PORT
    config["strategy"] = {"kind": "all_at_once"}
    config["environments"] = {
        "bench": {
            "domain": "benchshop.lab.test",
            "hosts": {
                "edge": [entry(hosts[0])],
                "backend": [entry(h) for h in hosts[1:]],
                "data": [entry(hosts[0])],
            },
            "replicas": {"backend": 2 * (n - 1)},
            # its PostgreSQL and Redis on the edge host; the migration hook runs every deploy
            "database": {"type": "postgresql", "component": "data"},
            "cache": {"type": "redis", "component": "data", "port": FULL_STACK_PORT + 100},
            "features": {"cdn": True},
            "ssh": {"private_key": str(lab.private_key), "known_hosts": str(lab.known_hosts)},
        }
    }
    (root / "deploy.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    shop = Bench(root, lab, n, environment="bench")  # runs the CLI in `root`; no config of its own
    shop.deploy("warm")
    deploys, backs = [], []
    for i in range(runs):
        deploys.append(shop.deploy(f"fs{i}-{int(time.time())}"))
        backs.append(shop.deployer("rollback", "bench")[0])
        say(f"  run {i + 1}/{runs}: deploy {deploys[-1]:.2f}s, rollback {backs[-1]:.2f}s")
    return {
        "hosts": n,
        "deploy_runs": deploys,
        "rollback_runs": backs,
        "deploy_median": median(deploys),
        "rollback_median": median(backs),
    }


def cli_overhead(bench: Bench) -> dict[str, float]:
    """Wall time of the work before any SSH connection: process start, config load,
    resolution, inventory generation (`deployer inventory`), median of 7."""
    samples = [bench.deployer("inventory", bench.environment, "--json")[0] * 1000 for _ in range(7)]
    return {"median_ms": median(samples), "min_ms": min(samples)}


def peak_memory(bench: Bench) -> float:
    """Peak RSS (MiB) of the deployer process itself during a deploy (not its Ansible
    children): read from /proc/self/status at exit."""
    probe = (
        "import atexit,sys\n"
        "def hwm():\n"
        "    for l in open('/proc/self/status'):\n"
        "        if l.startswith('VmHWM'): sys.stderr.write('VMHWM '+l.split()[1]+'\\n')\n"
        "atexit.register(hwm)\n"
        f"sys.argv=['deployer','deploy',{bench.environment!r},'--version','mem-{int(time.time())}']\n"
        "from deployer.cli import main; main()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=bench.root, capture_output=True, text=True, timeout=600
    )
    line = next((x for x in proc.stderr.splitlines() if x.startswith("VMHWM ")), "VMHWM 0")
    return int(line.split()[1]) / 1024


def plot(sizes: dict[int, float], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    xs = sorted(sizes)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(xs, [sizes[x] for x in xs], marker="o", label="deployer deploy")
    ax.set_xlabel("hosts")
    ax.set_ylabel("wall time (s)")
    ax.set_title("deploy wall time by fleet size (2-core control host)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True


def verdicts(results: dict[str, Any]) -> list[str]:
    lines = []
    cmp_ = results["compare"]
    for key, limit, value in (
        ("deploy_vs_plain", TARGETS["deploy_vs_plain"], cmp_["deployer_vs_plain"]),
        ("deploy_vs_floor", TARGETS["deploy_vs_floor"], cmp_["deployer_vs_floor"]),
        ("rolling_vs_floor", TARGETS["rolling_vs_floor"], cmp_["rolling_vs_floor"]),
        ("rollback_seconds", TARGETS["rollback_seconds"], results["rollback"]["median"]),
        ("cli_overhead_ms", TARGETS["cli_overhead_ms"], results["cli"]["median_ms"]),
    ):
        lines.append(
            f"{'PASS' if value <= limit else 'MISS'} {key}: {value:.2f} (target <= {limit})"
        )
    for phase, numbers in results["load"].items():
        ok = numbers["failed"] == 0
        lines.append(
            f"{'PASS' if ok else 'MISS'} failed requests during {phase}: {numbers['failed']}"
        )
    sizes = results["scaling"]
    if len(sizes) >= 2:
        small, large = min(sizes, key=int), max(sizes, key=int)
        per_small = sizes[small] / int(small)
        per_large = sizes[large] / int(large)
        lines.append(
            f"{'PASS' if per_large <= per_small * 1.05 else 'MISS'} growth {small}->{large} hosts: "
            f"{per_small:.3f}s/host -> {per_large:.3f}s/host (no worse than linear)"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scale", default="1,5,10,25,50")
    parser.add_argument("--rate", type=int, default=240, help="requests/s in total")
    parser.add_argument("--lab", default="bench")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--keep-lab", action="store_true")
    parser.add_argument(
        "--only",
        choices=["blue_green", "canary", "nodes"],
        help="measure this part alone (on --hosts hosts; nodes: --hosts app hosts and two "
        "execution nodes)",
    )
    args = parser.parse_args()
    if args.only == "blue_green":
        return only_blue_green(args)
    if args.only == "canary":
        return only_canary(args)
    if args.only == "nodes":
        return only_nodes(args)
    sizes = sorted({int(x) for x in args.scale.split(",")} | {args.hosts})
    args.out.mkdir(parents=True, exist_ok=True)
    say(f"lab {args.lab}: {max(sizes)} hosts")
    lab = labs.up(max(sizes), name=args.lab)
    results: dict[str, Any] = {"hosts": args.hosts, "runs": args.runs, "cores": _cores()}
    try:
        with tempfile.TemporaryDirectory(prefix="deployer-bench-") as tmp:
            bench = Bench(Path(tmp) / "main", lab, args.hosts)
            bench.prepare()
            rolling = rolling_bench(Path(tmp) / "rolling", lab, args.hosts)
            rolling.prepare()
            say(f"1. deploy, {args.hosts} hosts, {args.runs} runs each")
            results["compare"] = compare(bench, rolling, args.runs)
            say("2. rollback")
            results["rollback"] = rollbacks(bench, args.runs)
            say("3. downtime under load")
            results["load"] = under_load(bench, args.rate)
            say("3b. downtime under load, an app that binds its own port (no proxy)")
            own = Bench(
                Path(tmp) / "port",
                lab,
                args.hosts,
                listen="port",
                app="benchport",
                port=PORT_MODE_PORT,
            )
            own.prepare()
            own.deploy("warm")
            results["load_port"] = under_load(own, args.rate, phases=("deploy",))
            say("3c. the same app behind the edge proxy, rolling a quarter of the hosts at a time")
            proxied = Bench(
                Path(tmp) / "proxied",
                lab,
                args.hosts,
                listen="port",
                app="benchproxy",
                port=PROXIED_PORT,
                strategy={"kind": "rolling", "batch_size": "25%"},
                domain="benchproxy.lab.test",
            )
            proxied.prepare()
            proxied.deploy("warm")
            results["proxied_deploy_s"] = proxied.deploy(f"proxied-{int(time.time())}")
            results["load_proxy"] = under_load(proxied, args.rate, through_proxy=True)
            say("3e. rollback behind the edge proxy: blue-green against rolling")
            results["blue_green"] = blue_green(Path(tmp), lab, args.hosts, args.runs)
            say("3f. a canary step's overhead, against blue-green")
            results["canary"] = canary(Path(tmp), lab, args.hosts, args.runs)
            say(f"3d. the full-stack example (frontend + API), {args.hosts} hosts")
            results["full_stack"] = full_stack(Path(tmp) / "shop", lab, args.hosts, args.runs)
            say("5. CLI overhead")
            results["cli"] = cli_overhead(bench)
            say("4. scaling")
            results["scaling"] = {str(k): v for k, v in scaling(Path(tmp), lab, sizes).items()}
            big = Bench(Path(tmp) / f"scale-{max(sizes)}", lab, max(sizes))
            results["peak_memory_mib"] = peak_memory(big)
    finally:
        if not args.keep_lab:
            labs.down(args.lab)
    results["plot"] = plot(
        {int(k): v for k, v in results["scaling"].items()}, args.out / "scaling.png"
    )
    results["verdicts"] = verdicts(results)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(report(results))
    return 0


def _only(
    args: argparse.Namespace,
    name: str,
    measure: Callable[[Path, Any, int, int], dict[str, Any]],
    line: Callable[[dict[str, Any]], str],
    extra_hosts: int = 0,
) -> int:
    """One part alone (`--only NAME`): on a lab of --hosts (+ extra_hosts) hosts, measured
    --runs times, written to <out>/NAME.json, its line printed."""
    lab = labs.up(args.hosts + extra_hosts, name=args.lab)
    try:
        with tempfile.TemporaryDirectory(prefix="deployer-bench-") as tmp:
            result = measure(Path(tmp), lab, args.hosts, args.runs)
    finally:
        if not args.keep_lab:
            labs.down(args.lab)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=2))
    print(line(result))
    return 0


def only_blue_green(args: argparse.Namespace) -> int:
    return _only(args, "blue_green", blue_green, lambda r: _blue_green_line(r, args.hosts))


def only_nodes(args: argparse.Namespace) -> int:
    say(f"execution nodes: lab {args.lab}, {args.hosts} app hosts + 2 nodes, {args.runs} runs")
    return _only(args, "nodes", nodes_vs_direct, nodes_line, extra_hosts=2)


def only_canary(args: argparse.Namespace) -> int:
    return _only(args, "canary", canary, lambda r: _canary_line(r, args.hosts))


def _blue_green_line(result: dict[str, Any], hosts: int) -> str:
    medians = result["median"]
    return (
        f"rollback behind the edge proxy at {hosts} hosts: blue-green (a flip back) "
        f"{medians['blue_green']:.2f}s, rolling 25% (drain, restart, put back) "
        f"{medians['rolling']:.2f}s (medians)"
    )


def _cores() -> int:
    import os

    return os.cpu_count() or 0


def report(r: dict[str, Any]) -> str:
    m = r["compare"]["median"]
    lines = [
        f"deploy at {r['hosts']} hosts (median of {r['runs']}): deployer {m['deployer']:.2f}s, "
        f"rolling in two batches {m['rolling']:.2f}s, "
        f"plain playbook {m['plain']:.2f}s, floor {m['floor']:.2f}s; "
        f"deployer/plain {r['compare']['deployer_vs_plain']:.2f}, "
        f"deployer/floor {r['compare']['deployer_vs_floor']:.2f}, "
        f"rolling/floor {r['compare']['rolling_vs_floor']:.2f}",
        f"rollback at {r['hosts']} hosts: median {r['rollback']['median']:.2f}s",
        *(
            [f"deploy behind the edge proxy, 25% per batch: {r['proxied_deploy_s']:.2f}s"]
            if "proxied_deploy_s" in r
            else []
        ),
        *(
            [
                f"full-stack example (static frontend + API) at {r['full_stack']['hosts']} "
                f"hosts, whole fleet at once: deploy {r['full_stack']['deploy_median']:.2f}s, "
                f"rollback {r['full_stack']['rollback_median']:.2f}s (medians)"
            ]
            if "full_stack" in r
            else []
        ),
        *([_blue_green_line(r["blue_green"], r["hosts"])] if "blue_green" in r else []),
        *([_canary_line(r["canary"], r["hosts"])] if "canary" in r else []),
        *(
            f"{phase} under load, listen {mode}: {n['failed']} failed of {n['sent']}, "
            f"longest gap {n['longest_gap_s']:.3f}s"
            for mode, key in (
                ("socket", "load"),
                ("port", "load_port"),
                ("port behind the edge proxy", "load_proxy"),
            )
            for phase, n in r.get(key, {}).items()
        ),
        "scaling: " + ", ".join(f"{k} hosts {v:.2f}s" for k, v in r["scaling"].items()),
        f"CLI overhead before SSH: {r['cli']['median_ms']:.0f} ms; "
        f"control process peak memory at {max(int(k) for k in r['scaling'])} hosts: "
        f"{r['peak_memory_mib']:.0f} MiB",
        *r["verdicts"],
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
