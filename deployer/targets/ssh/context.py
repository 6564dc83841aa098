"""The SSH target's view of a session: the Ansible runner and the inventory it runs with."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any

from deployer.plan.edge import tls_files
from deployer.plan.inventory import build_inventory
from deployer.session import Session
from deployer.targets.ssh.runner import Runner, RunResult


@dataclass
class SshSession(Session):
    """A Session that runs playbooks on the environment's hosts."""

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

    def _secret_vars(self) -> dict[str, Any] | None:
        """The secrets a staging run hands Ansible (vault-encrypted by the runner): the
        service's secret environment and the edge proxy's certificate and key."""
        out: dict[str, Any] = {}
        if self.secret_env:
            out["deployer_secret_env"] = dict(self.secret_env)
        files = tls_files(self.target, self.tls)
        if files:
            out["deployer_proxy_tls_files"] = files
        return out or None

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
        return self.runner.run(
            playbook,
            self.inventory,
            extravars,
            secret_vars=self._secret_vars() if secrets else None,
            progress=self.progress,
            cancel=cancel,
            forks=max(1, min(count, 50)),
            phases=phases,
            on_phase=on_phase,
        )
