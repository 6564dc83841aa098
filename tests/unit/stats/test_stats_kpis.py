"""Deployment KPIs from a real ledger with a known history, and their Prometheus text.

The SQLite ledger's clock (`deployer.ledger.sqlite._now`) is pinned per operation so
ended_at-based figures (recovery time, last deployment timestamp) are exact. Regenerate
tests/golden/stats/ after an intended change with
`UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/stats` and review the diff.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from deployer.ledger import Kind, Ledger, Status
from deployer.ledger import sqlite as ledger_sqlite
from deployer.stats import (
    Durations,
    EnvStats,
    LastDeployment,
    Measured,
    compute,
    percentile,
    prometheus_text,
)

GOLDEN = Path(__file__).parents[2] / "golden" / "stats" / "metrics.prom"
DAY = datetime(2025, 3, 1, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = DAY

    def __call__(self) -> str:
        return self.now.isoformat(timespec="microseconds")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    pinned = Clock()
    monkeypatch.setattr(ledger_sqlite, "_now", pinned)
    return pinned


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(tmp_path / "ledger.sqlite3") as opened:
        yield opened


def run(
    ledger: Ledger,
    clock: Clock,
    env: str,
    version: str,
    status: Status | None,
    *,
    at: str,
    kind: Kind = Kind.DEPLOY,
    deploy: float | None = None,
    rollback: float | None = None,
    noop: bool = False,
    error_rate: float | None = None,
    p95_ms: float | None = None,
) -> int:
    """One run that began a minute before `at` (HH:MM on DAY) and ended at `at`;
    status None leaves it RUNNING."""
    hour, minute = map(int, at.split(":"))
    ended = DAY + timedelta(hours=hour, minutes=minute)
    clock.now = ended - timedelta(minutes=1)
    deployment_id = ledger.begin(
        environment=env,
        kind=kind,
        version=version,
        previous_version=None,
        artifact_sha256=None,
        user="alice",
        control_host="ctl-1",
        pid=1,
    )
    if status is not None:
        clock.now = ended
        ledger.finish(
            deployment_id,
            status,
            noop=noop,
            deploy_seconds=deploy,
            rollback_seconds=rollback,
            error_rate=error_rate,
            p95_ms=p95_ms,
        )
    return deployment_id


@pytest.fixture
def history(ledger: Ledger, clock: Clock) -> Ledger:
    """prod: two incidents (one hour, twenty minutes), a rollback, a no-op, one still running.
    staging: a success and an unresolved failure."""
    ok, failed = Status.SUCCEEDED, Status.FAILED
    run(ledger, clock, "prod", "1.0.0", ok, at="10:00", deploy=10.0)  # 1
    run(ledger, clock, "prod", "1.1.0", ok, at="11:00", deploy=20.0)  # 2
    run(ledger, clock, "prod", "1.2.0", failed, at="12:00", deploy=30.0)  # 3: incident opens
    run(ledger, clock, "prod", "1.2.1", Status.INTERRUPTED, at="12:30")  # 4: still open
    run(ledger, clock, "prod", "1.1.0", ok, at="13:00", kind=Kind.ROLLBACK, rollback=5.0)  # 5
    run(
        ledger,
        clock,
        "prod",
        "1.3.0",
        Status.ROLLED_BACK,
        at="14:00",
        deploy=40.0,
        rollback=8.0,
        error_rate=38.0,
        p95_ms=120.0,
    )  # 6: the watch window caught it
    run(ledger, clock, "prod", "1.3.1", ok, at="14:10", deploy=4.2, error_rate=0.5, p95_ms=80.0)
    run(ledger, clock, "prod", "1.3.1", ok, at="14:20", deploy=0.5, noop=True)  # 8
    run(ledger, clock, "prod", "1.4.0", failed, at="15:00", deploy=9.0)  # 9: incident opens
    run(
        ledger, clock, "prod", "1.4.1", ok, at="15:20", deploy=6.0, error_rate=1.5, p95_ms=100.0
    )  # 10: closes the incident after 20 min
    run(ledger, clock, "prod", "1.5.0", None, at="16:00")  # 11: running
    run(ledger, clock, "staging", "2.0.0", ok, at="09:00", deploy=3.0)  # 12
    run(ledger, clock, "staging", "2.0.1", failed, at="09:30", deploy=7.0)  # 13
    return ledger


def at(hh_mm: str) -> datetime:
    hour, minute = map(int, hh_mm.split(":"))
    return DAY + timedelta(hours=hour, minutes=minute)


PROD = EnvStats(
    environment="prod",
    deployments=9,
    succeeded=5,
    failed=2,
    rolled_back=1,
    interrupted=1,
    running=1,
    noop=1,
    success_rate=5 / 9,
    deploy_seconds=Durations(count=4, total=40.2, p50=6.0, p95=20.0),  # 4.2, 6, 10, 20
    rollback_seconds=Durations(count=2, total=13.0, p50=5.0, p95=8.0),
    mttr_seconds=2400.0,  # (3600 + 1200) / 2
    last=LastDeployment("prod", 10, "1.4.1", Status.SUCCEEDED, at("15:20")),
    error_rate=Measured(count=3, mean=(38.0 + 0.5 + 1.5) / 3, last=1.5),
    p95_ms=Measured(count=3, mean=100.0, last=100.0),
)
STAGING = EnvStats(
    environment="staging",
    deployments=2,
    succeeded=1,
    failed=1,
    rolled_back=0,
    interrupted=0,
    running=0,
    noop=0,
    success_rate=0.5,
    deploy_seconds=Durations(count=1, total=3.0, p50=3.0, p95=3.0),
    rollback_seconds=Durations(count=0, total=0.0, p50=None, p95=None),
    mttr_seconds=None,  # the failure has not been recovered from
    last=LastDeployment("staging", 13, "2.0.1", Status.FAILED, at("09:30")),
)


def test_every_environment(history: Ledger) -> None:
    stats = compute(history, None)
    assert stats.environments == (PROD, STAGING)
    assert stats.overall == EnvStats(
        environment=None,
        deployments=11,
        succeeded=6,
        failed=3,
        rolled_back=1,
        interrupted=1,
        running=1,
        noop=1,
        success_rate=6 / 11,
        deploy_seconds=Durations(count=5, total=43.2, p50=6.0, p95=20.0),  # + 3.0
        rollback_seconds=PROD.rollback_seconds,
        mttr_seconds=2400.0,
        last=STAGING.last,  # the newest finished deploy by id
        error_rate=PROD.error_rate,  # staging measured none
        p95_ms=PROD.p95_ms,
    )


def test_one_environment(history: Ledger) -> None:
    stats = compute(history, "prod")
    assert stats.environments == (PROD,)
    assert stats.overall == replace(PROD, environment=None)


def test_environment_without_rows(history: Ledger) -> None:
    (qa,) = compute(history, "qa").environments
    assert qa == EnvStats(
        environment="qa",
        deployments=0,
        succeeded=0,
        failed=0,
        rolled_back=0,
        interrupted=0,
        running=0,
        noop=0,
        success_rate=None,
        deploy_seconds=Durations(0, 0.0, None, None),
        rollback_seconds=Durations(0, 0.0, None, None),
        mttr_seconds=None,
        last=None,
    )


def test_empty_ledger(ledger: Ledger) -> None:
    stats = compute(ledger, None)
    assert stats.environments == ()
    assert (stats.overall.deployments, stats.overall.success_rate) == (0, None)


def test_rolled_back_runs_open_no_incident(ledger: Ledger, clock: Clock) -> None:
    run(ledger, clock, "prod", "1.0.0", Status.ROLLED_BACK, at="10:00", rollback=3.0)
    run(ledger, clock, "prod", "1.0.1", Status.SUCCEEDED, at="11:00", deploy=1.0)
    assert compute(ledger, "prod").overall.mttr_seconds is None


def test_incident_closes_at_the_first_success(ledger: Ledger, clock: Clock) -> None:
    run(ledger, clock, "prod", "1.0.0", Status.FAILED, at="10:00")
    run(ledger, clock, "prod", "1.0.1", Status.SUCCEEDED, at="10:05")
    run(ledger, clock, "prod", "1.0.2", Status.SUCCEEDED, at="11:00")
    run(ledger, clock, "prod", "1.0.3", Status.INTERRUPTED, at="12:00")
    run(ledger, clock, "prod", "1.0.4", Status.SUCCEEDED, at="12:10")
    assert compute(ledger, "prod").overall.mttr_seconds == (300 + 600) / 2


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([1.0, 2.0, 3.0, 4.0], 50, 2.0),  # nearest rank: no interpolation
        ([4.0, 1.0, 3.0, 2.0], 50, 2.0),  # order of input does not matter
        ([1.0, 2.0, 3.0, 4.0, 5.0], 50, 3.0),
        ([float(v) for v in range(1, 21)], 95, 19.0),  # rank ceil(0.95 * 20) = 19
        ([float(v) for v in range(1, 22)], 95, 20.0),  # rank ceil(19.95) = 20
        ([1.0, 2.0, 3.0], 100, 3.0),
        ([1.0, 2.0, 3.0], 1, 1.0),
        ([7.5], 95, 7.5),
        ([], 50, None),
    ],
)
def test_nearest_rank_percentile(values: list[float], p: float, expected: float | None) -> None:
    assert percentile(values, p) == expected


@pytest.mark.parametrize("p", [0, -1, 100.5])
def test_percentile_range(p: float) -> None:
    with pytest.raises(ValueError, match="p must be"):
        percentile([1.0], p)


# -- Prometheus text ------------------------------------------------------------------------

_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
_TYPES = {"counter", "gauge", "summary", "histogram", "untyped"}


def parse_exposition(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """A strict reader of the text format as this module writes it: every sample is
    `name{labels} value`; each family has HELP then TYPE before its samples, which are
    contiguous; no sample repeats; the text ends with a newline."""
    assert text.endswith("\n")
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    helped: set[str] = set()
    typed: dict[str, str] = {}
    current: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        where = f"line {number}: {line!r}"
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert name not in helped, where
            assert help_text, where
            helped.add(name)
            current = None
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert name in helped, where
            assert name not in typed, where
            assert kind in _TYPES, where
            typed[name] = kind
            current = name
        else:
            match = _SAMPLE.fullmatch(line)
            assert match, where
            name, labels, value = match.groups()
            family = name
            if typed.get(current or "") == "summary" and name in (
                f"{current}_sum",
                f"{current}_count",
            ):
                family = current or name
            assert family == current, f"{where}: sample outside its family"
            pairs = _LABEL.findall(labels)
            assert ",".join(f'{k}="{v}"' for k, v in pairs) == labels, where
            unescaped = frozenset(
                (k, v.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\"))
                for k, v in pairs
            )
            key = (name, unescaped)
            assert key not in samples, f"{where}: repeated sample"
            samples[key] = float(value)
    assert set(typed) == helped
    return samples


def sample(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_prometheus_text_matches_golden(history: Ledger) -> None:
    text = prometheus_text(compute(history, None))
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_prometheus_text_parses_and_carries_the_numbers(history: Ledger) -> None:
    samples = parse_exposition(prometheus_text(compute(history, None)))
    assert (
        sample(samples, "deployer_deployments_total", environment="prod", status="SUCCEEDED") == 5
    )
    assert (
        sample(samples, "deployer_deployments_total", environment="prod", status="INTERRUPTED") == 1
    )
    assert (
        sample(samples, "deployer_deployments_total", environment="staging", status="ROLLED_BACK")
        == 0
    )
    assert sample(samples, "deployer_noop_deployments_total", environment="prod") == 1
    assert sample(samples, "deployer_deployments_running", environment="prod") == 1
    assert math.isclose(sample(samples, "deployer_success_ratio", environment="prod"), 5 / 9)
    assert (
        sample(samples, "deployer_deploy_duration_seconds", environment="prod", quantile="0.5")
        == 6.0
    )
    assert (
        sample(samples, "deployer_deploy_duration_seconds", environment="prod", quantile="0.95")
        == 20.0
    )
    assert sample(samples, "deployer_deploy_duration_seconds_count", environment="prod") == 4
    assert sample(samples, "deployer_deploy_duration_seconds_sum", environment="prod") == 40.2
    assert (
        sample(samples, "deployer_rollback_duration_seconds", environment="prod", quantile="0.95")
        == 8.0
    )
    assert sample(samples, "deployer_mean_time_to_recovery_seconds", environment="prod") == 2400
    assert (
        sample(samples, "deployer_last_deployment_timestamp_seconds", environment="prod")
        == at("15:20").timestamp()
    )
    info = dict(environment="prod", id="10", version="1.4.1", status="SUCCEEDED")
    assert sample(samples, "deployer_last_deployment_info", **info) == 1
    # Figures that do not exist yet are absent, not zero.
    assert (
        "deployer_mean_time_to_recovery_seconds",
        frozenset({("environment", "staging")}),
    ) not in samples
    staging_quantiles = [
        k
        for k in samples
        if k[0] == "deployer_rollback_duration_seconds" and ("environment", "staging") in k[1]
    ]
    assert staging_quantiles == []
    # Overall figures are not exported: every series has an environment.
    assert all(any(k == "environment" for k, _ in labels) for _, labels in samples)


def test_empty_ledger_still_declares_every_metric(ledger: Ledger) -> None:
    text = prometheus_text(compute(ledger, None))
    assert parse_exposition(text) == {}
    assert text.count("# TYPE deployer_") == 11


def test_label_values_are_escaped(ledger: Ledger, clock: Clock) -> None:
    odd = 'we"ird\\env\nname'
    run(ledger, clock, odd, "1.0.0", Status.SUCCEEDED, at="10:00", deploy=1.5)
    samples = parse_exposition(prometheus_text(compute(ledger, None)))
    assert sample(samples, "deployer_deployments_total", environment=odd, status="SUCCEEDED") == 1
    assert sample(samples, "deployer_deploy_duration_seconds_sum", environment=odd) == 1.5


def test_strict_parser_rejects_what_it_should() -> None:
    good = '# HELP m_total Things.\n# TYPE m_total counter\nm_total{environment="a"} 1\n'
    assert parse_exposition(good)
    for bad in (
        'm_total{environment="a"} 1\n',  # no HELP/TYPE
        '# TYPE m_total counter\n# HELP m_total Things.\nm_total{environment="a"} 1\n',
        good + 'm_total{environment="a"} 2\n',  # repeated sample
        good.replace('"a"} 1', '"a"}  1'),  # not `name{labels} value`
        good.replace('"a"', '"a\nb"'),  # raw newline in a label value
        good.rstrip("\n"),
    ):
        with pytest.raises(AssertionError):
            parse_exposition(bad)


def test_post_deploy_measures_are_averaged_over_the_deploys_that_recorded_one(
    history: Ledger,
) -> None:
    stats = compute(history, None)
    prod = next(e for e in stats.environments if e.environment == "prod")
    staging = next(e for e in stats.environments if e.environment == "staging")
    assert prod.error_rate.count == 3
    assert prod.error_rate.mean == pytest.approx((38.0 + 0.5 + 1.5) / 3)
    assert prod.error_rate.last == 1.5  # the newest deploy that measured one
    assert (prod.p95_ms.mean, prod.p95_ms.last) == (pytest.approx(100.0), 100.0)
    assert (staging.error_rate.count, staging.error_rate.mean) == (0, None)  # not monitored
    samples = parse_exposition(prometheus_text(stats))
    rate = "deployer_post_deploy_error_rate_percent"
    assert sample(samples, rate, environment="prod", of="last") == 1.5
    assert not [k for k in samples if k[0] == rate and ("environment", "staging") in k[1]]
