"""deployer.core.preflight: the host is exactly as prepare left it (read-only role)."""


def test_release_tree_is_untouched(host):
    root = f"/srv/{host.ansible.get_variables()['flow_app']}"
    assert host.file(f"{root}/releases").listdir() == ["v1"]
    assert not host.file(f"{root}/current").exists
    assert host.file(f"{root}/releases/v1/.deployer/meta.json").contains('"state": "staged"')
