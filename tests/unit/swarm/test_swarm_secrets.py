"""Docker secrets of a Swarm release: names, the size limit, the strict reading of what the
manager reports, the release records and what a prune removes."""

from __future__ import annotations

import base64
import json

import pytest

from deployer.errors import ConfigError
from deployer.targets.swarm import secrets as sw

STACK = "shop"


def _record(version: str, mounts: dict[str, str], created: str) -> dict[str, object]:
    data = base64.b64encode(json.dumps({"version": version, "secrets": mounts}).encode())
    return {
        "CreatedAt": created,
        "Spec": {
            "Name": f"{STACK}_release_{version}",
            "Labels": {sw.LABEL_STACK: STACK, sw.LABEL_VERSION: version},
            "Data": data.decode(),
        },
    }


def _secret(name: str) -> dict[str, object]:
    return {"Spec": {"Name": name, "Labels": {sw.LABEL_STACK: STACK}}}


def test_an_object_is_named_by_its_value_and_fits_docker_s_limit() -> None:
    a = sw.object_name(STACK, "API_TOKEN", "one")
    assert a == sw.object_name(STACK, "API_TOKEN", "one")
    assert a != sw.object_name(STACK, "API_TOKEN", "two")
    assert a.startswith("shop_API_TOKEN_")
    assert "one" not in a
    long = sw.object_name("s" * 60, "V" * 60, "x")
    assert len(long) <= 64


def test_a_value_larger_than_docker_allows_is_refused_with_its_path() -> None:
    sw.check({"SMALL": "x" * sw.MAX_BYTES})
    with pytest.raises(ConfigError) as caught:
        sw.check({"BIG": "x" * (sw.MAX_BYTES + 1), "SMALL": "x"})
    (problem,) = caught.value.problems
    assert problem.startswith("secrets.env.BIG: ")
    assert "x" * 10 not in problem


def test_the_manager_s_answer_is_read_strictly() -> None:
    good = _record("v1", {"API_TOKEN": "shop_API_TOKEN_0123456789ab"}, "2026-01-01T00:00:01Z")
    forged = _record("v2", {"API_TOKEN": "$(reboot)"}, "2026-01-01T00:00:02Z")
    other = _record("v3", {}, "2026-01-01T00:00:03Z")
    other["Spec"]["Labels"][sw.LABEL_STACK] = "another"  # type: ignore[index]
    garbage = {
        "Spec": {
            "Name": "shop_x",
            "Labels": {sw.LABEL_STACK: STACK, sw.LABEL_VERSION: "v4"},
            "Data": "%%%",
        }
    }
    stored = sw.parse(
        {
            "secrets": [_secret("shop_API_TOKEN_0123456789ab"), _secret("bad name; rm"), 7],
            "configs": [good, forged, other, garbage, None],
        },
        STACK,
    )
    assert stored.secrets == {"shop_API_TOKEN_0123456789ab"}
    assert stored.record_of("v1") == {"API_TOKEN": "shop_API_TOKEN_0123456789ab"}
    assert stored.record_of("v2") is None  # a name Docker could not hold: not a record
    assert stored.record_of("v3") is None  # another stack's
    assert stored.record_of("v4") is None
    assert sw.parse("not a mapping", STACK).records == {}


def test_a_prune_keeps_the_newest_records_and_what_runs() -> None:
    stored = sw.parse(
        {
            "secrets": [_secret(n) for n in ("shop_A_1", "shop_A_2", "shop_A_3", "shop_B_1")],
            "configs": [
                _record("v1", {"A": "shop_A_1", "B": "shop_B_1"}, "2026-01-01T00:00:01Z"),
                _record("v2", {"A": "shop_A_2", "B": "shop_B_1"}, "2026-01-01T00:00:02Z"),
                _record("v3", {"A": "shop_A_3", "B": "shop_B_1"}, "2026-01-01T00:00:03Z"),
            ],
        },
        STACK,
    )
    records, objects = sw.prunable(stored, 2, ["v3"])
    assert records == ["shop_release_v1"]
    assert objects == ["shop_A_1"]  # B's object is still named by v2 and v3
    records, objects = sw.prunable(stored, 2, ["v1"])  # v1 runs again: it stays
    assert records == []
    assert objects == []
    records, objects = sw.prunable(stored, 1, ["v3"])
    assert records == ["shop_release_v1", "shop_release_v2"]
    assert objects == ["shop_A_1", "shop_A_2"]


