"""Rollout batches from the strategy: pure arithmetic, golden-tested."""

from __future__ import annotations

import math
from collections.abc import Sequence

from deployer.config.models import Strategy


def batch_size(strategy: Strategy, total: int) -> int:
    """Hosts per batch for `total` hosts: at least 1, at most all."""
    if total <= 0:
        return 0
    if strategy.kind == "all_at_once":
        return total
    size = strategy.batch_size
    if isinstance(size, str):  # "25%": of the fleet, rounded up so progress is guaranteed
        size = math.ceil(total * int(size.rstrip("%")) / 100)
    return max(1, min(total, size))


def batches(strategy: Strategy, hosts: Sequence[str]) -> list[list[str]]:
    """Hosts split into rollout batches, in inventory order."""
    size = batch_size(strategy, len(hosts))
    return [list(hosts[i : i + size]) for i in range(0, len(hosts), size)] if size else []
