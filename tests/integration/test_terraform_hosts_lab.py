"""An environment whose hosts come from Terraform's outputs, deployed to the lab hosts those
outputs name: `terraform output -json` as the generated Terraform prints it (with the lab's
SSH ports, which real instances do not need), then `deployer deploy`. An outputs file out of
step with deploy.yml is refused with exit 2 naming it, and nothing on the hosts changes."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import Project

pytestmark = pytest.mark.integration


def _outputs(project: Project, hosts: list[Any]) -> dict[str, Any]:
    web = [
        {
            "name": f"web-{index}",
            "address": host.address,
            "port": host.port,
            "user": host.user,
            "private_address": host.ip,
        }
        for index, host in enumerate(hosts, start=1)
    ]
    value = {"app": project.app, "environment": "cloud", "hosts": {"web": web}}
    return {"deployer_hosts": {"sensitive": False, "type": ["object", {}], "value": value}}


def test_deploy_to_the_hosts_terraforms_outputs_name(project: Project) -> None:
    lab = project.lab
    named, others = list(lab.hosts[:2]), list(lab.hosts[2:])
    outputs = project.root / "infra" / "outputs.json"
    outputs.parent.mkdir()
    outputs.write_text(json.dumps(_outputs(project, named), indent=2))
    project.edit(
        {
            "environments": {
                "cloud": {
                    "hosts": {"from_terraform": "infra/outputs.json", "components": {"web": 2}},
                    "ssh": {
                        "private_key": str(lab.private_key),
                        "known_hosts": str(lab.known_hosts),
                    },
                }
            }
        }
    )
    plan = project.json("plan", "cloud", "--version", "v1")
    assert [h["host"] for h in plan["hosts"]] == ["web-1", "web-2"]

    deployed = project.json("deploy", "cloud", "--version", "v1")
    assert deployed["status"] == "SUCCEEDED", deployed
    assert {h["host"]: h["after"] for h in deployed["hosts"]} == {"web-1": "v1", "web-2": "v1"}
    current = project.current()
    assert [current[h.name] for h in named] == ["v1", "v1"]
    assert [current[h.name] for h in others] == [""] * len(others)  # not in the outputs
    for host in named:
        answer = project.ssh(host, f"curl -s --max-time 3 http://127.0.0.1:{project.port}/")
        assert answer.stdout.strip() == "hello from v1"

    # one host short of deploy.yml's count: refused before any host is touched
    outputs.write_text(json.dumps(_outputs(project, named[:1])))
    refused = project.cli("deploy", "cloud", "--version", "v2", "--json")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    (problem,) = json.loads(refused.stdout)["details"]
    assert problem.startswith(f"environments.cloud.hosts.from_terraform: {outputs}: ")
    assert "deployer_hosts.value.hosts.web: 1 host(s)" in problem
    assert [project.current()[h.name] for h in named] == ["v1", "v1"]
