"""The one place results become output: rich text for people, JSON for scripts."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import Enum
from functools import singledispatch
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from deployer.engine.preview import PlanResult
from deployer.engine.results import DeployResult
from deployer.errors import DeployerError
from deployer.generate import Written
from deployer.inventories import WrittenInventory
from deployer.ledger import Deployment, HookResult, HostResult, ServiceResult
from deployer.ledger.transfer import Moved
from deployer.plan.generated import Generated
from deployer.stats import Durations, Stats
from deployer.targets.base import (
    AccessoryResult,
    AccessoryState,
    BackupsResult,
    ExecResult,
    HostReport,
    LockInfo,
    LogLine,
    LogsResult,
    MaintenanceResult,
    ReleasesResult,
    RestoreResult,
    RollbackResult,
    StatusResult,
)
from deployer.targets.ssh.monitoring import MonitoringResult

if TYPE_CHECKING:  # imported only where their commands ran: they pull in docker
    from deployer.lab import LabState
    from deployer.targets.swarm.build import BuildResult


def jsonable(value: Any) -> Any:
    """Dataclasses, enums, paths and datetimes as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (Path,)):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return value


def emit_json(console: Console, value: Any) -> None:
    console.out(json.dumps(jsonable(value), indent=2, sort_keys=False), highlight=False)


def emit_json_line(console: Console, value: Any) -> None:
    """One JSON object on one line (a stream of them: `logs -f --json`)."""
    console.out(json.dumps(jsonable(value), sort_keys=False), highlight=False)


def error(console: Console, exc: DeployerError, *, as_json: bool) -> None:
    if as_json:
        emit_json(
            console,
            {"error": exc.message, "details": list(exc.details), "exit_code": int(exc.exit_code)},
        )
        return
    console.print(f"[bold red]error:[/] {escape(exc.message)}")
    for line in exc.details:
        console.print(f"  {escape(line)}")


@singledispatch
def show(value: Any, console: Console) -> None:
    """Human rendering of a command's result. A value without a renderer of its own is shown
    field by field, never as a Python repr."""
    if isinstance(value, str):
        console.print(escape(value))
        return
    data = jsonable(value)
    if not isinstance(data, Mapping):
        console.print(escape(_plain(data)))
        return
    for key, item in data.items():
        console.print(f"{escape(str(key))}: {escape(_plain(item))}")


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


_STATUS_STYLE = {
    "SUCCEEDED": "green",
    "FAILED": "red",
    "ROLLED_BACK": "yellow",
    "INTERRUPTED": "magenta",
    "RUNNING": "cyan",
}


def _status(text: str) -> str:
    return f"[{_STATUS_STYLE.get(text, 'white')}]{text}[/]"


def _services(results: Sequence[ServiceResult], *, restarts: bool = False) -> str:
    """`api healthy (restarted), worker UNHEALTHY` for an app of several services."""
    out = []
    for s in results:
        state = {True: "healthy", False: "UNHEALTHY", None: "-"}[s.healthy]
        out.append(f"{s.name} {state}" + (" (restarted)" if restarts and s.restarted else ""))
    return ", ".join(out)


def _hosts_table(rows: Sequence[Sequence[str]], *headers: str) -> Table:
    table = Table(box=None, pad_edge=False)
    for header in headers:
        table.add_column(header)
    for row in rows:
        table.add_row(*(escape(c) for c in row))
    return table


@show.register
def _(result: DeployResult, console: Console) -> None:
    rows: list[tuple[str, ...]] = [
        (h.host, h.status.value, h.stage, h.before or "-", h.after or "-", h.message)
        for h in result.hosts
    ]
    headers: tuple[str, ...] = ("host", "result", "stage", "before", "after", "message")
    if any(h.services for h in result.hosts):  # an app of several services
        rows = [
            (*r[:5], _services(h.services, restarts=True), r[5])
            for r, h in zip(rows, result.hosts, strict=True)
        ]
        headers = (*headers[:5], "services", headers[5])
    console.print(_hosts_table(rows, *headers))
    _analyses(result.hosts, console, ANALYSIS_LINES)
    _hooks(result.hooks, console)
    noop = " (no-op: already deployed)" if result.noop else ""
    console.print(
        f"deployment #{result.deployment_id} {escape(result.environment)} "
        f"{escape(result.version)}: {_status(result.status.value)}{noop} "
        f"in {result.deploy_seconds:.1f}s"
        + (f", rollback {result.rollback_seconds:.1f}s" if result.rollback_seconds else "")
    )
    if result.reason:
        console.print(f"  reason: {escape(result.reason)}")
    _notes(result.notes, console)


