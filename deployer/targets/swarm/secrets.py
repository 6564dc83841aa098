"""The service's secrets as Docker secrets, one set per release, created through the manager.

A Docker secret is immutable and Swarm refuses to remove one a task uses, so each value gets
an object of its own, named after the stack, the variable and a digest of the value
(`<stack>_<VARIABLE>_<12 hex>`, at most 64 characters as Docker wants): a changed value is a
new object, an unchanged one is reused, so re-running a deploy moves nothing and an update
never changes what a running task reads. The value reaches the manager only on the stdin of
`docker secret create`; it is never on argv, in the stack file or in a service's spec.

Which objects a version reads is the release's record: a Docker config (not secret: it holds
names only) labelled with the stack and the version, so a rollback to any stored version
mounts that version's values, even after the vault changed. A version without a record
(released before secrets reached Swarm, or with no secret at all) mounts none.

Tasks read `/run/secrets/<VARIABLE>`; the stack file also sets `<VARIABLE>_FILE` to that path
(the convention official images follow), and the images deployer generates export every
mounted file as the variable itself before the command starts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from deployer.errors import ConfigError, DeployerError
from deployer.targets.swarm.remote import Nodes

MAX_BYTES = 500 * 1024
"""Docker's limit on a secret's size."""
MOUNT_DIR = "/run/secrets"
LABEL_STACK = "io.deployer.stack"
LABEL_VERSION = "io.deployer.version"
LABEL_VARIABLE = "io.deployer.secret"
_NAME_CHARS = 64
_DIGEST = 12
_OBJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check(values: Mapping[str, str]) -> None:
    """Refuse what Docker would refuse, before the manager is touched (exit 2)."""
    problems = [
        f"secrets.env.{name}: {len(value.encode())} bytes, more than the {MAX_BYTES} bytes "
        "Docker allows in a secret"
        for name, value in sorted(values.items())
        if len(value.encode()) > MAX_BYTES
    ]
    if problems:
        raise ConfigError(problems)


def object_name(stack: str, variable: str, value: str) -> str:
    digest = hashlib.sha256(f"{stack}\0{variable}\0{value}".encode()).hexdigest()[:_DIGEST]
    head = f"{stack}_{variable}"[: _NAME_CHARS - _DIGEST - 1]
    return f"{head}_{digest}"


def _record_name(stack: str, version: str, mounts: Mapping[str, str]) -> str:
    body = json.dumps({"version": version, "secrets": dict(mounts)}, sort_keys=True)
    digest = hashlib.sha256(body.encode()).hexdigest()[:_DIGEST]
    return f"{stack[: _NAME_CHARS - _DIGEST - 9]}_release_{digest}"


@dataclass(frozen=True)
class Stored:
    """What the manager holds for one stack: secret objects and release records."""

    secrets: frozenset[str]
    records: Mapping[str, tuple[str, Mapping[str, str], str]]
    """{config name: (version, {VARIABLE: object}, created)}."""

    def record_of(self, version: str) -> Mapping[str, str] | None:
        found = [(created, m) for v, m, created in self.records.values() if v == version]
        return max(found, key=lambda x: x[0])[1] if found else None


def _labels(stack: str, **more: str) -> list[str]:
    out = ["--label", f"{LABEL_STACK}={stack}"]
    for key, value in more.items():
        out += ["--label", f"{key}={value}"]
    return out


def read(nodes: Nodes, stack: str) -> Stored:
    """One round trip: the stack's secret names and its release records (parsed strictly:
    the manager's answer is text deployer did not write)."""
    docker = nodes.docker_cmd
    flt = f"label={LABEL_STACK}={stack}"
    script = "\n".join(
        [
            "set -e",
            f"s=$({docker('secret', 'ls', '-q', '--filter', flt)})",
            f"c=$({docker('config', 'ls', '-q', '--filter', flt)})",
            "printf '{\"secrets\":'",
            f"if [ -n \"$s\" ]; then {docker('secret', 'inspect')} $s; else printf '[]'; fi",
            "printf ',\"configs\":'",
            f"if [ -n \"$c\" ]; then {docker('config', 'inspect')} $c; else printf '[]'; fi",
            "printf '}'",
        ]
    )
    raw = nodes.manage_script(script, what="docker secret ls")
    try:
        data = json.loads(raw)
    except ValueError:
        raise DeployerError(f"the manager's list of secrets is not JSON: {raw[:120]!r}") from None
    return parse(data, stack)


def parse(data: object, stack: str) -> Stored:
    secrets: set[str] = set()
    records: dict[str, tuple[str, Mapping[str, str], str]] = {}
    if not isinstance(data, dict):
        return Stored(frozenset(), {})
    for item in data.get("secrets") or []:
        spec = item.get("Spec") if isinstance(item, dict) else None
        name = spec.get("Name") if isinstance(spec, dict) else None
        if isinstance(name, str) and _OBJECT.fullmatch(name):
            secrets.add(name)
    for item in data.get("configs") or []:
        spec = item.get("Spec") if isinstance(item, dict) else None
        if not isinstance(spec, dict):
            continue
        name, labels = spec.get("Name"), spec.get("Labels") or {}
        if not (isinstance(name, str) and _OBJECT.fullmatch(name) and isinstance(labels, dict)):
            continue
        if labels.get(LABEL_STACK) != stack or not isinstance(labels.get(LABEL_VERSION), str):
            continue
        mounts = _mounts(spec.get("Data"))
        created = item.get("CreatedAt")
        if mounts is not None:
            records[name] = (labels[LABEL_VERSION], mounts, str(created or ""))
    return Stored(frozenset(secrets), records)


