"""deployer.core.postgresql: the cluster runs under systemd bound to the instance's address
and 127.0.0.1, the environment's role logs in with the stored password (the side effect's
given one) and nothing else, and the password is nowhere but in its credentials file."""

import pytest

CREDENTIALS = "/etc/deployer/accessories/shop-lab/postgresql.password"
UNIT = "postgresql@15-main"
GIVEN = "given-Passw0rd-of-the-side-effect"


@pytest.fixture(scope="module")
def address(host):
    return host.check_output("hostname -I").split()[0]


def psql(host, address, password, sql="SELECT current_user"):
    return host.run(
        f"PGPASSWORD='{password}' PGCONNECT_TIMEOUT=5 psql -X -tA -h {address} -U shop_lab "
        f'-d shop_lab -c "{sql}"'
    )


def superuser(host, sql):
    return host.check_output(f'runuser -u postgres -- psql -X -tA -c "{sql}"')


def test_the_cluster_is_enabled_running_and_bound_to_the_private_address(host, address):
    service = host.service(UNIT)
    assert service.is_enabled
    assert service.is_running
    assert host.socket(f"tcp://{address}:5432").is_listening
    assert host.socket("tcp://127.0.0.1:5432").is_listening
    conf = host.file("/etc/postgresql/15/main/conf.d/deployer.conf").content_string
    assert f"listen_addresses = '{address},127.0.0.1'" in conf


def test_the_credentials_are_roots_alone(host):
    directory = host.file("/etc/deployer/accessories/shop-lab")
    assert (directory.user, directory.group, directory.mode) == ("root", "root", 0o700)
    f = host.file(CREDENTIALS)
    assert (f.user, f.group, f.mode) == ("root", "root", 0o600)
    assert f.content_string == GIVEN + "\n"  # the side effect's given password was stored


def test_the_role_logs_in_over_the_private_address_with_the_password(host, address):
    result = psql(host, address, GIVEN)
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == "shop_lab"
    owner = "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'shop_lab'"
    assert superuser(host, owner).strip() == "shop_lab"
    assert superuser(host, "SELECT rolsuper FROM pg_roles WHERE rolname = 'shop_lab'") == "f"


@pytest.mark.parametrize("password", ["wrong", "given-Passw0rd-of-the-side-effecT"])
def test_a_wrong_password_is_refused(host, address, password):
    result = psql(host, address, password)
    assert result.rc != 0
    assert "password authentication failed" in result.stderr


def test_only_the_client_addresses_may_connect(host, address):
    hba = host.file("/etc/postgresql/15/main/pg_hba.conf").content_string
    block = hba.split("# BEGIN deployer accessory shop-lab", 1)[1].split("# END", 1)[0]
    assert f'host    "shop_lab"    "shop_lab"    {address}/32    scram-sha-256' in block
    assert hba.count("# BEGIN deployer accessory") == 1  # huge-lab and other-lab set up nothing
    stored = superuser(host, "SELECT rolpassword FROM pg_authid WHERE rolname = 'shop_lab'")
    assert stored.startswith("SCRAM-SHA-256$4096:")


def test_the_refused_environments_left_nothing(host):
    assert not host.file("/etc/deployer/accessories/huge-lab").exists
    assert not host.file("/etc/deployer/accessories/other-lab").exists
    roles = superuser(
        host, "SELECT count(*) FROM pg_roles WHERE rolname IN ('huge_lab', 'other_lab')"
    )
    assert roles == "0"
    assert not host.file("/etc/postgresql/16").exists


def test_the_password_is_in_no_log_and_no_other_file(host):
    # The pattern comes from the credentials file (grep -f), never from a command line.
    found = host.run(
        f"grep -rlsF -f {CREDENTIALS} /etc /var /root /home /tmp /run /opt /srv"
    ).stdout.split()
    assert found == [CREDENTIALS]
    assert (
        host.run(f"journalctl --no-pager -o cat | grep -cF -f {CREDENTIALS}").stdout.strip() == "0"
    )
