"""The ledger's schema: one definition for every database engine.

Each migration is written once, in SQL both engines read, with its column types as
placeholders that each engine fills in (`Types`):

* ``{id}``: a 64-bit key the database assigns, also accepted when given (a copied ledger
  keeps its ids);
* ``{int}``: a 64-bit integer (flags are 0/1);
* ``{real}``: a double-precision number (durations, rates);
* ``{text}``: text compared byte by byte, as SQLite does, so every engine sorts host names and
  UTC ISO-8601 timestamps alike.

Identifiers that are reserved words in PostgreSQL are quoted (``"user"``). A migration
adding a table also names it in `TABLES`.
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEMA_VERSION = 6


@dataclass(frozen=True)
class Types:
    """What an engine calls the placeholders' types."""

    id: str
    int: str
    real: str
    text: str


# schema version N -> statements that migrate a version N-1 ledger to version N.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE deployments (
            id               {id},
            environment      {text} NOT NULL,
            kind             {text} NOT NULL,
            version          {text} NOT NULL,
            previous_version {text},
            artifact_sha256  {text},
            "user"           {text} NOT NULL,
            control_host     {text} NOT NULL,
            pid              {int}  NOT NULL,
            started_at       {text} NOT NULL,
            ended_at         {text},
            status           {text} NOT NULL,
            stage            {text} NOT NULL DEFAULT '',
            reason           {text} NOT NULL DEFAULT '',
            noop             {int}  NOT NULL DEFAULT 0,
            deploy_seconds   {real},
            rollback_seconds {real}
        )""",
        "CREATE INDEX deployments_by_env ON deployments (environment, id)",
        "CREATE INDEX deployments_by_status ON deployments (status, control_host)",
        """CREATE TABLE deployment_hosts (
            deployment_id  {int}  NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
            host           {text} NOT NULL,
            status         {text} NOT NULL,
            stage          {text} NOT NULL DEFAULT '',
            version_before {text},
            version_after  {text},
            message        {text} NOT NULL DEFAULT '',
            seconds        {real} NOT NULL DEFAULT 0,
            PRIMARY KEY (deployment_id, host)
        )""",
        """CREATE TABLE bad_versions (
            environment   {text} NOT NULL,
            version       {text} NOT NULL,
            deployment_id {int}  REFERENCES deployments (id),
            reason        {text} NOT NULL,
            marked_at     {text} NOT NULL,
            PRIMARY KEY (environment, version)
        )""",
        """CREATE TABLE observations (
            environment {text} NOT NULL,
            host        {text} NOT NULL,
            version     {text},
            healthy     {int},
            observed_at {text} NOT NULL,
            PRIMARY KEY (environment, host)
        )""",
    ),
    # What the watch window measured in Prometheus after the rollout (monitoring on only).
    2: (
        "ALTER TABLE deployments ADD COLUMN error_rate {real}",
        "ALTER TABLE deployments ADD COLUMN p95_ms {real}",
    ),
    # Per-service results on each host, for an app of several services (a JSON list).
    3: ("ALTER TABLE deployment_hosts ADD COLUMN services {text} NOT NULL DEFAULT '[]'",),
    # What each deploy hook did (its output masked), in the order they ran.
    4: (
        """CREATE TABLE deployment_hooks (
            deployment_id {int}  NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
            seq           {int}  NOT NULL,
            name          {text} NOT NULL,
            host          {text} NOT NULL,
            ok            {int}  NOT NULL,
            exit_code     {int},
            seconds       {real} NOT NULL DEFAULT 0,
            timed_out     {int}  NOT NULL DEFAULT 0,
            truncated     {int}  NOT NULL DEFAULT 0,
            output        {text} NOT NULL DEFAULT '',
            message       {text} NOT NULL DEFAULT '',
            PRIMARY KEY (deployment_id, seq)
        )""",
        # Database dumps deploys took before their migrations (database.backup).
        """CREATE TABLE backups (
            id            {id},
            environment   {text} NOT NULL,
            deployment_id {int}  REFERENCES deployments (id),
            host          {text} NOT NULL,
            file          {text} NOT NULL,
            bytes         {int}  NOT NULL,
            sha256        {text} NOT NULL,
            label         {text} NOT NULL,
            created_at    {text} NOT NULL
        )""",
        "CREATE INDEX backups_by_env ON backups (environment, id)",
    ),
    # Why a host failed its switch or health check, as the host analysed it (a JSON object:
    # cause, summary, journal, service), or NULL.
    5: ("ALTER TABLE deployment_hosts ADD COLUMN analysis {text}",),
    # A canary's steps, each with what its analysis measured of both slots; and the
    # operators' decisions after a step (`deployer promote` / `deployer abort`), which the
    # waiting deploy polls.
    6: (
        """CREATE TABLE canary_steps (
            deployment_id     {int}  NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
            seq               {int}  NOT NULL,
            share             {int}  NOT NULL,
            action            {text} NOT NULL,
            outcome           {text} NOT NULL,
            canary_error_rate {real},
            stable_error_rate {real},
            canary_p95_ms     {real},
            stable_p95_ms     {real},
            canary_requests   {real},
            seconds           {real} NOT NULL DEFAULT 0,
            message           {text} NOT NULL DEFAULT '',
            at                {text} NOT NULL,
            PRIMARY KEY (deployment_id, seq)
        )""",
        """CREATE TABLE canary_decisions (
            deployment_id {int}  NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
            share         {int}  NOT NULL,
            decision      {text} NOT NULL,
            "user"        {text} NOT NULL,
            decided_at    {text} NOT NULL,
            PRIMARY KEY (deployment_id, share)
        )""",
    ),
}

TABLES: dict[str, tuple[str, ...]] = {
    "deployments": ("id",),
    "deployment_hosts": ("deployment_id", "host"),
    "deployment_hooks": ("deployment_id", "seq"),
    "bad_versions": ("environment", "version"),
    "observations": ("environment", "host"),
    "backups": ("id",),
    "canary_steps": ("deployment_id", "seq"),
    "canary_decisions": ("deployment_id", "share"),
}
"""Every table of the ledger and its key, parents before the tables that refer to them:
the order a ledger is copied in (`deployer ledger migrate`)."""

IDENTITY_TABLES = ("deployments", "backups")
"""The tables whose `{id}` the database assigns."""


def statements(version: int, types: Types) -> tuple[str, ...]:
    """The migration to `version`, in an engine's types."""
    return tuple(
        statement.format(id=types.id, int=types.int, real=types.real, text=types.text)
        for statement in MIGRATIONS[version]
    )
