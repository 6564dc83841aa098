"""`releases` on Swarm: the versions whose images the manager stores, per service, read from
`docker image ls` and checked like every version a host reports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from deployer.config.loader import load_project
from deployer.config.resolve import resolve
from deployer.session import Session
from deployer.targets.swarm import manage, observe

CASE = Path(__file__).parents[2] / "golden" / "swarm" / "compose" / "hello" / "deploy.yml"


@dataclass
class Nodes:
    out: str

    def docker_cmd(self, *args: str) -> str:
        return " ".join(args)

    def manage_script(self, script: str, **_: Any) -> str:
        return self.out


def test_releases_per_service_marked_from_the_ledger_and_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = Session(resolve(load_project(CASE), "swarm"))
    session.__dict__["ledger"] = SimpleNamespace(
        good_versions=lambda env: ["v1"], bad_versions=lambda env: frozenset({"v3"})
    )
    specs = (
        SimpleNamespace(service="app_web", repository="app-web"),
        SimpleNamespace(service="app_site", repository="app-site"),
    )
    out = "\n".join(
        [
            "app_web v1 2026-12-01 10:00:00 +0000 UTC",
            "app_web v3 2026-12-02 10:00:00 +0000 UTC",
            "app_site v1 " + "x" * 500,  # any text after the tag is only a time stamp
            "app_web $(touch /tmp/x) now",  # not a version: dropped
            "other_service v9 now",  # not a service of this stack: ignored
        ]
    )
    monkeypatch.setattr(
        observe, "read", lambda nodes, stack: {"app_web": SimpleNamespace(version="v1")}
    )
    driver = SimpleNamespace(nodes=Nodes(out), specs=specs, stack="app")
    result = manage.releases(session, driver)  # type: ignore[arg-type]
    rows = {r.version: r for r in result.releases}
    assert set(rows) == {"v1", "v3"}
    assert rows["v1"].marks == ("current", "good")
    assert rows["v1"].hosts == ("app_web", "app_site")
    assert rows["v3"].marks == ("bad", "partial")
    assert rows["v3"].missing == ("app_site",)
