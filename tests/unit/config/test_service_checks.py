"""`service.deploy_to` is never a system directory, and `service.command` never ends with a
backslash (systemd's line continuation)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from deployer.config.models import SYSTEM_DIRS, SYSTEM_TREES, Service

pytestmark = pytest.mark.hostile

EXAMPLES = {"/tmp/myapp", "/var/tmp/x", "/etc/myapp", "/dev/shm/app", "/proc/self", "/run/app"}
EXAMPLES |= {"/root/app", "/home/alice", "/var/lib/deployer/locks", "/usr/share/app", "/sys/fs"}
# "/" is refused as an unsafe path already
REFUSED = sorted((SYSTEM_DIRS | SYSTEM_TREES | EXAMPLES) - {"/"})
ACCEPTED = ["/srv/myapp", "/opt/shop", "/home/alice/apps/shop", "/var/lib/shop", "/var/www/shop"]
ACCEPTED += ["/usr/local/shop", "/data/apps/shop", "/tmpfs-apps/shop", "/etcetera/shop"]


@pytest.mark.parametrize("path", REFUSED)
def test_system_directories_are_refused_with_a_hint(path: str) -> None:
    with pytest.raises(ValidationError) as info:
        Service(deploy_to=path)
    message = info.value.errors()[0]["msg"]
    assert f"{path!r} is " in message
    assert "such as /srv/<app name>" in message


@pytest.mark.parametrize("path", ACCEPTED)
def test_directories_of_the_app_are_accepted(path: str) -> None:
    assert Service(deploy_to=path).deploy_to == path


@pytest.mark.parametrize("command", ["/usr/bin/app \\", "/usr/bin/app \\  ", "app\\"])
def test_a_trailing_backslash_is_refused(command: str) -> None:
    with pytest.raises(ValidationError, match="must not end with a backslash"):
        Service(command=command)


@pytest.mark.parametrize("command", ["/bin/sh -c 'a \\; b'", "/usr/bin/app --home=%h", "a\\b"])
def test_other_backslashes_and_percent_are_left_to_the_unit_renderer(command: str) -> None:
    assert Service(command=command).command == command
