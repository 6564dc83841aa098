"""What hosts may say back: every reply a playbook run carries is checked here, once, before
deployer reads it.

A host is not trusted to tell the truth, only to be parsed safely. Versions it reports
(`current`, its previous good release, the releases it stores) become rollback targets, extra
vars of the next run, ledger rows and lines on the operator's terminal, so they must obey the
same rule as a version given on the command line; a version that does not is dropped (read
as "nothing there") and the reply says so. Free text (messages, health output, reasons) is
capped in length: it is only ever shown, stored or passed on as an unsafe string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from deployer.config.names import check_version
from deployer.ledger import CAUSES, Analysis, HookResult, ServiceResult
from deployer.targets.base import MAX_TEXT, BackupTaken, cap

HOOK_OUTPUT = 65536
"""Characters kept of a hook's output (the host already sends its tail, masked)."""

__all__ = ["MAX_TEXT", "Reply", "cap", "checked", "rejected", "valid_version"]


VERSION_KEYS = frozenset({"current", "previous", "previous_good", "version", "marked_bad"})
"""Reply keys whose value names a release on the host."""

_REJECTED = "rejected"


def valid_version(value: object) -> str | None:
    """`value` when it is a version by the config's rule, else None."""
    if not isinstance(value, str):
        return None
    try:
        return check_version(value)
    except ValueError:
        return None


