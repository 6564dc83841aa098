"""Run options that make a container boot systemd here (see GUIDE section 1)."""

from __future__ import annotations

from deployer.lab.profiles import SERVER


def test_server_profile_run_options() -> None:
    options = SERVER.run_kwargs()
    assert set(options["cap_add"]) == {"SYS_ADMIN", "NET_ADMIN"}
    assert "seccomp=unconfined" in options["security_opt"]
    assert options["volumes"] == {"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "ro"}}
    assert set(options["tmpfs"]) == {"/run", "/run/lock"}
    assert "privileged" not in options  # withheld CAP_SYS_RESOURCE makes it fail here
