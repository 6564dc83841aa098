"""deployer.core.monitoring: node exporter and Prometheus run with the role's flags,
Prometheus scrapes the node exporter, and textfile metrics are exported."""

import json
import time

import pytest


@pytest.fixture
def ports(host):
    variables = host.ansible.get_variables()
    return variables["flow_prometheus_port"], variables["flow_node_exporter_port"]


def get(host, url):
    return host.check_output(f"curl -sf --max-time 5 {url}")


def test_services_are_enabled_and_running(host):
    for unit in ("prometheus-node-exporter", "prometheus"):
        assert host.service(unit).is_enabled
        assert host.service(unit).is_running


def test_node_exporter_listens_on_its_port_and_serves_node_metrics(host, ports):
    assert host.socket(f"tcp://{ports[1]}").is_listening
    metrics = get(host, f"http://127.0.0.1:{ports[1]}/metrics")
    assert "\nnode_cpu_seconds_total{" in metrics


def test_prometheus_runs_with_the_roles_flags_and_is_ready(host, ports):
    args = host.check_output(
        "cat /proc/$(systemctl show -P MainPID prometheus)/cmdline | tr '\\0' ' '"
    )
    assert f"--web.listen-address=:{ports[0]}" in args
    assert "--storage.tsdb.retention.time=2d" in args
    status = host.check_output(
        f"curl -s -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{ports[0]}/-/ready"
    )
    assert status == "200"


def test_prometheus_config_is_the_callers(host, ports):
    config = host.file("/etc/prometheus/prometheus.yml")
    assert (config.user, config.mode) == ("root", 0o644)
    assert f"localhost:{ports[1]}" in config.content_string
    assert "Managed by deployer" in config.content_string


def test_prometheus_scrapes_the_node_exporter(host, ports):
    deadline, health = time.monotonic() + 30, None
    while time.monotonic() < deadline:
        targets = json.loads(get(host, f"http://127.0.0.1:{ports[0]}/api/v1/targets"))
        node = [t for t in targets["data"]["activeTargets"] if t["labels"]["job"] == "node"]
        health = node[0]["health"] if node else None
        if health == "up":
            break
        time.sleep(1)
    assert health == "up"


def test_textfile_metrics_are_exported(host, ports):
    directory = host.ansible.get_variables()["flow_textfile_dir"]
    line = 'deployer_release_info{app="x",environment="y",version="v1"} 1'
    host.check_output(
        f"printf '%s\\n' '{line}' > {directory}/.molecule.tmp && "
        f"mv {directory}/.molecule.tmp {directory}/molecule.prom"
    )
    try:
        assert line in get(host, f"http://127.0.0.1:{ports[1]}/metrics").splitlines()
    finally:
        host.run(f"rm -f {directory}/molecule.prom")
