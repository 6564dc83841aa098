"""deployer.core.service: systemd reads the rendered units as intended."""

import pytest


@pytest.fixture
def app(host):
    return host.ansible.get_variables()["flow_app"]


def show(host, unit, *props):
    out = host.check_output(f"systemctl show {unit} " + " ".join(f"-p {p}" for p in props))
    return dict(line.split("=", 1) for line in out.splitlines())


def test_socket_listens_on_the_port_with_the_backlog(host, app):
    port = host.ansible.get_variables()["flow_port"]
    props = show(host, f"{app}.socket", "LoadState", "Listen", "Backlog")
    assert props == {"LoadState": "loaded", "Listen": f"[::]:{port} (Stream)", "Backlog": "512"}


def test_service_runs_the_command_as_the_user_with_limits(host, app):
    props = show(
        host,
        f"{app}.service",
        "LoadState",
        "User",
        "Group",
        "WorkingDirectory",
        "CPUQuotaPerSecUSec",
        "MemoryMax",
        "TimeoutStopUSec",
        "RestartUSec",
    )
    assert props == {
        "LoadState": "loaded",
        "User": "nobody",
        "Group": "nogroup",
        "WorkingDirectory": f"/srv/{app}/current",
        "CPUQuotaPerSecUSec": "500ms",
        "MemoryMax": str(128 * 1024 * 1024),
        "TimeoutStopUSec": "20s",
        "RestartUSec": "2s",
    }
    assert f"{app}.socket" in show(host, f"{app}.service", "Requires")["Requires"].split()
    exec_start = host.check_output(f"systemctl show -p ExecStart {app}.service")
    assert exec_start.startswith(
        "ExecStart={ path=/usr/bin/python3 ; argv[]=/usr/bin/python3 app.py ;"
    )
