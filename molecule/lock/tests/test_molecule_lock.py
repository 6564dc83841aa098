"""deployer.core.lock: one lock held with its holder record, the released one gone."""

import json

LOCKS = "/var/lib/deployer/locks"


def test_held_lock_records_its_holder(host):
    app = host.ansible.get_variables()["flow_app"]
    lock = host.file(f"{LOCKS}/{app}-held.lock")
    assert lock.is_directory
    assert lock.mode == 0o700
    record = json.loads(host.file(f"{lock.path}/holder.json").content_string)
    assert record["token"] == "molecule-token"  # noqa: S105 - a lock token, not a secret
    assert record["ttl"] == 600
    assert record["holder"]["deployment"] == "d-1"


def test_released_lock_is_gone(host):
    app = host.ansible.get_variables()["flow_app"]
    assert not host.file(f"{LOCKS}/{app}-released.lock").exists