def test_compose_entries_point_at_files_and_never_hold_a_value() -> None:
    service, top, files = sw.compose_entries({"API_TOKEN": "shop_API_TOKEN_0123456789ab"})
    assert service == [{"source": "shop_API_TOKEN_0123456789ab", "target": "API_TOKEN"}]
    assert top == {"shop_API_TOKEN_0123456789ab": {"external": True}}
    assert files == {"API_TOKEN_FILE": "/run/secrets/API_TOKEN"}
    assert sw.compose_entries({}) == ([], {}, {})


def test_a_deploy_refuses_a_too_large_secret_before_it_builds_or_reaches_the_manager(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pathlib import Path

    from deployer.config.loader import load_project
    from deployer.config.resolve import resolve
    from deployer.session import Session
    from deployer.targets.swarm import target as swarm_target

    case = Path(__file__).parents[2] / "golden" / "swarm" / "compose" / "secrets_monitoring"
    session = Session(
        resolve(load_project(case / "deploy.yml"), "swarm"),
        secret_env={"API_TOKEN": "x" * (sw.MAX_BYTES + 1), "DB_PASSWORD": "fine"},
    )

    def touched(*args: object, **kwargs: object) -> None:
        raise AssertionError("built an image (or reached a node) despite the refusal")

    monkeypatch.setattr(swarm_target, "build_images", touched)
    monkeypatch.setattr(swarm_target.Nodes, "run", touched)
    with pytest.raises(ConfigError) as caught:
        swarm_target.SwarmTarget(session).prepare("v1", None)
    assert caught.value.problems[0].startswith("secrets.env.API_TOKEN: ")
    assert caught.value.exit_code == 2


class _Manager:
    """The manager's answer to `read`, and every script a prune sends, by node."""

    def __init__(self, answer: dict[str, object]) -> None:
        self.answer = json.dumps(answer)
        self.manager = "n1"
        self.hosts = {"n1": None, "n2": None}
        self.scripts: list[tuple[str, str]] = []

    def docker_cmd(self, *args: str) -> str:
        import shlex

        return " ".join(["docker", *(shlex.quote(a) for a in args)])

    def manage_script(self, script: str, **_: object) -> str:
        self.scripts.append(("n1", script))
        return self.answer if "secret inspect" in script else ""

    def run(self, node: str, script: str, **_: object) -> object:
        self.scripts.append((node, script))
        return None


def test_a_prune_removes_the_dropped_versions_images_on_every_node() -> None:
    nodes = _Manager(
        {
            "secrets": [_secret("shop_A_1"), _secret("shop_A_2"), _secret("shop_A_3")],
            "configs": [
                _record("v1", {"A": "shop_A_1"}, "2026-01-01T00:00:01Z"),
                _record("v2", {"A": "shop_A_2"}, "2026-01-01T00:00:02Z"),
                _record("v3", {"A": "shop_A_3"}, "2026-01-01T00:00:03Z"),
            ],
        }
    )
    dropped = sw.prune(nodes, STACK, 2, ["v3"], images=["shop-web", "shop-site"])  # type: ignore[arg-type]
    assert dropped == ("v1",)
    removals = [s for _n, s in nodes.scripts if "rm" in s]
    assert "docker config rm shop_release_v1" in removals[0]
    assert "docker secret rm shop_A_1" in removals[0]
    images = {n: s for n, s in nodes.scripts if "image rm" in s}
    assert set(images) == {"n1", "n2"}
    assert images["n2"].startswith("docker image rm shop-web:v1 shop-site:v1")
    assert "v2" not in images["n2"]
    assert "v3" not in images["n2"]