def _notes(notes: Sequence[str], console: Console) -> None:
    for note in notes:
        console.print(f"  note: {escape(note)}")


def _hooks(hooks: Sequence[HookResult], console: Console) -> None:
    """Each hook's outcome, then its output (masked), indented."""
    for hook in hooks:
        if hook.ok:
            state = "[green]ok[/]"
        elif hook.timed_out:
            state = "[red]timed out[/]"
        else:
            state = f"[red]failed (exit {hook.exit_code})[/]"
        cut = " (the start of its output was cut)" if hook.truncated else ""
        console.print(
            f"hook {hook.name} on {escape(hook.host)}: {state} in {hook.seconds:.1f}s{cut}"
        )
        for line in hook.output.rstrip("\n").splitlines()[-HOOK_LINES:]:
            console.print(f"  | {escape(line)}")


def _analyses(hosts: Sequence[HostReport | HostResult], console: Console, lines: int) -> None:
    """Why each failed host failed, then the last `lines` lines its app wrote (masked)."""
    for h in hosts:
        a = h.analysis
        if a is None:
            continue
        where = f" (service {escape(a.service)})" if a.service else ""
        console.print(f"why {escape(h.host)} failed{where}: [red]{escape(a.summary or a.label)}[/]")
        for line in a.journal[-lines:]:
            console.print(f"  | {escape(line)}")


ANALYSIS_LINES = 5
"""Journal lines shown under a failed host by `deploy` (`history --id` shows all kept)."""

HOOK_LINES = 40
"""Lines of a hook's output shown (the ledger keeps all of what the host sent)."""


@show.register
def _(result: RollbackResult, console: Console) -> None:
    rows = [
        (h.host, h.status.value, h.before or "-", h.after or "-", h.message) for h in result.hosts
    ]
    console.print(_hosts_table(rows, "host", "result", "before", "after", "message"))
    console.print(
        f"rollback #{result.deployment_id} {escape(result.environment)} -> "
        f"{escape(result.version)}: {_status(result.status.value)} in {result.seconds:.1f}s"
    )
    if result.reason:
        console.print(f"  reason: {escape(result.reason)}")


@show.register
def _(result: StatusResult, console: Console) -> None:
    rows: list[tuple[str, ...]] = []
    for h in result.hosts:
        health = (
            "unreachable"
            if not h.reachable
            else {True: "healthy", False: "UNHEALTHY", None: "-"}[h.healthy]
        )
        version = f"{h.current or '-'} ({h.slot})" if h.slot else h.current or "-"
        rows.append((h.host, version, health, h.message))
    if any(h.services for h in result.hosts):  # an app of several services
        rows = [
            (*r[:3], _services(h.services), r[3]) for r, h in zip(rows, result.hosts, strict=True)
        ]
        console.print(_hosts_table(rows, "host", "version", "health", "services", "detail"))
    else:
        console.print(_hosts_table(rows, "host", "version", "health", "detail"))
    if result.last is not None:
        last = result.last
        console.print(
            f"last deployment: #{last.id} {escape(last.version)} {_status(last.status.value)} "
            f"({last.started_at:%Y-%m-%d %H:%M:%S} UTC)"
        )
    for cert in result.certificates:
        if cert.not_after is not None:
            issuer = f", issued by {escape(cert.issuer)}" if cert.issuer else ""
            console.print(
                f"certificate on {escape(cert.host)}: valid until {cert.not_after} "
                f"({cert.days_left:g} days){issuer}"
            )
    if result.accessories:
        console.print(_accessories_table(result.accessories))
    if result.problems:
        for problem in result.problems:
            console.print(f"[yellow]![/] {escape(problem)}")
    else:
        versions = ", ".join(result.versions) or "nothing deployed"
        console.print(f"[green]ok[/]: every host runs {escape(versions)} and is healthy")


