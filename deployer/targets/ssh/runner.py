"""The one place that runs Ansible: lays out a private data dir, runs a playbook through
ansible-runner, streams events to a progress sink and returns a frozen result.

Safety rules kept here:
- host key checking is always on (ANSIBLE_HOST_KEY_CHECKING=True; the inventory points SSH
  at the project's known_hosts files with StrictHostKeyChecking=yes);
- the ansible process gets a curated environment, not a copy of ours, so the `command`
  artifact that ansible-runner writes holds no stray credentials; env files are suppressed;
- secret values reach Ansible only inside a vault-encrypted extra-vars file whose one-time
  password is typed at the vault prompt through the pty: it is never on disk, in argv or env;
- nothing deployer hands Ansible is ever templated: the inventory, the extra vars and the
  secrets payload go in files (never on argv, which also caps their size), with every string
  marked unsafe, so a `{{ ... }}` in a config value, a secret or a host's reply stays text;
- what hosts reply is checked (replies.py) before anything reads it;
- artifacts are rotated.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from deployer.paths import collections_dir, playbooks_dir, ssh_control_dir
from deployer.session import ProgressSink
from deployer.targets.ssh.replies import Reply, cap, checked

KEEP_ARTIFACTS = 30
_ENV_ALLOW = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TERM", "SSH_AUTH_SOCK", "TZ")
_VAULT_PROMPT = r"Vault password( \([^)]*\))?:\s*?$"


@dataclass(frozen=True)
class HostOutcome:
    host: str
    ok: int = 0
    changed: int = 0
    failed: bool = False
    unreachable: bool = False
    message: str = ""  # the failing task's message
    failed_task: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)  # merged `deployer` task results
    seconds: float = 0.0

    @property
    def good(self) -> bool:
        return not (self.failed or self.unreachable)

    @property
    def reply(self) -> Reply:
        """What the host replied, typed."""
        return Reply.of(self.data)


@dataclass(frozen=True)
class RunResult:
    playbook: str
    status: str  # successful | failed | canceled | timeout
    rc: int
    hosts: Mapping[str, HostOutcome]
    seconds: float
    artifact_dir: Path
    phases: Mapping[str, Mapping[str, HostOutcome]] = field(default_factory=dict)
    phase_started: Mapping[str, float] = field(default_factory=dict)  # first task, epoch seconds

    def phase(self, name: str) -> Mapping[str, HostOutcome]:
        """Outcomes of one phase's plays only (see Runner.run's `phases`)."""
        return self.phases.get(name, {})

    @property
    def ok(self) -> bool:
        return self.status == "successful" and all(h.good for h in self.hosts.values())

    @property
    def canceled(self) -> bool:
        return self.status in {"canceled", "timeout"}

    def failed_hosts(self) -> list[str]:
        return [name for name, h in self.hosts.items() if not h.good]


def _blank() -> dict[str, Any]:
    return {
        "ok": 0,
        "changed": 0,
        "failed": False,
        "unreachable": False,
        "message": "",
        "failed_task": "",
        "data": {},
        "seconds": 0.0,
    }


@dataclass
class _Collector:
    """Folds ansible-runner events into per-host outcomes: over the whole run, and per phase
    (the plays whose names start with a phase's prefix; the other plays are phase "")."""

    progress: ProgressSink | None
    redact: Callable[[str], str]
    phases: Mapping[str, str] = field(default_factory=dict)  # phase -> play name prefix
    started: dict[str, float] = field(default_factory=dict)
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_phase: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    phase_started: dict[str, float] = field(default_factory=dict)  # epoch seconds
    on_phase: Callable[[str], None] | None = None  # told when a phase's first task starts

    def _phase(self, play: str) -> str:
        return next((p for p, prefix in self.phases.items() if play.startswith(prefix)), "")

    def __call__(self, event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        host = data.get("host")
        if kind == "runner_on_start" and host:
            self.started.setdefault(host, time.monotonic())
            phase = self._phase(str(data.get("play") or ""))
            if phase not in self.phase_started:
                self.phase_started[phase] = time.time()
                if self.on_phase:
                    self.on_phase(phase)
            if self.progress:
                self.progress.task(host, data.get("task", ""), "running")
            return True
        if not host or kind not in _RESULT_EVENTS:
            return True
        state = _RESULT_EVENTS[kind]
        if state == "failed" and data.get("ignore_errors"):
            state = "ok"
        in_phase = self.by_phase.setdefault(self._phase(str(data.get("play") or "")), {})
        for entry in (self.hosts.setdefault(host, _blank()), in_phase.setdefault(host, _blank())):
            self._fold(entry, state, data)
            if host in self.started:
                entry["seconds"] = time.monotonic() - self.started[host]
        if self.progress:
            self.progress.task(host, data.get("task", ""), state)
        return True

    def _fold(self, entry: dict[str, Any], state: str, data: Mapping[str, Any]) -> None:
        res = data.get("res") or {}
        if isinstance(res, dict) and isinstance(res.get("deployer"), dict):
            reply = checked(res["deployer"])
            if isinstance(reply.get("accessories"), dict):  # one per role: kept side by side
                reply["accessories"] = {
                    **entry["data"].get("accessories", {}),
                    **reply["accessories"],
                }
            entry["data"].update(reply)
        if state == "failed":
            entry["failed"] = True
        elif state == "unreachable":
            entry["unreachable"] = True
        elif res.get("changed"):
            entry["changed"] += 1
        else:
            entry["ok"] += 1
        if state in {"failed", "unreachable"}:
            message = _message(res)
            if state == "unreachable":
                message = explain_unreachable(message)
            entry["message"] = self.redact(message)
            entry["failed_task"] = data.get("task", "")

    def outcomes(
        self, entries: Mapping[str, dict[str, Any]] | None = None
    ) -> dict[str, HostOutcome]:
        entries = self.hosts if entries is None else entries
        return {name: HostOutcome(host=name, **values) for name, values in entries.items()}


_RESULT_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}


def _message(res: Mapping[str, Any]) -> str:
    msg = res.get("msg") or res.get("stderr") or res.get("module_stderr") or ""
    if isinstance(msg, (list, dict)):
        msg = json.dumps(msg)
    return cap(str(msg).strip())


_HOST_KEY_SIGNS = ("REMOTE HOST IDENTIFICATION HAS CHANGED", "Host key verification failed")


def explain_unreachable(message: str) -> str:
    """Put the one SSH failure that must never be waved through in plain words first."""
    if any(sign in message for sign in _HOST_KEY_SIGNS):
        return (
            "host key does not match known_hosts: refused (possible man-in-the-middle, or "
            "the host was rebuilt; if so, replace its entry in the known_hosts file). " + message
        )
    return message


UNSAFE = "__ansible_unsafe"
"""The JSON form of Ansible's `!unsafe`: a string Ansible keeps as text and never templates."""


def unsafe(value: Any) -> Any:
    """`value` with every string in it (at any depth) marked unsafe for Ansible. Keys stay
    plain: Ansible does not template mapping keys."""
    if isinstance(value, str):
        return {UNSAFE: value}
    if isinstance(value, os.PathLike):
        return {UNSAFE: os.fspath(value)}
    if isinstance(value, Mapping):
        return {str(key): unsafe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [unsafe(item) for item in value]
    return value


def vars_json(payload: Mapping[str, Any]) -> str:
    """Variables as Ansible reads them from a file: JSON with every string unsafe."""
    return json.dumps(unsafe(payload))


def _write_private(path: Path, data: str | bytes) -> None:
    """A file only this user can read, created with that mode (no window at 0644)."""
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(raw)


def _vault_encrypt(payload: Mapping[str, Any], password: str) -> bytes:
    """Encrypt extra vars with a one-time vault password, in-process."""
    from ansible.parsing.vault import VaultLib, VaultSecret

    vault = VaultLib([("default", VaultSecret(password.encode()))])
    return vault.encrypt(vars_json(payload))  # type: ignore[no-any-return]


def ansible_env(
    forks: int, config: Path | None = None, control_dir: Path | None = None
) -> dict[str, str]:
    """Settings for speed (pipelining, persistent connections, no facts) and safety."""
    return {
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=120s "
        "-o ServerAliveInterval=5 -o ServerAliveCountMax=3",
        "ANSIBLE_GATHERING": "explicit",
        "ANSIBLE_FORKS": str(forks),
        "ANSIBLE_COLLECTIONS_PATH": str(collections_dir()),
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "False",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_SYSTEM_WARNINGS": "False",
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
        "ANSIBLE_TIMEOUT": "15",
        "ANSIBLE_NOCOLOR": "True",
        "ANSIBLE_FORCE_COLOR": "False",
        # our own (empty) ansible.cfg: no stray one from the cwd, ~ or /etc changes behaviour
        **({"ANSIBLE_CONFIG": str(config)} if config else {}),
        **({"ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir)} if control_dir else {}),
    }


@dataclass(frozen=True)
class Stream:
    """Where a run goes instead of the local ansible-playbook: an execution node, reached by
    ssh argv built in deployer.plan.sites (argv only, its host key checked)."""

    label: str  # names the node and its config path, for messages
    remote: PurePosixPath  # the run's private directory on the node
    worker: Sequence[str]  # ssh ... ansible-runner worker --private-data-dir remote --delete
    cleanup: Sequence[str]  # ssh ... rm -rf remote
    files: Mapping[str, Path] = field(default_factory=dict)  # shipped inside the private dir
    env: Mapping[str, str] = field(default_factory=dict)  # the node's paths (collections, PATH)


class Runner:
    """Runs the project's playbooks for one project directory."""

    def __init__(
        self, data_root: Path, *, verbosity: int = 0, redact: Callable[[str], str] = lambda s: s
    ) -> None:
        self.data_root = data_root
        self.verbosity = verbosity
        self.redact = redact
        # checked now, before any run: a planted control directory is refused up front
        self.control_dir = ssh_control_dir(data_root / "runs", "cp")

    def run(
        self,
        playbook: str,
        inventory: Mapping[str, Any],
        extravars: Mapping[str, Any],
        *,
        secret_vars: Mapping[str, Any] | None = None,
        progress: ProgressSink | None = None,
        cancel: Callable[[], bool] | None = None,
        forks: int = 10,
        timeout: int | None = None,
        phases: Mapping[str, str] | None = None,
        on_phase: Callable[[str], None] | None = None,
        stream: Stream | None = None,
    ) -> RunResult:
        """Run `playbooks/<playbook>` and return per-host outcomes; `phases` ({name: play
        name prefix}) also keeps the outcomes of those plays apart, and `on_phase` hears when
        each phase begins, while the run goes on. With `stream`, the run happens on that
        execution node (ansible-runner transmit | ssh node worker | process), its events
        folded here exactly as a local run's."""
        stamp = time.strftime("%Y%m%dT%H%M%S")
        ident = f"{stamp}-{Path(playbook).stem}-{secrets.token_hex(3)}"
        if stream is not None:
            return self._run_streamed(
                ident, playbook, inventory, extravars, secret_vars, progress, cancel, forks,
                timeout, phases, on_phase, stream,
            )  # fmt: skip
        private = self.data_root / "runs"
        private.mkdir(parents=True, exist_ok=True, mode=0o700)
        config = private / "ansible.cfg"
        if not config.exists():
            config.write_text("# settings come from the environment deployer sets\n[defaults]\n")
        inv_dir = private / "inventory"
        inv_dir.mkdir(exist_ok=True, mode=0o700)
        tmp = private / "tmp"
        tmp.mkdir(exist_ok=True, mode=0o700)
        inv_file = inv_dir / f"{ident}.json"
        vars_file = tmp / f"{ident}.vars.json"
        vault_file = tmp / f"{ident}.vault"
        _write_private(inv_file, vars_json(inventory))
        _write_private(vars_file, vars_json(extravars))
        cmdline: list[str] = ["-e", f"@{vars_file}"]
        passwords: dict[str, str] = {}
        if secret_vars:
            password = secrets.token_urlsafe(32)
            _write_private(vault_file, _vault_encrypt(secret_vars, password))
            cmdline += ["--ask-vault-pass", "-e", f"@{vault_file}"]
            passwords[_VAULT_PROMPT] = password
        collector = _Collector(progress, self.redact, dict(phases or {}), on_phase=on_phase)
        started = time.monotonic()
        try:
            result = _run(
                private,
                ident,
                playbook,
                inv_file,
                cmdline,
                passwords,
                forks,
                self.verbosity,
                collector,
                cancel,
                timeout,
                self.control_dir,
            )
        finally:
            for leftover in (vault_file, vars_file, inv_file):
                leftover.unlink(missing_ok=True)
        return _result(playbook, result.status, result.rc, collector, started, private, ident)

    def _run_streamed(
        self,
        ident: str,
        playbook: str,
        inventory: Mapping[str, Any],
        extravars: Mapping[str, Any],
        secret_vars: Mapping[str, Any] | None,
        progress: ProgressSink | None,
        cancel: Callable[[], bool] | None,
        forks: int,
        timeout: int | None,
        phases: Mapping[str, str] | None,
        on_phase: Callable[[str], None] | None,
        stream: Stream,
    ) -> RunResult:
        """The private data dir laid out on the controller (0700, every file 0600) with the
        node's paths in it, transmitted over the ssh stdin to the node's worker, the events
        read back from its stdout. The local copy goes as soon as the stream is sent; the
        node's copy goes with `worker --delete` and, whatever happened, `stream.cleanup`."""
        runs = self.data_root / "runs"
        runs.mkdir(parents=True, exist_ok=True, mode=0o700)
        stage = runs / "stream" / ident
        stage.parent.mkdir(exist_ok=True, mode=0o700)
        stage.mkdir(mode=0o700)
        remote = stream.remote
        collector = _Collector(progress, self.redact, dict(phases or {}), on_phase=on_phase)
        started = time.monotonic()
        try:
            for sub in ("project", "inventory", "tmp", "keys", "known_hosts", "env", "files"):
                (stage / sub).mkdir(mode=0o700)
            for source in sorted(playbooks_dir().glob("*.yml")):
                _write_private(stage / "project" / source.name, source.read_bytes())
            for rel, source in stream.files.items():
                _write_private(stage / rel, source.read_bytes())
            _write_private(stage / "ansible.cfg", "[defaults]\n")
            _write_private(stage / "inventory" / "hosts.json", vars_json(inventory))
            _write_private(stage / "tmp" / "vars.json", vars_json(extravars))
            cmdline: list[str] = ["-e", f"@{remote / 'tmp' / 'vars.json'}"]
            passwords: dict[str, str] = {}
            if secret_vars:
                password = secrets.token_urlsafe(32)
                _write_private(stage / "tmp" / "vault", _vault_encrypt(secret_vars, password))
                cmdline += ["--ask-vault-pass", "-e", f"@{remote / 'tmp' / 'vault'}"]
                passwords[_VAULT_PROMPT] = password
            env = {
                **ansible_env(forks, None, None),
                "ANSIBLE_CONFIG": str(remote / "ansible.cfg"),
                **stream.env,
            }
            kwargs = {
                "ident": ident,
                "playbook": playbook,
                "inventory": "inventory/hosts.json",
                "cmdline": shlex.join(cmdline),
                "passwords": passwords or None,
                "envvars": env,
                "forks": forks,
                "verbosity": self.verbosity or None,
                "suppress_env_files": True,  # the vault password stays in the worker's memory
                "timeout": timeout,
            }
            status, rc = _stream(stage, runs, kwargs, stream, collector, cancel)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
            # the node's artifacts are not kept here (only its events, folded above): the
            # empty directory the processor made goes too
            shutil.rmtree(runs / "artifacts" / ident, ignore_errors=True)
            _cleanup(stream)
        return _result(playbook, status, rc, collector, started, runs, ident)


def _result(
    playbook: str,
    status: Any,
    rc: Any,
    collector: _Collector,
    started: float,
    private: Path,
    ident: str,
) -> RunResult:
    return RunResult(
        playbook=playbook,
        status=str(status),
        rc=int(rc if rc is not None else -1),
        hosts=collector.outcomes(),
        seconds=time.monotonic() - started,
        artifact_dir=private / "artifacts" / ident,
        phases={name: collector.outcomes(e) for name, e in collector.by_phase.items()},
        phase_started=dict(collector.phase_started),
    )


class NodeStreamError(Exception):
    """The stream to an execution node broke before the worker reported its end."""


def _stream(
    stage: Path,
    runs: Path,
    kwargs: Mapping[str, Any],
    stream: Stream,
    collector: _Collector,
    cancel: Callable[[], bool] | None,
) -> tuple[str, int | None]:
    """transmit -> ssh node worker -> process: ansible-runner's streaming protocol (the AWX
    mesh's), with the ssh process as the wire. Returns the worker's status and rc."""
    from ansible_runner.streaming import Processor, Transmitter

    proc = subprocess.Popen(  # argv only: no shell on this side
        list(stream.worker),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # a Ctrl-C reaches deployer, which then ends it itself
    )
    stdin, stdout, stderr = proc.stdin, proc.stdout, proc.stderr
    if stdin is None or stdout is None or stderr is None:  # pragma: no cover - PIPEs given
        raise RuntimeError("ssh started without its pipes")
    errors: list[bytes] = []
    sent: list[BaseException] = []

    def send() -> None:
        try:
            Transmitter(_output=stdin, private_data_dir=str(stage), **kwargs).run()
        except (OSError, ValueError) as exc:  # the node went away while we sent
            sent.append(exc)
        finally:
            shutil.rmtree(stage, ignore_errors=True)  # sent: the local copy goes now
            with contextlib.suppress(OSError):
                stdin.close()

    def read_errors() -> None:
        errors.append(stderr.read()[-64 * 1024 :])

    def watch_cancel() -> None:
        while proc.poll() is None:
            if cancel is not None and cancel():
                # its own session: the whole group (ssh and any ProxyCommand it started)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                return
            time.sleep(0.2)

    threads = [threading.Thread(target=t, daemon=True) for t in (send, read_errors, watch_cancel)]
    for thread in threads:
        thread.start()
    status: dict[str, Any] = {}

    def on_status(data: Mapping[str, Any], runner_config: Any = None) -> None:
        status.update(data)

    processor = _node_processor(Processor)(
        _input=stdout,
        private_data_dir=str(runs),
        ident=kwargs["ident"],
        # what the node sends is folded, never written to disk under names it chose
        event_handler=lambda event: bool(collector(event)) and False,
        status_handler=on_status,
        quiet=True,
    )
    processor.run()
    stdout.close()
    rc = proc.wait()
    for thread in threads:
        thread.join(timeout=5)
    final = str(processor.status)
    if cancel is not None and cancel():
        return "canceled", processor.rc
    if final in {"successful", "failed", "timeout", "canceled"}:
        node_rc = getattr(processor, "node_rc", None)
        return final, node_rc if node_rc is not None else (0 if final == "successful" else 1)
    why = (b"".join(errors).decode(errors="replace").strip() or f"ssh exited {rc}")[-600:]
    explanation = str(status.get("job_explanation") or "")
    raise NodeStreamError(
        f"{stream.label}: the run's stream broke ({explanation or final}): "
        f"{explain_unreachable(why)}"
    )


_ARTIFACTS_CAP = 256 * 1024 * 1024


def _node_processor(base: type) -> type:
    """ansible-runner's Processor, but the artifacts the node streams back are never unpacked
    (a zip from a host may hold symlinks that would lead later entries anywhere): they are
    read off the stream, and only ansible-playbook's exit code (`rc`) is taken from them."""
    import io
    import zipfile

    from ansible_runner.utils.base64io import Base64IO

    class NodeProcessor(base):  # type: ignore[misc]
        node_rc: int | None = None

        def artifacts_callback(self, artifacts_data: Mapping[str, Any]) -> None:
            remaining = int(artifacts_data["zipfile"])
            kept = io.BytesIO()
            with Base64IO(self._input) as source:
                while remaining > 0:
                    chunk = source.read(min(1024 * 1000, remaining))
                    if not chunk:
                        break
                    remaining -= len(chunk)
                    if kept.tell() + len(chunk) <= _ARTIFACTS_CAP:
                        kept.write(chunk)
            try:
                with zipfile.ZipFile(kept) as archive:
                    text = archive.read("rc")[:16].decode().strip()
                self.node_rc = int(text)
            except (KeyError, ValueError, zipfile.BadZipFile):
                self.node_rc = None

    return NodeProcessor


def _cleanup(stream: Stream) -> None:
    """The run's private directory on the node, removed whatever the run did (worker
    --delete removes it too; this covers a stream cut before the worker got there)."""
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        subprocess.run(list(stream.cleanup), capture_output=True, timeout=60, check=False)


def _curated_env(env: Mapping[str, str]) -> dict[str, str]:
    """What ansible-runner added plus a short allow-list of ours: never our whole environment
    (it would land in the `command` artifact, and it may hold credentials)."""
    ours = set(ansible_env(1, Path(), Path()))
    curated = {
        key: value
        for key, value in env.items()
        if key not in os.environ or key in _ENV_ALLOW or key in ours
    }
    # ansible-playbook comes with the deployer install, not from whatever PATH says
    curated["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return curated


def _close_reaped_without_delay() -> None:
    """ansible-runner closes its pexpect child only after `isalive()` went false, i.e. once
    the process was reaped; ptyprocess's close() still sleeps `delayafterclose` (0.1 s) first
    "to give the kernel time to update process status", which a reaped process no longer
    needs: 100 ms of every run spent waiting for nothing. Skip that wait for a reaped child
    only; an unreaped one is closed exactly as before."""
    from ptyprocess import PtyProcess  # type: ignore[import-untyped]

    original = PtyProcess.close
    if getattr(original, "deployer_patched", False):
        return

    def close(self: Any, force: bool = True) -> None:
        if self.terminated:  # waitpid already returned its status
            self.delayafterclose = 0
        original(self, force)

    close.deployer_patched = True  # type: ignore[attr-defined]
    PtyProcess.close = close


def _run(
    private: Path,
    ident: str,
    playbook: str,
    inv_file: Path,
    cmdline: Sequence[str],
    passwords: Mapping[str, str],
    forks: int,
    verbosity: int,
    collector: _Collector,
    cancel: Callable[[], bool] | None,
    timeout: int | None,
    control_dir: Path,
) -> Any:
    from ansible_runner.config.runner import RunnerConfig
    from ansible_runner.runner import Runner as _AnsibleRunner

    _close_reaped_without_delay()

    config = RunnerConfig(
        private_data_dir=str(private),
        ident=ident,
        playbook=str(playbooks_dir() / playbook),
        inventory=str(inv_file),
        cmdline=shlex.join(cmdline),
        passwords=dict(passwords) or None,
        envvars=ansible_env(forks, private / "ansible.cfg", control_dir),
        forks=forks,
        verbosity=verbosity or None,
        quiet=True,
        suppress_env_files=True,
        rotate_artifacts=KEEP_ARTIFACTS,
        timeout=timeout,
    )
    config.prepare()
    config.env = _curated_env(config.env)
    runner = _AnsibleRunner(
        config,
        event_handler=collector,
        cancel_callback=cancel or (lambda: False),
    )
    runner.run()
    return runner
