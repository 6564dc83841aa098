"""deployer.core.healthcheck: read-only; v1 still runs untouched after the checks."""


def test_v1_still_runs(host):
    variables = host.ansible.get_variables()
    app, port = variables["flow_app"], variables["flow_port"]
    assert host.service(f"{app}.service").is_running
    assert host.check_output(f"curl -sf http://127.0.0.1:{port}/") == "hello from v1"