def _text(value: Any, depth: int = 0) -> Any:
    """Strings capped, at any depth (a lock's holder is a mapping); deeper than a reply
    ever nests is cut off."""
    if isinstance(value, str):
        return cap(value)
    if depth > 4:
        return None
    if isinstance(value, Mapping):
        return {str(k): _text(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_text(v, depth + 1) for v in value[:10_000]]
    return value


def _releases(entries: Any, rejected: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, Mapping):
            continue
        version = valid_version(entry.get("version"))
        if version is None:
            rejected.append(cap(repr(entry.get("version")), 80))
            continue
        out.append({str(k): _text(v) for k, v in entry.items()} | {"version": version})
    return out


def checked(data: Mapping[str, Any]) -> dict[str, Any]:
    """A host's `deployer` reply with every version checked and every text capped. Versions
    that break the rule are replaced by None (or left out of `releases`) and listed under
    `rejected`, so the caller can tell the operator."""
    rejected: list[str] = []
    out: dict[str, Any] = {}
    for key, value in data.items():
        key = str(key)
        if key in VERSION_KEYS and value is not None:
            version = valid_version(value)
            if version is None:
                rejected.append(cap(repr(value), 80))
            out[key] = version
        elif key == "releases":
            out[key] = _releases(value, rejected)
        elif key == "hook" and isinstance(value, Mapping):
            hook = {str(k): _text(v) for k, v in value.items() if k != "output"}
            out[key] = {**hook, "output": cap(str(value.get("output") or ""), HOOK_OUTPUT)}
        else:
            out[key] = _text(value)
    if rejected:
        out[_REJECTED] = rejected
    return out


def rejected(data: Mapping[str, Any]) -> list[str]:
    """Versions a reply carried that were not versions (see `checked`)."""
    return list(data.get(_REJECTED) or [])


@dataclass(frozen=True)
class Reply:
    """A host's merged `deployer` replies of one run, typed: the one schema every playbook
    answers in. Built from `checked` data only, so every version here obeys the rule."""

    current: str | None = None
    previous_good: str | None = None
    stage: str = ""
    """Where the host failed, as the role that failed says (lock, preflight, upload, stage,
    monitoring, switch, health, rollback); empty when nothing said."""
    switched: bool = False
    released: bool = False
    lock_action: str = ""
    acquired: bool = False
    held: bool = False
    mine: bool = False
    holder: Mapping[str, Any] = field(default_factory=dict)
    token: str = ""
    age_seconds: float = 0.0
    stale: bool = False
    healthy: bool | None = None
    message: str = ""
    breach: bool | None = None
    last: Mapping[str, float] = field(default_factory=dict)
    releases: tuple[Mapping[str, Any], ...] = ()
    rejected: tuple[str, ...] = ()
    services: tuple[ServiceResult, ...] = ()
    """For an app of several services: each one's result (deployer_switch, deployer_health)."""
    hook: HookResult | None = None
    """What a deploy hook did here (deployer_hook); its host is filled in by the caller."""
    backup: BackupTaken | None = None
    """A dump of the database taken here (deployer_accessory, state backup)."""
    sealed: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """{engine: {credential: text}}: an accessory's credentials sealed with the run's
    one-time pad (deployer_accessory's `seal`); only their shape is checked here."""
    analysis: Analysis | None = None
    """Why the switch or health check failed here, as the host analysed it."""
    slot: str | None = None
    """With two slots per host: the live one (deployer_switch, deployer_release)."""
    started: str | None = None
    """A canary's switch: the slot started next to the live one."""

    @staticmethod
    def of(data: Mapping[str, Any]) -> Reply:
        holder = data.get("holder")
        last = data.get("last")
        healthy = data.get("healthy")
        return Reply(
            current=data.get("current"),
            previous_good=data.get("previous_good"),
            stage=str(data.get("stage") or ""),
            switched=bool(data.get("switched")),
            released=bool(data.get("released")),
            lock_action=str(data.get("action") or ""),
            acquired=bool(data.get("acquired")),
            held=bool(data.get("held")),
            mine=bool(data.get("mine")),
            holder=holder if isinstance(holder, Mapping) else {},
            token=str(data.get("token") or ""),
            age_seconds=_number(data.get("age_seconds")),
            stale=bool(data.get("stale")),
            healthy=None if healthy is None else bool(healthy),
            message=str(data.get("message") or data.get("health_message") or ""),
            breach=None if data.get("breach") is None else bool(data.get("breach")),
            last={
                str(k): float(v)
                for k, v in (last.items() if isinstance(last, Mapping) else ())
                if isinstance(v, int | float) and not isinstance(v, bool)
            },
            releases=tuple(r for r in data.get("releases") or () if isinstance(r, Mapping)),
            rejected=tuple(rejected(data)),
            services=service_results(data.get("services")),
            hook=hook_result(data.get("hook")),
            backup=backup_taken(data.get("accessories")),
            sealed=sealed(data.get("accessories")),
            analysis=analysis(data.get("failure"), data.get("service")),
            slot=_slot(data.get("slot")),
            started=_slot(data.get("started")),
        )

    def lock_report(self) -> dict[str, Any]:
        """The lock module's fields, for `targets.base.lock_info`."""
        return {
            "held": self.held,
            "mine": self.mine,
            "holder": dict(self.holder),
            "token": self.token,
            "age_seconds": self.age_seconds,
            "stale": self.stale,
        }


_SERVICE = re.compile(r"[a-z][a-z0-9_]{0,62}")


def service_results(value: Any) -> tuple[ServiceResult, ...]:
    """`{name: {healthy, restarted, health_message}}` as a host reports it; a name that is no
    service name is dropped."""
    if not isinstance(value, Mapping):
        return ()
    out = []
    for name, result in value.items():
        if not isinstance(name, str) or not _SERVICE.fullmatch(name):
            continue
        result = result if isinstance(result, Mapping) else {}
        healthy = result.get("healthy")
        out.append(
            ServiceResult(
                name=name,
                healthy=None if healthy is None else bool(healthy),
                restarted=bool(result.get("restarted")),
                message=cap(str(result.get("health_message") or result.get("message") or "")),
            )
        )
    return tuple(out)


_DUMP = re.compile(r"[0-9]{8}T[0-9]{6}Z-[A-Za-z0-9._-]{1,64}\.dump")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def backup_taken(value: Any) -> BackupTaken | None:
    """`accessories.postgresql.backup {file, bytes, sha256}`, when a host reports one whose
    every field has the shape the module gives it (a file name it could not have made, a
    size that is no size, is dropped)."""
    report = value.get("postgresql") if isinstance(value, Mapping) else None
    backup = report.get("backup") if isinstance(report, Mapping) else None
    if not isinstance(backup, Mapping):
        return None
    file, size, digest = backup.get("file"), backup.get("bytes"), backup.get("sha256")
    if not (isinstance(file, str) and _DUMP.fullmatch(file)):
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return None
    if not (isinstance(digest, str) and _SHA256.fullmatch(digest)):
        return None
    return BackupTaken(file, size, digest)


JOURNAL_LINES = 12
"""Journal lines kept of a failure analysis (the host sends its last ones)."""


def analysis(value: Any, service: Any = None) -> Analysis | None:
    """`failure {cause, summary, journal}` as deployer_switch reports it; a cause it does
    not know is read as "unhealthy" (the summary still says what the host said)."""
    if not isinstance(value, Mapping):
        return None
    cause = value.get("cause")
    lines = value.get("journal")
    lines = lines[-JOURNAL_LINES:] if isinstance(lines, list) else []
    return Analysis(
        cause=cause if isinstance(cause, str) and cause in CAUSES else "unhealthy",
        summary=cap(str(value.get("summary") or ""), 500),
        journal=tuple(
            cap(str(line), 300)
            for line in (lines if isinstance(lines, list) else ())[-JOURNAL_LINES:]
        ),
        service=service if isinstance(service, str) and _SERVICE.fullmatch(service) else "",
    )


_SEALED = re.compile(r"[A-Za-z0-9+/]{1,1368}={0,2}")  # base64 of 1024 bytes at most
_ENGINES = ("postgresql", "redis")
_CREDENTIALS = ("password", "replication_password")


def sealed(value: Any) -> dict[str, dict[str, str]]:
    """`accessories.<engine>.sealed {credential: base64}` as a host reports it; anything of
    another shape is dropped."""
    out: dict[str, dict[str, str]] = {}
    for engine in _ENGINES:
        report = value.get(engine) if isinstance(value, Mapping) else None
        found = report.get("sealed") if isinstance(report, Mapping) else None
        if not isinstance(found, Mapping):
            continue
        kept = {
            c: found[c]
            for c in _CREDENTIALS
            if isinstance(found.get(c), str) and _SEALED.fullmatch(found[c])
        }
        if kept:
            out[engine] = kept
    return out


_HOOKS = frozenset({"before_switch", "after_switch", "after_rollback", "after_failure", "exec"})


def hook_result(value: Any) -> HookResult | None:
    """`{name, rc, seconds, timed_out, truncated, output}` as deployer_hook reports it."""
    if not isinstance(value, Mapping) or value.get("name") not in _HOOKS:
        return None
    rc = value.get("rc")
    timed_out = bool(value.get("timed_out"))
    code = rc if isinstance(rc, int) and not isinstance(rc, bool) else None
    return HookResult(
        name=str(value["name"]),
        host="",
        ok=code == 0 and not timed_out,
        exit_code=code,
        seconds=_number(value.get("seconds")),
        timed_out=timed_out,
        truncated=bool(value.get("truncated")),
        output=str(value.get("output") or ""),
    )


SLOT_NAMES = ("blue", "green")


def _slot(value: Any) -> str | None:
    """A slot a host reported, or None for anything but the two slot names."""
    return value if isinstance(value, str) and value in SLOT_NAMES else None


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
