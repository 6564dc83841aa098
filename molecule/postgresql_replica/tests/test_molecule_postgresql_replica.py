"""deployer.core.postgresql as a primary and a streaming standby: a row written on the
primary is read on the standby, which refuses writes; pg_basebackup -R left the replication
password in the standby's postgresql.auto.conf (postgres 0600) and nowhere else; the
primary keeps it in its credentials file alone; backups are root's and pruned."""

import json
import time

import pytest
import testinfra

PRIMARY = "deployer-molecule-pg-primary"
STANDBY = "deployer-molecule-pg-standby"
REPLICATION = "/etc/deployer/accessories/shop-lab/postgresql.replication.password"
AUTO_CONF = "/var/lib/postgresql/15/main/postgresql.auto.conf"
BACKUPS = "/var/lib/deployer/backups/shop-lab"
ROTATED = "rotated-Replication-pw-of-the-side-effect"  # the side effect's new password
DIRS = "/etc /var /root /home /tmp /run /opt /srv"

# Every test takes both instances itself; run them once, from the primary's connection.
testinfra_hosts = [f"ansible://{PRIMARY}"]

# Run on an instance: the files (and the journal) holding the secret read from `path` (the
# whole file, or the conninfo's password= when `conninfo`), the secret never on a command line.
FIND = r"""
import json, os, re, subprocess, sys
path, conninfo = sys.argv[1], sys.argv[2] == "1"
text = open(path).read()
# pg_basebackup quotes a value holding "-" (password='..', doubled in the .conf: ''..'')
secret = re.search(r"password=(?:'')?([^ '\\]+)", text).group(1) if conninfo else text.strip()
found = []
for top in sys.argv[3:]:
    for root, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))
                   and os.path.join(root, d) not in ("/proc", "/sys")]
        for name in files:
            full = os.path.join(root, name)
            try:
                if os.path.isfile(full) and not os.path.islink(full):
                    with open(full, "rb") as f:
                        if secret.encode() in f.read():
                            found.append(full)
            except OSError:
                pass
journal = subprocess.run(["journalctl", "--no-pager", "-o", "cat"], capture_output=True)
print(json.dumps({"files": sorted(found), "journal": secret.encode() in journal.stdout,
                  "length": len(secret)}))
"""


@pytest.fixture(scope="module")
def standby(request):
    return testinfra.get_host(
        f"ansible://{STANDBY}", ansible_inventory=request.config.option.ansible_inventory
    )


def psql(host, sql, database="shop_lab"):
    return host.run(f'runuser -u postgres -- psql -X -tA -d {database} -c "{sql}"')


def find(host, path, conninfo):
    script = FIND.replace("'", "'\"'\"'")
    out = host.check_output(f"python3 -c '{script}' {path} {int(conninfo)} {DIRS}")
    return json.loads(out)


def test_a_row_written_on_the_primary_is_read_on_the_standby(host, standby):
    token = f"verify-{time.time_ns()}"
    result = psql(host, f"INSERT INTO side_effect VALUES ('{token}')")  # noqa: S608
    assert result.rc == 0, result.stderr
    deadline = time.monotonic() + 10
    while True:
        seen = psql(standby, f"SELECT count(*) FROM side_effect WHERE note = '{token}'")  # noqa: S608
        if seen.stdout.strip() == "1" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert seen.stdout.strip() == "1", seen.stderr
    # The side effect's restore took its later write out on the standby too.
    rows = psql(standby, "SELECT note FROM side_effect WHERE note NOT LIKE 'verify-%' ORDER BY 1")
    assert rows.stdout.split("\n")[0:1] == ["before the backup"]
    assert "after the backup" not in rows.stdout


def test_the_standby_refuses_writes(standby):
    result = psql(standby, "INSERT INTO side_effect VALUES ('on the standby')")
    assert result.rc != 0
    assert "read-only transaction" in result.stderr
    assert psql(standby, "SELECT pg_is_in_recovery()", "postgres").stdout.strip() == "t"


def test_the_primary_streams_to_the_standby_as_the_replication_role(host, standby):
    address = standby.check_output("hostname -I").split()[0]
    sql = "SELECT usename, host(client_addr), state FROM pg_stat_replication"
    rows = psql(host, sql, "postgres")
    assert rows.stdout.strip() == f"shop_lab_replication|{address}|streaming"
    hba = host.file("/etc/postgresql/15/main/pg_hba.conf").content_string
    assert f'host    replication    "shop_lab_replication"    {address}/32    scram-sha-256' in hba
    role = psql(
        host,
        "SELECT rolreplication, rolsuper, left(rolpassword, 19) FROM pg_authid "
        "WHERE rolname = 'shop_lab_replication'",
        "postgres",
    )
    assert role.stdout.strip() == "t|f|SCRAM-SHA-256$4096:"
    conf = host.file("/etc/postgresql/15/main/conf.d/deployer.conf").content_string
    assert "wal_keep_size = '256MB'" in conf


def test_the_replication_password_is_in_the_primarys_credentials_file_alone(host):
    f = host.file(REPLICATION)
    assert (f.user, f.group, f.mode) == ("root", "root", 0o600)
    found = find(host, REPLICATION, conninfo=False)
    assert found == {"files": [REPLICATION], "journal": False, "length": len(ROTATED)}


def test_the_standby_keeps_it_in_postgresql_auto_conf_alone(host, standby):
    f = standby.file(AUTO_CONF)
    assert (f.user, f.group, f.mode) == ("postgres", "postgres", 0o600)
    primary = host.check_output("hostname -I").split()[0]
    conninfo = f.content_string
    assert "user=shop_lab_replication" in conninfo
    assert f"host={primary}" in conninfo
    assert "port=5432" in conninfo
    assert standby.file("/var/lib/postgresql/15/main/standby.signal").exists
    assert host.file(REPLICATION).content_string.strip() in conninfo
    found = find(standby, AUTO_CONF, conninfo=True)
    assert found == {"files": [AUTO_CONF], "journal": False, "length": len(ROTATED)}
    # A standby has no credentials of its own (its role and database are the primary's).
    assert not standby.file("/etc/deployer/accessories/shop-lab").exists


def test_the_backups_are_roots_and_pruned(host):
    directory = host.file(BACKUPS)
    assert (directory.user, directory.group, directory.mode) == ("root", "root", 0o700)
    names = sorted(host.check_output(f"ls -A {BACKUPS}").split())
    assert names[0] == "20210101T000000Z-v0.dump"
    assert names[2] == "notes.txt"
    assert names[1].endswith("-v1.dump")
    assert len(names) == 3  # no partial file left
    dump = host.file(f"{BACKUPS}/{names[1]}")
    assert (dump.user, dump.group, dump.mode) == ("root", "root", 0o600)
    assert dump.size > 0
