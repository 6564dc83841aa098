"""examples/shop on real lab hosts: a static frontend on an edge host (nginx from Debian
serves its files, fingerprinted assets cached for a year) and an API of two socket-activated
instances on each of two backend hosts, behind the proxy under /api. One release for both
services; under a steady load through the proxy, v1 -> v2 and a broken API in v3 (rolled
back automatically) fail no request, and afterwards frontend and API are on v2 everywhere."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from shop_lab import Shop
from test_edge_proxy import Load

pytestmark = pytest.mark.integration

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"


def test_frontend_and_api_deploy_and_roll_back_together_without_a_failed_request(
    shop: Shop, tmp_path: Path
) -> None:
    first = shop.cli("deploy", "lab", "--version", "v1", "--json")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    edge, api1, api2 = shop.lab.hosts[:3]
    # the frontend's files come from its build, with cache headers by kind
    status, headers, html = shop.get("/")
    assert status == 200
    assert headers.get("Cache-Control") == "no-cache"
    script = next(w.split('"')[1] for w in html.split() if w.startswith('src="app.'))
    status, headers, _ = shop.get(f"/{script}")
    assert (status, headers.get("Cache-Control")) == (200, "public, max-age=31536000, immutable")
    assert shop.get("/api/version")[2].strip() == "v1"
    # two instances of the API on each backend host, none on the edge host
    for host, expected in ((edge, 0), (api1, 2), (api2, 2)):
        units = shop.ssh(
            host, f"systemctl list-units --plain --no-legend '{shop.app}:api@*.service'"
        )
        assert len([u for u in units.splitlines() if "running" in u]) == expected, (host, units)

    broken = tmp_path / "api-broken"
    shutil.copytree(shop.root / "api", broken)
    (broken / "BROKEN").touch()
    with Load([edge.ip], shop.domain, path="/api/version") as load:
        time.sleep(2)
        good = shop.cli("deploy", "lab", "--version", "v2", "--json")
        assert good.returncode == 0, good.stdout[-3000:]
        bad = shop.cli("deploy", "lab", "--version", "v3", "--artifact", f"api={broken}", "--json")
        time.sleep(2)
    assert bad.returncode == 1, bad.stdout[-3000:]
    result = json.loads(bad.stdout)
    assert result["status"] == "ROLLED_BACK"
    assert "service api" in result["reason"]
    assert load.sent > 200
    assert sum(load.failures.values()) == 0, (load.failures, load.sent)
    assert {"v1", "v2"} <= set(load.versions), load.versions
    assert "v3" not in load.versions
    # frontend and API are both on v2 everywhere
    current = {
        h.name: shop.ssh(h, f"readlink /srv/{shop.app}/current").strip() for h in (edge, api1, api2)
    }
    assert {Path(c).name for c in current.values()} == {"v2"}, current
    status = json.loads(shop.cli("status", "lab", "--json").stdout)
    services = {
        h["host"]: [(s["name"], s["healthy"]) for s in h["services"]] for h in status["hosts"]
    }
    assert services[edge.name] == [("frontend", True)]
    assert services[api1.name] == [("api", True)]
    history = json.loads(shop.cli("history", "lab", "--json").stdout)
    broken_row = history[0]
    failed = [h for h in broken_row["hosts"] if h["status"] == "rolled_back" or h["services"]]
    assert any(
        s["name"] == "api" and s["healthy"] is False for h in failed for s in h["services"]
    ), failed
