"""The SSH target's view of a session: the Ansible runner and the inventory it runs with."""

from __future__ import annotations

import base64
import secrets as _secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any

from deployer import secrets as secret_values
from deployer.errors import ConfigError
from deployer.plan.edge import tls_files
from deployer.plan.inventory import build_inventory
from deployer.plan.sites import (
    Part,
    filter_inventory,
    node_extravars,
    node_inventory,
    part_extravars,
    parts,
)
from deployer.secrets import Redactor
from deployer.session import Session
from deployer.targets.ssh.jump import broken_hop, name_broken_hop
from deployer.targets.ssh.nodes import (
    LockedSink,
    NodeHome,
    broken_part,
    merge,
    ready_all,
    run_parts,
)
from deployer.targets.ssh.runner import Runner, RunResult


@dataclass
class SshSession(Session):
    """A Session that runs playbooks on the environment's hosts."""

    _broken_hop: tuple[str | None] | None = field(default=None, repr=False)
    """What `ssh.jump` said when hosts behind it were unreachable (found once)."""

    @cached_property
    def nodes(self) -> dict[str, NodeHome]:
        """Every execution node checked (installed where needed), before the first run."""
        return ready_all(self.target, self.state_dir, self.runner.control_dir)

    def _run_parts(
        self,
        playbook: str,
        extravars: Mapping[str, Any],
        touched: set[str],
        secret_vars: Mapping[str, Any] | None,
        cancel: Callable[[], bool] | None,
        phases: Mapping[str, str] | None,
        on_phase: Callable[[str], None] | None,
    ) -> RunResult:
        """One run split by site: the direct hosts' part here, each site's part streamed to its
        node, all side by side, merged into one result."""
        homes = self.nodes
        target = self.target
        split = parts(target, touched)
        several = len(split) > 1
        progress = LockedSink(self.progress) if self.progress is not None and several else None
        seen: set[str] = set()
        lock = threading.Lock()

        def heard(phase: str) -> None:
            with lock:
                first = phase not in seen
                seen.add(phase)
            if first and on_phase is not None:
                on_phase(phase)

        def call(part: Part) -> Callable[[], RunResult]:
            def run() -> RunResult:
                names = part.hosts
                stream = None
                inventory: Mapping[str, Any]
                variables = part_extravars(extravars, target, part, several=several)
                if part.node is None:
                    inventory = filter_inventory(self.inventory, names)
                else:
                    home = homes[part.node.site]
                    ident = f"{part.node.site}-{_secrets.token_hex(8)}"
                    remote = home.home / "runs" / ident
                    laid = node_inventory(target, self.inventory, part, remote)
                    inventory = laid.inventory
                    variables, shipped = node_extravars(variables, remote)
                    stream = home.stream(target, ident, {**laid.files, **shipped})
                return self.runner.run(
                    playbook,
                    inventory,
                    variables,
                    secret_vars=secret_vars,
                    progress=progress or self.progress,
                    cancel=cancel,
                    forks=max(1, min(len(names), 50)),
                    phases=phases,
                    on_phase=heard,
                    stream=stream,
                )

            return run

        outcomes = run_parts([call(p) for p in split])
        results = []
        for part, outcome in zip(split, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                artifacts = self.state_dir / "runs" / "artifacts"
                outcome = broken_part(part.hosts, str(outcome), playbook, artifacts)
            results.append(outcome)
        return merge(results)

    @staticmethod
    def of(session: Session) -> SshSession:
        if isinstance(session, SshSession):
            return session
        return SshSession(**{f.name: getattr(session, f.name) for f in fields(session)})

    @cached_property
    def runner(self) -> Runner:
        return Runner(self.state_dir, verbosity=self.verbosity, redact=self.redact)

    @cached_property
    def inventory(self) -> dict[str, Any]:
        return build_inventory(self.target)

    def _secret_vars(self, pads: Mapping[str, bytes]) -> dict[str, Any] | None:
        """The secrets a staging run hands Ansible (vault-encrypted by the runner): the
        service's secret environment, the edge proxy's certificate and key, and the
        accessories' credentials from the project's vault with the one-time pads of those
        whose vault lacks some (`pads`, {kind: pad})."""
        out: dict[str, Any] = {}
        if self.secret_env:
            out["deployer_secret_env"] = dict(self.secret_env)
        files = tls_files(self.target, self.tls)
        if files:
            out["deployer_proxy_tls_files"] = files
        kept = {
            kind: dict(self.credentials.get(kind, {}))
            | ({"seal": base64.b64encode(pads[kind]).decode()} if kind in pads else {})
            for kind in {*self.credentials, *pads}
        }
        if kept:
            out["deployer_accessory_secrets"] = kept
        return out or None

    def _pads(self) -> dict[str, bytes]:
        """A fresh one-time pad for each accessory whose credentials the vault lacks."""
        if not self.keeps_credentials:
            return {}
        return {
            a.kind: secret_values.new_pad()
            for a in self.target.accessories
            if any(c not in self.credentials.get(a.kind, {}) for c in a.credentials)
        }

    def _keep_sealed(self, result: RunResult, pads: Mapping[str, bytes]) -> None:
        """Add to the project's vault the credentials the accessories' hosts sealed with
        this run's pads. A vault that cannot be written leaves them on their hosts only,
        which the next command that sets the accessories up reads back again: a note says
        so, the command's outcome stays what the hosts made it."""
        found: dict[str, str] = {}
        for accessory in self.target.accessories:
            outcome = result.hosts.get(accessory.primary)
            if accessory.kind not in pads or outcome is None:  # a later step's failure
                continue  # does not undo what the accessory step set up and sealed
            reply = outcome.reply.sealed.get(accessory.engine, {})
            for credential in accessory.credentials:
                if credential in self.credentials.get(accessory.kind, {}):
                    continue
                value = secret_values.unseal(
                    reply.get(credential), pads[accessory.kind], credential
                )
                if value is not None:
                    found[accessory.vault_key(credential)] = value
                    self.credentials.setdefault(accessory.kind, {})[credential] = value
        if not found:
            return
        self.redact = Redactor(self.redact.values + tuple(v for v in found.values() if len(v) >= 4))
        self.runner.redact = self.redact
        vault = self.target.secrets.vault_file
        try:
            added = secret_values.keep_in_vault(
                self.target.secrets, self.target.project_dir, found, self.state_dir / "vault.lock"
            )
        except (ConfigError, OSError, ValueError) as exc:
            why = "; ".join(exc.problems) if isinstance(exc, ConfigError) else str(exc)
            self.notes.append(
                f"the accessories' credentials could not be added to the vault ({vault}): "
                f"{why}; they stay on their hosts, and the next deploy or `accessory setup` "
                "tries again"
            )
            return
        if added:
            self.notes.append(f"added to the vault ({vault}): {', '.join(added)}")

    def run(
        self,
        playbook: str,
        extravars: Mapping[str, Any],
        *,
        hosts: Sequence[str] | None = None,
        secrets: bool = False,
        cancellable: bool = True,
        phases: Mapping[str, str] | None = None,
        on_phase: Callable[[str], None] | None = None,
    ) -> RunResult:
        touched = set(hosts) if hosts is not None else {h.name for h in self.target.every_host}
        if self.target.proxy is not None:  # its hosts are drained in step with every batch
            touched |= set(self.target.proxy.hosts)
        count = len(touched)
        cancel: Callable[[], bool] | None = self.interrupted.is_set if cancellable else None
        pads = self._pads() if secrets and "deployer_accessories" in extravars else {}
        secret_vars = self._secret_vars(pads) if secrets else None
        if self.target.sites:
            result = self._run_parts(
                playbook, extravars, touched, secret_vars, cancel, phases, on_phase
            )
        else:
            result = self.runner.run(
                playbook,
                self.inventory,
                extravars,
                secret_vars=secret_vars,
                progress=self.progress,
                cancel=cancel,
                forks=max(1, min(count, 50)),
                phases=phases,
                on_phase=on_phase,
            )
        if pads:
            self._keep_sealed(result, pads)
        if self.target.jump and any(o.unreachable for o in result.hosts.values()):
            if self._broken_hop is None:  # once per command: the chain is tried hop by hop
                self._broken_hop = (broken_hop(self.target),)
            why = self._broken_hop[0]
            if why is not None:
                result = name_broken_hop(result, why)
        return result
