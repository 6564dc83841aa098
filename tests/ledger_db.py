"""A real PostgreSQL server for the tests: one container of the lab image (Debian's
postgresql-15, its cluster baked in), started in about a second and removed at the end of
the session. The server's postmaster runs as the container's main process (no systemd),
with fsync off: the tests want a real server, not a durable one.

Each test gets a database of its own, owned by the role `deployer`, whose password is
made up per session and reaches the container in its environment, never on a command line.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

from deployer.ledger import Ledger, Postgres

LAB_NAME = os.environ.get("DEPLOYER_TEST_LAB", "pytest")
CONTAINER = f"deployer-{LAB_NAME}-ledger-db"
ROLE = "deployer"

_START = r"""
set -e
mkdir -p /run/postgresql
chown postgres:postgres /run/postgresql
echo "host all all 0.0.0.0/0 scram-sha-256" >> /etc/postgresql/15/main/pg_hba.conf
bin=/usr/lib/postgresql/15/bin
conf="-D /var/lib/postgresql/15/main -c config_file=/etc/postgresql/15/main/postgresql.conf"
printf "ALTER ROLE postgres PASSWORD '%s';\n" "$ADMIN_PASSWORD" \
  | su postgres -s /bin/sh -c "$bin/postgres --single $conf postgres" >/dev/null
exec su postgres -s /bin/sh -c "exec $bin/postgres $conf -c listen_addresses='*' \
  -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
"""


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    admin_password: str = field(repr=False)
    password: str = field(repr=False)
    """The password of ROLE, the owner of every test database."""
    started_in: float
    """Seconds from `docker run` to the first accepted connection."""

    def admin(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user="postgres",
            password=self.admin_password,
            dbname=dbname,
            autocommit=True,
        )

    def url(self, dbname: str, user: str = ROLE) -> str:
        return f"postgresql://{user}@{self.host}:{self.port}/{dbname}"


@dataclass(frozen=True)
class PostgresDatabase:
    """One test's database: the ledger's URL (no password in it) and the password."""

    server: PostgresServer
    name: str

    @property
    def url(self) -> str:
        return self.server.url(self.name)

    @property
    def password(self) -> str:
        return self.server.password

    @property
    def where(self) -> Postgres:
        return Postgres(self.url, self.password)

    def ledger(self, redact: Any = None) -> Ledger:
        return Ledger(self.where, redact=redact)

    def sql(self, statement: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run one statement as the database's owner; the rows it returns."""
        with psycopg.connect(
            self.url, password=self.password, autocommit=True, row_factory=dict_row
        ) as conn:
            cursor = conn.execute(statement, tuple(params))
            return cursor.fetchall() if cursor.description else []


def start() -> PostgresServer:
    """Start the server (replacing a container of this lab's name left by a killed run)."""
    import docker
    from docker.errors import NotFound

    from deployer.lab import ensure_image

    client = docker.from_env()
    with contextlib.suppress(NotFound):
        client.containers.get(CONTAINER).remove(force=True)
    image = ensure_image()
    admin_password, password = secrets.token_hex(16), secrets.token_hex(16)
    began = time.monotonic()
    container = client.containers.run(
        image,
        ["sh", "-c", _START],
        name=CONTAINER,
        detach=True,
        environment={"ADMIN_PASSWORD": admin_password},
        ports={"5432/tcp": ("127.0.0.1", None)},
        labels={"io.deployer.test": "ledger-db"},
    )
    try:
        port = _published_port(container)
        server = _wait_ready(
            PostgresServer("127.0.0.1", port, admin_password, password, 0.0), began
        )
        with server.admin() as conn:
            conn.execute(f"CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{password}'")
        return server
    except BaseException:
        container.remove(force=True)
        raise


def stop() -> None:
    import docker
    from docker.errors import NotFound

    with contextlib.suppress(NotFound):
        docker.from_env().containers.get(CONTAINER).remove(force=True)


def _published_port(container: Any) -> int:
    for _ in range(100):
        container.reload()
        bound = (container.ports or {}).get("5432/tcp")
        if bound:
            return int(bound[0]["HostPort"])
        time.sleep(0.05)
    raise RuntimeError(f"{CONTAINER}: port 5432 was not published")


def _wait_ready(server: PostgresServer, began: float) -> PostgresServer:
    deadline = time.monotonic() + 60
    while True:
        try:
            server.admin().close()
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
            continue
        return PostgresServer(
            server.host,
            server.port,
            server.admin_password,
            server.password,
            time.monotonic() - began,
        )


@contextlib.contextmanager
def database(server: PostgresServer, icu_locale: str = "") -> Iterator[PostgresDatabase]:
    """A new, empty database owned by ROLE, dropped afterwards (its sessions ended); with
    `icu_locale`, text sorts by that language's rules unless a column says otherwise."""
    name = "ledger_" + secrets.token_hex(6)
    collation = (
        f" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE '{icu_locale}'" if icu_locale else ""
    )
    with server.admin() as conn:
        conn.execute(f"CREATE DATABASE {name} OWNER {ROLE}{collation}")
    try:
        yield PostgresDatabase(server, name)
    finally:
        with server.admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