def _bytes(value: int | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _accessories_table(accessories: Sequence[AccessoryState]) -> Table:
    rows = []
    for a in accessories:
        state = (
            "unreachable"
            if not a.reachable
            else {True: "running", False: "STOPPED", None: "-"}[a.running]
        )
        if a.connections is not None:
            detail = f"{a.connections} connections"
        elif a.used_memory is not None:
            detail = f"{_bytes(a.used_memory)} used"
        else:
            detail = ""
        if a.role == "standby":
            lag = f", {_bytes(a.lag_bytes)} behind" if a.lag_bytes is not None else ""
            detail = ("following the primary" if a.in_recovery else "NOT following") + lag
        free = f"{_bytes(a.free_bytes)} free" if a.free_bytes is not None else ""
        rows.append(
            (
                a.kind if a.role == "primary" else f"{a.kind} (standby)",
                a.engine,
                a.host,
                state,
                a.version or "-",
                ", ".join(x for x in (detail, free) if x),
                a.message,
            )
        )
    return _hosts_table(rows, "accessory", "server", "host", "state", "version", "use", "detail")


@show.register
def _(result: BackupsResult, console: Console) -> None:
    rows = [
        (
            str(b.id),
            f"{b.created_at:%Y-%m-%d %H:%M:%S}",
            b.label,
            b.host,
            _bytes(b.bytes),
            f"#{b.deployment_id}" if b.deployment_id else "-",
            b.file,
        )
        for b in result.backups
    ]
    if rows:
        console.print(
            _hosts_table(rows, "id", "taken (UTC)", "before", "host", "size", "deploy", "file")
        )
    else:
        console.print(f"no backups of {escape(result.environment)} recorded")


@show.register
def _(result: RestoreResult, console: Console) -> None:
    b = result.backup
    if result.ok:
        console.print(
            f"[green]restored[/] backup {b.id} ({escape(b.file)}) into "
            f"{escape(result.environment)}'s database on {escape(b.host)} in {result.seconds:.1f}s"
        )
    else:
        console.print(f"[red]restore of backup {b.id} failed[/]: {escape(result.message)}")


@show.register
def _(result: AccessoryResult, console: Console) -> None:
    console.print(_accessories_table(result.accessories))
    verdict = "[green]ok[/]" if result.ok else "[red]not every accessory runs[/]"
    console.print(f"accessory {result.action} {escape(result.environment)}: {verdict}")
    _notes(result.notes, console)


@show.register
def _(result: ReleasesResult, console: Console) -> None:
    rows = [
        (r.version, ", ".join(r.marks), ", ".join(r.hosts), ", ".join(r.missing) or "-")
        for r in result.releases
    ]
    console.print(_hosts_table(rows, "version", "marks", "stored on", "missing on"))


def _instances(ports: tuple[int, ...]) -> str:
    if not ports:
        return "1"
    return f"{len(ports)} on {ports[0]}-{ports[-1]}"


@show.register
def _(result: PlanResult, console: Console) -> None:
    rows: list[tuple[str, ...]] = [
        (str(h.batch), h.host, h.current or "-", h.new, h.action) for h in result.hosts
    ]
    if any(h.services for h in result.hosts):  # an app of several services: what runs where
        rows = [(*row, ", ".join(h.services)) for row, h in zip(rows, result.hosts, strict=True)]
        console.print(_hosts_table(rows, "batch", "host", "current", "new", "action", "services"))
    elif any(h.ports for h in result.hosts):  # several instances per host: where they listen
        rows = [(*row, _instances(h.ports)) for row, h in zip(rows, result.hosts, strict=True)]
        console.print(_hosts_table(rows, "batch", "host", "current", "new", "action", "instances"))
    else:
        console.print(_hosts_table(rows, "batch", "host", "current", "new", "action"))
    changes = sum(1 for h in result.hosts if h.action == "deploy")
    console.print(
        f"plan for {escape(result.environment)}: {changes} host(s) to {escape(result.version)} "
        f"in {result.batches} batch(es), {result.runs} remote run(s); nothing was changed"
    )
    if result.version_is_bad:
        console.print(f"[red]![/] {escape(result.version)} is marked bad: deploy would refuse it")
    if result.proxy is not None:
        proxy = result.proxy
        flip = next((s for s in result.steps if s.get("action") == "flip"), None)
        how = (
            "the new release starts in each host's other slot (blue: the service's port, "
            "green: the next), then it flips to the new slots; the old ones keep running "
            f"{flip.get('seconds', 0):g} s"
            if flip is not None
            else "each batch is drained from it before it restarts"
        )
        console.print(
            f"edge proxy on {escape(', '.join(proxy.hosts))} (port {proxy.port}, server name "
            f"{escape(proxy.server_name or '_')}) over {escape(', '.join(proxy.backends))}; "
            f"{escape(how)}"
        )
    for line in result.accessories:
        console.print(f"accessory {escape(line)} (set up before anything is switched)")
    for line in result.hooks:
        console.print(f"hook {escape(line)}")


@show.register
def _(info: LockInfo, console: Console) -> None:
    console.print(f"{escape(info.environment)} ({escape(info.host)}): {escape(info.describe())}")


@show.register
def _(result: MonitoringResult, console: Console) -> None:
    rows = [(h.host, h.role, _status(h.status.upper()), escape(h.message)) for h in result.hosts]
    console.print(_hosts_table(rows, "host", "runs", "result", "message"))
    verdict = "ready" if result.exit_code == 0 else "[red]not ready[/]"
    console.print(
        f"monitoring {verdict} in {result.environment}: Prometheus on {result.server} "
        f"({result.prometheus}), node exporter on {len(result.hosts)} host(s), "
        f"{result.seconds:.1f}s; Grafana dashboard: "
        f"`deployer monitoring dashboard {result.environment}`"
    )


@show.register
def _(result: WrittenInventory, console: Console) -> None:
    files = ", ".join(result.files)
    console.print(
        f"inventory of {escape(result.environment)} written to {escape(str(result.directory))}: "
        f"{escape(files)}"
    )
    console.print(
        f"  use it: ansible-playbook -i {escape(str(result.directory))} playbooks/facts.yml "
        "-e deployer_hosts=all  (from the deployer repository, whose ansible.cfg finds "
        "deployer.core)"
    )


@show.register
def _(result: Written, console: Console) -> None:
    what = "pipeline" if result.kind == "ci" else "Terraform"
    of = f" of {result.environment}" if result.environment else ""
    console.print(f"{what}{escape(of)} ({escape(result.provider)}) written:")
    for path in result.files:
        console.print(f"  {escape(str(path))}")
    _notes(result.notes, console)


def show_generated(result: Generated, console: Console, notes: Console) -> None:
    """The generated files on stdout, exactly as generated (several files one after the
    other: each begins with its own comment header); notes go to `notes` (stderr)."""
    for name, text in result.files.items():
        if len(result.files) > 1:
            console.out(f"# --- {name}", highlight=False)
        show_text(text, console)
    _notes(result.notes, notes)


_ROWS = {
    "deployments": "deployments and rollbacks",
    "deployment_hosts": "host results",
    "deployment_hooks": "hook runs",
    "bad_versions": "bad versions",
    "observations": "host observations",
    "backups": "database backups",
}


@show.register
def _(moved: Moved, console: Console) -> None:
    rows = ", ".join(f"{_ROWS.get(table, table)}: {n}" for table, n in moved.rows.items())
    if moved.copied:
        console.print(f"moved {escape(moved.source)} into {escape(moved.target)}: {rows}")
        console.print("  ids and times kept; the SQLite file was left as it was")
    else:
        console.print(
            f"{escape(moved.target)} already holds every row of {escape(moved.source)} "
            f"({rows}): nothing to do"
        )


def show_history(rows: list[Deployment], console: Console) -> None:
    table = Table(box=None, pad_edge=False)
    for header in (
        "#",
        "env",
        "kind",
        "version",
        "status",
        "started (UTC)",
        "took",
        "by",
        "reason",
    ):
        table.add_column(header)
    for d in rows:
        took = d.deploy_seconds or d.rollback_seconds
        table.add_row(
            str(d.id),
            escape(d.environment),
            d.kind.value,
            escape(d.version),
            _status(d.status.value) + (" (no-op)" if d.noop else ""),
            f"{d.started_at:%Y-%m-%d %H:%M:%S}",
            f"{took:.1f}s" if took else "-",
            escape(f"{d.user}@{d.control_host}"),
            escape(d.reason[:80]),
        )
    console.print(table if rows else "no deployments recorded")


def show_deployment(d: Deployment, console: Console) -> None:
    """One deployment as the ledger keeps it (`history ENV --id N`): what, who, the outcome,
    every host with why it failed, and the hooks with their output."""
    took = d.deploy_seconds or d.rollback_seconds
    noop = " (no-op)" if d.noop else ""
    console.print(
        f"deployment #{d.id} {escape(d.environment)} {d.kind.value} {escape(d.version)}: "
        f"{_status(d.status.value)}{noop}" + (f" in {took:.1f}s" if took else "")
    )
    rows = [
        ("previous", d.previous_version or "-"),
        ("stage", d.stage or "-"),
        ("started (UTC)", f"{d.started_at:%Y-%m-%d %H:%M:%S}"),
        ("ended (UTC)", f"{d.ended_at:%Y-%m-%d %H:%M:%S}" if d.ended_at else "-"),
        ("by", f"{d.user}@{d.control_host} (pid {d.pid})"),
        ("artifact", d.artifact_sha256 or "-"),
    ]
    if d.error_rate is not None or d.p95_ms is not None:
        measured = []
        if d.error_rate is not None:
            measured.append(f"error rate {d.error_rate:.2f}%")
        if d.p95_ms is not None:
            measured.append(f"p95 {d.p95_ms:.0f} ms")
        rows.append(("watch", ", ".join(measured)))
    if d.reason:
        rows.append(("reason", d.reason))
    for key, value in rows:
        console.print(f"  {key + ':':<15}{escape(value)}")
    if d.hosts:
        console.print(
            _hosts_table(
                [
                    (
                        h.host,
                        h.status.value,
                        h.stage,
                        h.version_before or "-",
                        h.version_after or "-",
                        h.message,
                    )
                    for h in d.hosts
                ],
                "host",
                "result",
                "stage",
                "before",
                "after",
                "message",
            )
        )
    _analyses(d.hosts, console, 1000)
    _hooks(d.hooks, console)
    _canary_steps(d, console)


def _number(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:.2f}{unit}" if unit == "%" else f"{value:.0f}{unit}"


def _canary_steps(d: Deployment, console: Console) -> None:
    """A canary's steps: each shift, analysis (with both slots' figures), decision, the flip
    or the abort, in order."""
    if not d.canary_steps:
        return
    console.print(
        _hosts_table(
            [
                (
                    f"{s.share} %",
                    s.action,
                    s.outcome,
                    f"{_number(s.canary_error_rate, '%')} / {_number(s.stable_error_rate, '%')}",
                    f"{_number(s.canary_p95_ms, ' ms')} / {_number(s.stable_p95_ms, ' ms')}",
                    _number(s.canary_requests, ""),
                    f"{s.seconds:.1f}s",
                    s.message,
                )
                for s in d.canary_steps
            ],
            "canary",
            "step",
            "outcome",
            "errors new / stable",
            "p95 new / stable",
            "requests new",
            "took",
            "message",
        )
    )


def show_canary_decision(decision: Mapping[str, Any], console: Console) -> None:
    console.print(
        f"{escape(str(decision['environment']))}: deployment #{decision['deployment_id']} "
        f"at {decision['share']} %: {escape(str(decision['decision']))} recorded; the waiting "
        "deploy goes on within a second"
    )


def show_log_line(line: LogLine, console: Console) -> None:
    """`lab2 2026-12-04 05:00:01.123 api | message`: the host, UTC time and unit first."""
    unit = line.unit.removesuffix(".service")
    when = f"{line.time:%Y-%m-%d %H:%M:%S.%f}"[:-3]  # milliseconds
    console.print(
        f"[cyan]{escape(line.host)}[/] [dim]{when}[/] {escape(unit)} | {escape(line.message)}",
        highlight=False,
        soft_wrap=True,
    )


def show_log_error(host: str, why: str, console: Console) -> None:
    console.print(f"[red]{escape(host)}[/]: {escape(why)}", highlight=False)


@show.register
def _(result: MaintenanceResult, console: Console) -> None:
    for host, why in result.errors.items():
        console.print(f"{escape(host)}: [red]failed[/]: {escape(why)}", highlight=False)
    done = [h for h in result.hosts if h not in result.errors]
    if result.on:
        what = f"maintenance on (503, Retry-After {result.retry_after}s)"
    else:
        what = "maintenance off"
    verdict = "[green]ok[/]" if result.ok else "[red]not on every proxy host[/]"
    console.print(
        f"{escape(result.environment)}: {what} on {escape(', '.join(done) or 'no host')}: {verdict}"
    )


@show.register
def _(result: ExecResult, console: Console) -> None:
    """Each host's outcome, then its output (masked), indented."""
    for r in result.results:
        state = "[green]ok[/]" if r.ok else f"[red]exit {r.exit_code}[/]"
        if r.timed_out:
            state = "[red]timed out[/]"
        cut = " (the start of its output was cut)" if r.truncated else ""
        console.print(f"{escape(r.host)}: {state} in {r.seconds:.1f}s{cut}", highlight=False)
        for line in r.output.rstrip("\n").splitlines():
            console.print(f"  | {escape(line)}", highlight=False)
    for host, why in result.errors.items():
        console.print(f"{escape(host)}: [red]did not run[/]: {escape(why)}", highlight=False)
    failed = len(result.errors) + sum(1 for r in result.results if not r.ok)
    total = len(result.errors) + len(result.results)
    verdict = (
        "[green]ok on every host[/]" if result.ok else f"[red]failed on {failed} of {total}[/]"
    )
    console.print(f"exec {escape(result.environment)}: {verdict}")


@show.register
def _(result: LogsResult, console: Console) -> None:
    for line in result.lines:
        show_log_line(line, console)
    if not result.lines:
        console.print("no lines")
    for host, why in result.errors.items():
        show_log_error(host, why, console)


def show_stats(stats: Stats, console: Console) -> None:
    table = Table(box=None, pad_edge=False)
    for header in (
        "env",
        "deploys",
        "ok",
        "failed",
        "rolled back",
        "interrupted",
        "success",
        "deploy p50/p95",
        "rollback p50/p95",
        "5xx after (mean)",
        "p95 after (mean)",
    ):
        table.add_column(header)

    def pair(d: Durations) -> str:
        return "-" if d.p50 is None else f"{d.p50:.1f}s / {d.p95:.1f}s"

    for env in (*stats.environments, stats.overall):
        rate = "-" if env.success_rate is None else f"{env.success_rate:.0%}"
        table.add_row(
            escape(env.environment or "(all)"),
            str(env.deployments),
            str(env.succeeded),
            str(env.failed),
            str(env.rolled_back),
            str(env.interrupted),
            rate,
            pair(env.deploy_seconds),
            pair(env.rollback_seconds),
            "-" if env.error_rate.mean is None else f"{env.error_rate.mean:.2f}%",
            "-" if env.p95_ms.mean is None else f"{env.p95_ms.mean:.0f} ms",
        )
    console.print(table)


def show_build(result: BuildResult, console: Console) -> None:
    rows = [
        (
            i.component,
            i.image,
            i.image_id.removeprefix("sha256:")[:12],
            i.stack,
            "generated" if i.generated else "the app's",
            "cached" if i.cached else "built",
        )
        for i in result.images
    ]
    console.print(_hosts_table(rows, "component", "image", "id", "stack", "Dockerfile", "build"))
    cached = sum(1 for i in result.images if i.cached)
    console.print(
        f"build {escape(result.environment)} {escape(result.version)}: "
        f"{len(result.images)} image(s), {cached} cached, in {result.seconds:.1f}s; "
        f"deploy it with `deployer deploy {escape(result.environment)} "
        f"--version {escape(result.version)}`"
    )


def show_text(text: str, console: Console) -> None:
    """A generated document (YAML, JSON) exactly as it was generated."""
    console.out(text, highlight=False, end="" if text.endswith("\n") else "\n")


def show_inventory(inventory: Mapping[str, Any], console: Console) -> None:
    show_text(yaml.safe_dump(dict(inventory), sort_keys=False), console)


def show_validation(result: Mapping[str, Any], console: Console) -> None:
    names = ", ".join(result["environments"])
    console.print(f"[green]ok[/]: {escape(result['config'])} is valid ({escape(names)})")
    for note in result["notes"]:
        console.print(f"  note: {escape(note)}")


def show_written(path: Path, what: str, console: Console, hint: str = "") -> None:
    console.print(f"{escape(what)} written to {escape(str(path))}" + (f": {hint}" if hint else ""))


def show_lock_release(environment: str, before: LockInfo, console: Console) -> None:
    if before.held:
        console.print(f"lock released (it was: {escape(before.describe())})")
    else:
        console.print(f"{escape(environment)}: not locked")


def show_lab(state: LabState, console: Console) -> None:
    if not state.hosts:
        console.print(f"lab {escape(state.name)}: no hosts")
        return
    rows = [(h.name, f"{h.user}@{h.address}:{h.port}", h.state) for h in state.hosts]
    console.print(_hosts_table(rows, "host", "ssh", "state"))
    console.print(
        f"hosts file: {escape(str(state.hosts_file))}  "
        "(use `hosts: {<component>: lab}` in deploy.yml)"
    )


def show_lab_down(state: LabState, console: Console) -> None:
    console.print(f"lab {escape(state.name)}: removed {len(state.hosts)} host(s)")
