"""Deployment KPIs from the ledger, for people (`deployer stats`) and for Prometheus.

Definitions, all computed per environment and over all environments together:

* ``deployments`` counts finished runs of kind ``deploy``, so ``succeeded + failed +
  rolled_back + interrupted == deployments``; ``running`` counts runs of any kind in
  progress.  Manual rollback runs are not deployments; they count only towards rollback
  durations and recovery.
* ``success_rate`` = succeeded / deployments, None when there are none.
* ``noop``: succeeded deploys that found every host already on the version.  They are in
  ``succeeded`` but left out of the deploy durations, which they would drag towards zero.
* ``deploy_seconds``: durations of SUCCEEDED, non-no-op deploys; ``rollback_seconds``: of
  every finished run that recorded one (automatic rollbacks and manual rollback runs).
* Percentiles are nearest-rank: the p-th percentile of n sorted values is the value at rank
  ceil(p/100 * n) (1-based). It is always an observed duration, never an interpolation, so
  the median of [1, 2, 3, 4] is 2.
* ``mttr_seconds`` (mean time to recovery): an incident opens when a run of the environment
  ends FAILED or INTERRUPTED (leaving hosts in an unknown state) and closes when the next run
  of that environment ends SUCCEEDED; its length is the time between the two ``ended_at``.
  ROLLED_BACK runs open none: the rollback already restored service.  The mean over closed
  incidents; None when there are none.
* ``last`` is the newest finished deploy run (by id).
* ``error_rate`` and ``p95_ms``: the post-deploy error rate (percent of requests answered
  5xx) and 95th-percentile response time that the watch window last measured in Prometheus,
  over the finished deploys that measured them (monitoring on and enough requests): their mean
  and the newest. Deploys without monitoring have no such measure and are left out; downtime
  as users see it is not observed by deployer itself (the benchmark measures it).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from statistics import fmean

from deployer.ledger import Deployment, Kind, Ledger, Status

_ALL_ROWS = 2**62  # Ledger.history wants a limit; the KPIs need every row
_FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.ROLLED_BACK, Status.INTERRUPTED)


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (see the module docstring); None for no values."""
    if not 0 < p <= 100:
        raise ValueError("p must be in (0, 100]")
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


@dataclass(frozen=True)
class Durations:
    count: int
    total: float
    p50: float | None
    p95: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Durations:
        return cls(len(values), math.fsum(values), percentile(values, 50), percentile(values, 95))


@dataclass(frozen=True)
class LastDeployment:
    environment: str
    id: int
    version: str
    status: Status
    ended_at: datetime


@dataclass(frozen=True)
class Measured:
    """A post-deploy measure over the deploys that recorded one."""

    count: int
    mean: float | None
    last: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Measured:
        return cls(len(values), fmean(values) if values else None, values[-1] if values else None)


@dataclass(frozen=True)
class EnvStats:
    environment: str | None  # None: every environment together
    deployments: int
    succeeded: int
    failed: int
    rolled_back: int
    interrupted: int
    running: int
    noop: int
    success_rate: float | None
    deploy_seconds: Durations
    rollback_seconds: Durations
    mttr_seconds: float | None
    last: LastDeployment | None
    error_rate: Measured = Measured(0, None, None)
    p95_ms: Measured = Measured(0, None, None)


@dataclass(frozen=True)
class Stats:
    environments: tuple[EnvStats, ...]  # sorted by name
    overall: EnvStats


def _recoveries(rows: Iterable[Deployment]) -> list[float]:
    """Incident lengths of one environment's rows (see the module docstring)."""
    finished = sorted((d for d in rows if d.ended_at is not None), key=lambda d: (d.ended_at, d.id))
    lengths: list[float] = []
    opened: datetime | None = None
    for d in finished:
        assert d.ended_at is not None
        if d.status in (Status.FAILED, Status.INTERRUPTED) and opened is None:
            opened = d.ended_at
        elif d.status is Status.SUCCEEDED and opened is not None:
            lengths.append((d.ended_at - opened).total_seconds())
            opened = None
    return lengths


def _env_stats(
    environment: str | None, rows: Sequence[Deployment], recoveries: list[float]
) -> EnvStats:
    deploys = [d for d in rows if d.kind is Kind.DEPLOY and d.status in _FINISHED]
    count = {s: sum(1 for d in deploys if d.status is s) for s in _FINISHED}
    durations = [
        d.deploy_seconds
        for d in deploys
        if d.status is Status.SUCCEEDED and not d.noop and d.deploy_seconds is not None
    ]
    rollbacks = [
        d.rollback_seconds for d in rows if d.status in _FINISHED and d.rollback_seconds is not None
    ]
    newest = max(deploys, key=lambda d: d.id, default=None)
    in_order = sorted(deploys, key=lambda d: d.id)
    return EnvStats(
        environment=environment,
        deployments=len(deploys),
        succeeded=count[Status.SUCCEEDED],
        failed=count[Status.FAILED],
        rolled_back=count[Status.ROLLED_BACK],
        interrupted=count[Status.INTERRUPTED],
        running=sum(1 for d in rows if d.status is Status.RUNNING),
        noop=sum(1 for d in deploys if d.noop),
        success_rate=count[Status.SUCCEEDED] / len(deploys) if deploys else None,
        deploy_seconds=Durations.of(durations),
        rollback_seconds=Durations.of(rollbacks),
        mttr_seconds=fmean(recoveries) if recoveries else None,
        last=None
        if newest is None or newest.ended_at is None
        else LastDeployment(
            newest.environment, newest.id, newest.version, newest.status, newest.ended_at
        ),
        error_rate=Measured.of([d.error_rate for d in in_order if d.error_rate is not None]),
        p95_ms=Measured.of([d.p95_ms for d in in_order if d.p95_ms is not None]),
    )


