"""Resource limits (CPU, memory): a section of its own, used by `service`, environments and
the swarm settings alike."""

from __future__ import annotations

import math
import re

from pydantic import Field, StrictFloat, StrictInt, field_validator

from deployer.config.base import Section

_CPU = re.compile(r"^(\d+(\.\d+)?|\d+m)$")
_MEMORY = re.compile(r"^\d+(Ki|Mi|Gi|Ti|K|M|G|T)?$")


class Resources(Section):
    cpu: StrictFloat | StrictInt | str | None = Field(
        default=None, description="CPU limit in cores: 0.5, 2, or 500m.", examples=[0.5]
    )
    memory: str | None = Field(
        default=None, description="Memory limit: 512Mi, 1Gi.", examples=["512Mi"]
    )

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, value: float | str | None) -> float | str | None:
        if value is None:
            return None
        if isinstance(value, str) and not _CPU.fullmatch(value):
            raise ValueError(f"{value!r} is not a CPU amount (0.5, 2, 500m)")
        cores = cpu_cores(value)
        if not math.isfinite(cores) or cores <= 0:
            raise ValueError("must be more than 0")
        if cores < 0.01:
            raise ValueError("must be at least 0.01 (10m): systemd's smallest CPUQuota is 1%")
        return value

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str | None) -> str | None:
        if value is not None and not _MEMORY.fullmatch(value):
            raise ValueError(f"{value!r} is not a memory size (512Mi, 1Gi)")
        if value is not None and int(value.rstrip("KMGTi")) == 0:
            raise ValueError("must be more than 0")
        return value


def cpu_cores(value: float | str) -> float:
    if isinstance(value, str) and value.endswith("m"):
        return int(value[:-1]) / 1000
    return float(value)
