"""Rollout batch sizes: counts, percentages rounded up, all_at_once, edge fleets."""

from __future__ import annotations

import pytest

from deployer.config.models import Strategy
from deployer.plan.strategy import batch_size, batches


def _rolling(size: int | str) -> Strategy:
    return Strategy(kind="rolling", batch_size=size)


@pytest.mark.parametrize(
    ("size", "total", "expected"),
    [
        (1, 5, 1),
        (2, 5, 2),
        (5, 5, 5),
        (10, 3, 3),  # more than the fleet: the whole fleet
        (3, 1, 1),
        ("50%", 4, 2),
        ("50%", 5, 3),  # 2.5 rounds up
        ("25%", 10, 3),  # 2.5 rounds up
        ("33%", 3, 1),  # 0.99 rounds up to 1
        ("34%", 3, 2),  # 1.02 rounds up to 2
        ("1%", 1, 1),
        ("1%", 250, 3),
        ("100%", 7, 7),
        ("50%", 1, 1),
    ],
)
def test_batch_size(size: int | str, total: int, expected: int) -> None:
    assert batch_size(_rolling(size), total) == expected


@pytest.mark.parametrize("total", [1, 2, 9])
def test_all_at_once_takes_the_whole_fleet(total: int) -> None:
    assert batch_size(Strategy(kind="all_at_once", batch_size=1), total) == total


@pytest.mark.parametrize("strategy", [_rolling(2), _rolling("50%"), Strategy(kind="all_at_once")])
def test_no_hosts_no_batches(strategy: Strategy) -> None:
    assert batch_size(strategy, 0) == 0
    assert batches(strategy, []) == []


def test_batches_keep_inventory_order_and_cover_every_host_once() -> None:
    hosts = [f"h{i}" for i in range(7)]
    assert batches(_rolling(3), hosts) == [["h0", "h1", "h2"], ["h3", "h4", "h5"], ["h6"]]
    assert batches(_rolling("50%"), hosts) == [["h0", "h1", "h2", "h3"], ["h4", "h5", "h6"]]
    assert batches(Strategy(kind="all_at_once"), hosts) == [hosts]
    assert batches(_rolling(1), ["only"]) == [["only"]]


@pytest.mark.parametrize("size", [1, 2, 3, "10%", "33%", "50%", "99%", "100%"])
@pytest.mark.parametrize("total", [1, 2, 3, 5, 8, 13, 100])
def test_every_batch_is_within_bounds(size: int | str, total: int) -> None:
    hosts = [f"h{i}" for i in range(total)]
    split = batches(_rolling(size), hosts)
    assert [h for batch in split for h in batch] == hosts
    assert all(1 <= len(batch) <= batch_size(_rolling(size), total) for batch in split)