def compute(ledger: Ledger, environment: str | None = None) -> Stats:
    """KPIs of one environment (which may have no rows yet) or of every environment in the
    ledger."""
    rows = ledger.history(environment, limit=_ALL_ROWS)
    by_env: dict[str, list[Deployment]] = {} if environment is None else {environment: []}
    for d in rows:
        by_env.setdefault(d.environment if environment is None else environment, []).append(d)
    recoveries = {env: _recoveries(env_rows) for env, env_rows in by_env.items()}
    per_env = tuple(_env_stats(env, by_env[env], recoveries[env]) for env in sorted(by_env))
    pooled = [length for env in sorted(recoveries) for length in recoveries[env]]
    return Stats(environments=per_env, overall=_env_stats(None, rows, pooled))


# -- Prometheus -----------------------------------------------------------------------------


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class _Family:
    def __init__(self, name: str, kind: str, help_text: str) -> None:
        self.lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        self.name = name

    def add(self, value: float | None, suffix: str = "", **labels: str) -> None:
        if value is None:
            return
        text = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
        self.lines.append(f"{self.name}{suffix}{{{text}}} {_number(value)}")


def prometheus_text(stats: Stats) -> str:
    """Text exposition format, one series per environment. The overall figures are left out:
    an `environment`-less series would be counted twice by every `sum()`. Values that do not
    exist yet (a success ratio with no deployments) are absent rather than 0."""
    deployments = _Family(
        "deployer_deployments_total", "counter", "Finished deploy runs by final status."
    )
    noop = _Family(
        "deployer_noop_deployments_total", "counter", "Succeeded deploys that changed nothing."
    )
    running = _Family(
        "deployer_deployments_running", "gauge", "Deploy or rollback runs in progress."
    )
    ratio = _Family("deployer_success_ratio", "gauge", "Succeeded / finished deploy runs (0 to 1).")
    deploy = _Family(
        "deployer_deploy_duration_seconds",
        "summary",
        "Duration of succeeded, non-no-op deploys (nearest-rank quantiles).",
    )
    rollback = _Family(
        "deployer_rollback_duration_seconds",
        "summary",
        "Duration of rollbacks, automatic and manual (nearest-rank quantiles).",
    )
    mttr = _Family(
        "deployer_mean_time_to_recovery_seconds",
        "gauge",
        "Mean time from a FAILED or INTERRUPTED run to the next SUCCEEDED run.",
    )
    last_time = _Family(
        "deployer_last_deployment_timestamp_seconds",
        "gauge",
        "Unix time the newest finished deploy run ended.",
    )
    last_info = _Family(
        "deployer_last_deployment_info", "gauge", "Newest finished deploy run (value is 1)."
    )
    error_rate = _Family(
        "deployer_post_deploy_error_rate_percent",
        "gauge",
        "5xx share of requests the watch window last measured after a deploy (mean, last).",
    )
    p95 = _Family(
        "deployer_post_deploy_p95_milliseconds",
        "gauge",
        "95th-percentile response time the watch window last measured after a deploy.",
    )
    for env in stats.environments:
        name = env.environment or ""
        for status, value in (
            (Status.SUCCEEDED, env.succeeded),
            (Status.FAILED, env.failed),
            (Status.ROLLED_BACK, env.rolled_back),
            (Status.INTERRUPTED, env.interrupted),
        ):
            deployments.add(value, environment=name, status=status.value)
        noop.add(env.noop, environment=name)
        running.add(env.running, environment=name)
        ratio.add(env.success_rate, environment=name)
        for family, durations in ((deploy, env.deploy_seconds), (rollback, env.rollback_seconds)):
            family.add(durations.p50, environment=name, quantile="0.5")
            family.add(durations.p95, environment=name, quantile="0.95")
            family.add(durations.total, "_sum", environment=name)
            family.add(durations.count, "_count", environment=name)
        mttr.add(env.mttr_seconds, environment=name)
        for family, measured in ((error_rate, env.error_rate), (p95, env.p95_ms)):
            family.add(measured.mean, environment=name, of="mean")
            family.add(measured.last, environment=name, of="last")
        if env.last is not None:
            last_time.add(env.last.ended_at.timestamp(), environment=name)
            last_info.add(
                1,
                environment=name,
                id=str(env.last.id),
                version=env.last.version,
                status=env.last.status.value,
            )
    families = (
        deployments,
        noop,
        running,
        ratio,
        deploy,
        rollback,
        mttr,
        last_time,
        last_info,
        error_rate,
        p95,
    )
    return "".join(line + "\n" for family in families for line in family.lines)


def write_textfile(text: str, path: Path) -> None:
    """Replace `path` atomically (temporary file in the same directory, fsync, rename), so
    node exporter's textfile collector never reads half a file. World-readable (0644): the
    exporter usually runs as another user. The temporary name does not end in `.prom`, so
    the collector ignores it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the metrics from the exporter
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
