"""deployer.core.redis: the environment's own instance runs under Debian's template unit,
bound to the instance's address and 127.0.0.1, answers only with its password, keeps its
data in its own directory, and the password is nowhere but in its credentials file and
the instance's own configuration."""

import pytest

CREDENTIALS = "/etc/deployer/accessories/shop-lab/redis.password"
EXPORTER_ENV = "/etc/deployer/accessories/shop-lab/redis.exporter.env"
CONF = "/etc/redis/redis-shop-lab.conf"


@pytest.fixture(scope="module")
def address(host):
    return host.check_output("hostname -I").split()[0]


def cli(host, address, port, auth, *args):
    """redis-cli with the password of the file `auth` (a path), the password `auth`, or none."""
    env = ""
    if auth.startswith("/"):
        env = f'REDISCLI_AUTH="$(cat {auth})" '
    elif auth:
        env = f"REDISCLI_AUTH='{auth}' "
    return host.run(
        f"{env}timeout 5 redis-cli --no-auth-warning -h {address} -p {port} " + " ".join(args)
    )


def test_the_instance_is_enabled_running_and_bound_to_the_private_address(host, address):
    service = host.service("redis-server@shop-lab")
    assert service.is_enabled
    assert service.is_running
    assert host.socket(f"tcp://{address}:6379").is_listening
    assert host.socket("tcp://127.0.0.1:6379").is_listening
    assert not host.service("redis-server").is_running  # Debian's default instance stays off


def test_files_have_the_owners_and_modes_the_docs_say(host):
    directory = host.file("/etc/deployer/accessories/shop-lab")
    assert (directory.user, directory.group, directory.mode) == ("root", "root", 0o700)
    f = host.file(CREDENTIALS)
    assert (f.user, f.group, f.mode) == ("root", "root", 0o600)
    conf = host.file(CONF)
    assert (conf.user, conf.group, conf.mode) == ("root", "redis", 0o640)
    data = host.file("/var/lib/redis/shop-lab")
    assert (data.user, data.group, data.mode) == ("redis", "redis", 0o750)
    text = conf.content_string
    for line in ("protected-mode yes", "supervised systemd", "dir /var/lib/redis/shop-lab"):
        assert line in text.splitlines()


def test_the_password_opens_the_instance_and_its_data_is_its_own(host, address):
    assert cli(host, address, 6379, CREDENTIALS, "PING").stdout.strip() == "PONG"
    assert cli(host, address, 6379, CREDENTIALS, "SET", "flow", "shop").stdout.strip() == "OK"
    assert cli(host, address, 6379, CREDENTIALS, "CONFIG", "GET", "dir").stdout.split()[-1] == (
        "/var/lib/redis/shop-lab"
    )


@pytest.mark.parametrize("password", ["", "wrong"])
def test_no_or_a_wrong_password_is_refused(host, address, password):
    result = cli(host, address, 6379, password, "GET", "flow")
    assert "NOAUTH" in result.stdout
    assert ("WRONGPASS" in result.stderr) == bool(password)


def test_the_second_environment_has_an_instance_of_its_own(host, address):
    assert host.service("redis-server@blog-lab").is_running
    other = "/etc/deployer/accessories/blog-lab/redis.password"
    assert host.file(other).content_string != host.file(CREDENTIALS).content_string
    refused = cli(host, address, 6380, CREDENTIALS, "PING")
    assert "WRONGPASS" in refused.stderr  # redis-cli reports the failed AUTH there
    assert cli(host, address, 6380, other, "GET", "flow").stdout.strip() == ""  # not shop's data


def test_the_refused_environment_left_nothing(host):
    for path in (
        "/etc/deployer/accessories/huge-lab",
        "/etc/redis/redis-huge-lab.conf",
        "/var/lib/redis/huge-lab",
    ):
        assert not host.file(path).exists, path
    assert not host.service("redis-server@huge-lab").is_enabled


def test_the_password_is_in_no_log_and_no_other_file(host):
    found = host.run(
        f"grep -rlsF -f {CREDENTIALS} /etc /var /root /home /tmp /run /opt /srv"
    ).stdout.split()
    assert sorted(found) == sorted([CREDENTIALS, CONF, EXPORTER_ENV])
    exporter = host.file(EXPORTER_ENV)  # its exporter's EnvironmentFile, read by systemd
    assert (exporter.user, exporter.group, exporter.mode) == ("root", "root", 0o600)
    assert (
        host.run(f"journalctl --no-pager -o cat | grep -cF -f {CREDENTIALS}").stdout.strip() == "0"
    )
