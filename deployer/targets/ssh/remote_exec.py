"""`deployer exec ENV -- CMD`: an operator's command on the hosts chosen, in the release
`current` points at on each, as the service user with its env files: one Ansible run
(exec.yml, deployer_hook), every host independent of the others. The command is an argv,
never a shell line; secrets in its output are masked on the host, then again here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from deployer.errors import BadRequest
from deployer.plan.accessories import exec_spec
from deployer.plan.extravars import base_vars
from deployer.targets.base import ExecResult
from deployer.targets.ssh.context import SshSession


def chosen_hosts(
    session: SshSession, service: str | None, hosts: Sequence[str], primary: bool
) -> list[str]:
    """The hosts the command runs on: those of `service` (or the app's), narrowed to
    `hosts`, or the first of them with `primary`. Refused (exit 2) by name."""
    target = session.target
    names = [s.name for s in target.services if s.kind != "static"]
    if target.services and service is None:
        raise BadRequest(f"--service: required, the app has several ({', '.join(names)})")
    if not target.services and service is not None:
        raise BadRequest("--service: the app is one service; leave it out")
    if service is not None and service not in names:
        raise BadRequest(
            f"--service: {service!r} is not a service with processes ({', '.join(names)})"
        )
    runs = (
        list(next(s.hosts for s in target.services if s.name == service))
        if service is not None
        else list(target.host_names)
    )
    if primary and hosts:
        raise BadRequest("--primary and --host: give one of them")
    unknown = [h for h in hosts if h not in runs]
    if unknown:
        raise BadRequest(
            f"--host: {unknown[0]!r} does not run {service or target.app.name} in environment "
            f"{target.environment} ({', '.join(runs)})"
        )
    if primary:
        return runs[:1]
    return [h for h in runs if h in hosts] if hosts else runs


def run(
    session: SshSession,
    argv: Sequence[str],
    *,
    service: str | None = None,
    hosts: Sequence[str] = (),
    primary: bool = False,
    timeout: int = 300,
) -> ExecResult:
    if not argv or not argv[0]:
        raise BadRequest("exec: give the command after --, e.g. deployer exec ENV -- uptime")
    if any("\x00" in a for a in argv):
        raise BadRequest("exec: the command holds a NUL byte")
    target = session.target
    chosen = chosen_hosts(session, service, hosts, primary)
    extravars = {
        **base_vars(target, chosen),
        "deployer_exec": exec_spec(target, service, argv, timeout),
    }
    result = session.run("exec.yml", extravars, hosts=chosen, cancellable=False)
    results, errors, unreachable = [], {}, []
    for host in chosen:
        outcome = result.hosts.get(host)
        hook = outcome.reply.hook if outcome is not None else None
        if outcome is not None and outcome.unreachable:
            unreachable.append(host)
            errors[host] = outcome.message
        elif hook is not None and hook.exit_code is not None:
            results.append(replace(hook, host=host, output=session.redact(hook.output)))
        else:
            errors[host] = (
                outcome.message if outcome is not None else f"no result ({result.status})"
            )
    return ExecResult(target.environment, tuple(argv), tuple(results), errors, tuple(unreachable))
