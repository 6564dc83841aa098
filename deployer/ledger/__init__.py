"""Release ledger: the record of every deployment and rollback.

The ledger is the tool's memory: ``history``, ``status``, ``releases``, rollback
targets and deployment KPIs are all read from it. It lives in one of two engines, with
one schema and one set of migrations (`deployer.ledger.schema`) and the same statements
(`deployer.ledger.store`):

* SQLite (`deployer.ledger.sqlite`), the embedded default: one file per project
  (default ``<project>/.deployer/ledger.sqlite3``), shared by every process on the
  control host.
* PostgreSQL (`deployer.ledger.postgres`), ``ledger.url``: one database shared by every
  control host of a team, so they see one history, one set of bad versions and one
  rollback target. `deployer.ledger.transfer` moves a SQLite ledger into one.

On both:

* Every write is one transaction, safe against the other processes writing to the
  ledger, so it either lands whole or not at all.
* The schema is versioned and created/migrated on open. A ledger written by a newer
  deployer is refused rather than guessed at.
* Timestamps are UTC ISO-8601 text, durations float seconds. On PostgreSQL the
  timestamps are the server's clock, so the order of runs from several control hosts
  does not depend on theirs.
* Nothing secret is stored in free text: reasons, messages, stages, the user
  and the control host pass through ``redact`` before they reach the database.
  Identifiers (environment, versions, host names, the artifact's sha256) are
  stored as given and never redacted: they are checked by the config's rules,
  name things deployer looks up again (a bad version must stay refused, a
  rollback target must stay usable), and masking part of one (secret ``2024``
  in version ``v2024.1``) would corrupt the record. The trade-off: a secret
  whose value equals an identifier is stored in that identifier's column (it
  is not secret there: it is on every host already); in free text it is still
  masked.
* A database that is not a ledger, a row that does not parse or a ledger written
  by a newer deployer raises ``LedgerUnreadable`` (bad input, exit 2) naming
  it. ``check_readable`` refuses the first and the last of a SQLite file from its
  header alone, before a command does any work; neither is written to. A PostgreSQL
  server that cannot be reached or refuses the password raises ``LedgerUnreachable``
  (bad input, exit 2) when the ledger is opened.

Rules the readers follow:

* ``good_versions``: distinct targets of SUCCEEDED runs (deploy or rollback),
  newest success (``ended_at``) first, minus the environment's bad versions.
* ``current``: among finished runs of the environment that say what is live,
  take the newest by ``ended_at``: a SUCCEEDED run means its target ``version``
  is live; a ROLLED_BACK run means the rollback restored ``previous_version``
  (ROLLED_BACK runs with no ``previous_version`` say nothing and are skipped).
  FAILED, INTERRUPTED and RUNNING runs are ignored: they leave the hosts in an
  unknown state, which is what host observations are for.
* ``reconcile_orphans`` judges only the RUNNING rows of the control host that asks:
  a process id means something on its own host only.
"""

from deployer.ledger.base import LedgerError, LedgerUnreachable, LedgerUnreadable
from deployer.ledger.postgres import Postgres
from deployer.ledger.schema import SCHEMA_VERSION
from deployer.ledger.sqlite import check_readable
from deployer.ledger.store import (
    CAUSES,
    Analysis,
    Backup,
    CanaryStep,
    Deployment,
    HookResult,
    HostResult,
    HostStatus,
    Kind,
    Ledger,
    ServiceResult,
    Status,
    pid_is_alive,
)

__all__ = [
    "CAUSES",
    "SCHEMA_VERSION",
    "Analysis",
    "Backup",
    "CanaryStep",
    "Deployment",
    "HookResult",
    "HostResult",
    "HostStatus",
    "Kind",
    "Ledger",
    "LedgerError",
    "LedgerUnreachable",
    "LedgerUnreadable",
    "Postgres",
    "ServiceResult",
    "Status",
    "check_readable",
    "pid_is_alive",
]