def _mounts(blob: object) -> dict[str, str] | None:
    try:
        body = json.loads(base64.b64decode(str(blob), validate=True))
    except ValueError:
        return None
    found = body.get("secrets") if isinstance(body, dict) else None
    if not isinstance(found, dict):
        return None
    out = {}
    for variable, name in found.items():
        if not (isinstance(variable, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", variable)):
            return None
        if not (isinstance(name, str) and _OBJECT.fullmatch(name)):
            return None
        out[variable] = name
    return out


def ensure(nodes: Nodes, stack: str, version: str, values: Mapping[str, str]) -> dict[str, str]:
    """Create what `version` needs and its record; returns {VARIABLE: object name}."""
    stored = read(nodes, stack)
    mounts = {name: object_name(stack, name, value) for name, value in sorted(values.items())}
    for variable, name in mounts.items():
        if name in stored.secrets:
            continue
        nodes.manage(
            "secret", "create", *_labels(stack, **{LABEL_VARIABLE: variable}), name, "-",
            stdin=values[variable].encode(),
        )  # fmt: skip
    record = _record_name(stack, version, mounts)
    if record not in stored.records:
        body = json.dumps({"version": version, "secrets": mounts}, sort_keys=True)
        nodes.manage(
            "config", "create", *_labels(stack, **{LABEL_VERSION: version}), record, "-",
            stdin=body.encode(),
        )  # fmt: skip
        # older records of this version (another set of values) are superseded
        stale = [n for n, (v, _m, _c) in stored.records.items() if v == version]
        if stale:
            nodes.manage("config", "rm", *stale)
    return mounts


def mounts_of(nodes: Nodes, stack: str, version: str) -> dict[str, str]:
    """The objects `version` was released with ({} when it has no record)."""
    found = read(nodes, stack).record_of(version)
    return dict(found or {})


def prunable(stored: Stored, keep: int, current: Sequence[str]) -> tuple[list[str], list[str]]:
    """(records, secret objects) to remove: the records of all but the newest `keep`
    versions and those in `current`, and every object no kept record names."""
    newest: list[str] = []
    for _name, (version, _m, _c) in sorted(
        stored.records.items(), key=lambda x: x[1][2], reverse=True
    ):
        if version not in newest:
            newest.append(version)
    kept_versions = set(newest[:keep]) | set(current)
    records = sorted(n for n, (v, _m, _c) in stored.records.items() if v not in kept_versions)
    needed = {
        name
        for n, (_v, mounts, _c) in stored.records.items()
        if n not in records
        for name in mounts.values()
    }
    return records, sorted(stored.secrets - needed)


def prune(
    nodes: Nodes, stack: str, keep: int, current: Sequence[str], images: Sequence[str] = ()
) -> tuple[str, ...]:
    """Remove what `prunable` names, and on every node the `images` (repositories) of the
    versions whose records went. Docker refuses to remove an object or image a task still
    uses; that one stays for a later prune. Returns the versions dropped."""
    stored = read(nodes, stack)
    records, objects = prunable(stored, keep, current)
    docker = nodes.docker_cmd
    lines = [f"{docker('config', 'rm', n)} >/dev/null 2>&1 || true" for n in records]
    lines += [f"{docker('secret', 'rm', n)} >/dev/null 2>&1 || true" for n in objects]
    if lines:
        nodes.manage_script("\n".join(lines), what="docker secret rm")
    dropped = sorted({stored.records[n][0] for n in records} - set(current))
    refs = [f"{repository}:{version}" for version in dropped for repository in images]
    if refs:
        script = f"{docker('image', 'rm', *refs)} >/dev/null 2>&1 || true"
        with ThreadPoolExecutor(max_workers=max(1, min(len(nodes.hosts), 8))) as pool:
            list(pool.map(lambda node: nodes.run(node, script, timeout=120), list(nodes.hosts)))
    return tuple(dropped)


def compose_entries(
    mounts: Mapping[str, str],
) -> tuple[list[dict[str, str]], dict[str, dict[str, object]], dict[str, str]]:
    """(a service's `secrets`, the stack's top-level `secrets`, the `_FILE` variables)."""
    service = [{"source": name, "target": variable} for variable, name in sorted(mounts.items())]
    top: dict[str, dict[str, object]] = {
        name: {"external": True} for name in sorted(mounts.values())
    }
    files = {f"{variable}_FILE": f"{MOUNT_DIR}/{variable}" for variable in sorted(mounts)}
    return service, top, files
