"""The `deployer` command line: parse, load config, call a command, render its result.

Exit codes are `deployer.exitcodes.ExitCode`. Progress goes to stderr, results to stdout
(JSON with --json). Every config problem is reported before any host is touched.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from deployer.errors import BadRequest, ConfigError, DeployerError
from deployer.exitcodes import ExitCode

T = TypeVar("T")

app = typer.Typer(
    name="deployer",
    help="Agentless deployments over SSH: stage, switch, health-check, roll back.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
lab_app = typer.Typer(
    help="The local lab: Debian hosts in containers with systemd and sshd.", no_args_is_help=True
)
lock_app = typer.Typer(help="The per-environment deployment lock.", no_args_is_help=True)
app.add_typer(lab_app, name="lab")
app.add_typer(lock_app, name="lock")
monitoring_app = typer.Typer(
    help="Prometheus, node exporter and a Grafana dashboard for an environment.",
    no_args_is_help=True,
)
app.add_typer(monitoring_app, name="monitoring")
accessory_app = typer.Typer(
    help="The environment's database and cache (never rolled back with releases).",
    no_args_is_help=True,
)
app.add_typer(accessory_app, name="accessory")
db_app = typer.Typer(help="Dumps of the environment's database.", no_args_is_help=True)
app.add_typer(db_app, name="db")
generate_app = typer.Typer(
    help="Files generated from deploy.yml and kept next to it: the CI/CD pipeline that deploys "
    "the app, the Terraform that creates an environment's hosts.",
    no_args_is_help=True,
)
app.add_typer(generate_app, name="generate")
ledger_app = typer.Typer(help="The release ledger.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
EnvArg = Annotated[str, typer.Argument(help="Environment name from deploy.yml.")]


@dataclass
class Options:
    config: Path
    verbosity: int


@app.callback()
def _main(
    ctx: typer.Context,
    config: Annotated[
        Path, typer.Option("-c", "--config", help="Project file.", envvar="DEPLOYER_CONFIG")
    ] = Path("deploy.yml"),
    verbose: Annotated[
        int, typer.Option("-v", "--verbose", count=True, help="Ansible verbosity (-v ... -vvvv).")
    ] = 0,
) -> None:
    ctx.obj = Options(config=config, verbosity=verbose)


def _finish(result: Any, as_json: bool, code: ExitCode = ExitCode.OK) -> None:
    from deployer import render

    if as_json:
        render.emit_json(out, result)
    else:
        render.show(result, out)
    raise typer.Exit(int(code))


@contextmanager
def _errors(as_json: bool) -> Iterator[None]:
    """Turn DeployerError into its message and exit code (JSON with --json)."""
    try:
        yield
    except DeployerError as exc:
        from deployer import render

        render.error(out if as_json else err, exc, as_json=as_json)
        raise typer.Exit(int(exc.exit_code)) from None


def _loaded(ctx: typer.Context) -> Any:
    from deployer.config.loader import load_project

    options: Options = ctx.obj
    return load_project(options.config)


def _target(ctx: typer.Context, environment: str) -> Any:
    from deployer.config.resolve import resolve
    from deployer.config.terraform import read_outputs
    from deployer.lab.hosts import load_lab, uses_lab
    from deployer.targets import check_supported

    loaded = _loaded(ctx)
    lab = load_lab() if uses_lab(loaded, environment) else None
    target = resolve(loaded, environment, lab, read_outputs(loaded, environment))
    check_supported(target.kind, environment)  # every command refuses a target not built yet
    return target


def _session(
    ctx: typer.Context,
    environment: str,
    *,
    secrets: bool = False,
    credentials: bool = False,
    ledger: bool = False,
) -> Any:
    from deployer import secrets as secret_values
    from deployer.config.notify import notify_path, secret_refs
    from deployer.session import Session, ledger_password

    target = _target(ctx, environment)
    password = (
        ledger_password(target.ledger, target.secrets, target.project_dir) if ledger else None
    )
    values: dict[str, str] = {}
    notify_values: dict[str, str] = {}
    tls_values: dict[str, str] = {}
    if secrets:
        values = secret_values.resolve(target.secrets, target.project_dir)
        notify_values = secret_values.resolve_refs(
            secret_refs(target.notifications),
            target.secrets,
            target.project_dir,
            path_of=lambda name: f"environments.{environment}." + notify_path(name),
        )
        if target.proxy is not None and target.proxy.tls:
            tls_values = secret_values.resolve_refs(
                target.proxy.tls,
                target.secrets,
                target.project_dir,
                path_of=lambda name: f"environments.{environment}.tls.{name}",
                multiline=True,
            )
            not_pem = [k for k, v in tls_values.items() if not v.lstrip().startswith("-----BEGIN ")]
            if not_pem:  # refused here, not by nginx -t on the hosts after staging
                raise ConfigError(
                    [f"environments.{environment}.tls.{k}: not PEM text" for k in not_pem],
                    source=str(target.config_path),
                )
    kept: dict[str, dict[str, str]] = {}
    keeps = bool((secrets or credentials) and target.secrets.vault_file and target.accessories)
    if keeps:
        kept = secret_values.accessory_credentials(
            target.accessories, target.secrets, target.project_dir
        )
    return Session(
        target=target,
        verbosity=ctx.obj.verbosity,
        # the key is masked; the certificate is public
        redact=secret_values.redactor_for(
            {
                **values,
                **notify_values,
                "tls key": tls_values.get("key", ""),
                **{f"{k}.{c}": v for k, found in kept.items() for c, v in found.items()},
                "ledger password": password or "",
            }
        ),
        secret_env=values,
        notify_secrets=notify_values,
        tls=tls_values,
        credentials=kept,
        keeps_credentials=keeps,
        ledger_password=password,
    )


@contextmanager
def _live(session: Any, title: str) -> Iterator[None]:
    """Progress on stderr, and Ctrl-C turned into a clean stop of the running playbook."""
    from deployer.progress import LiveProgress

    def interrupt(signum: int, frame: Any) -> None:
        if session.interrupted.is_set():  # a second Ctrl-C: stop waiting
            raise KeyboardInterrupt
        session.interrupted.set()
        err.print("[yellow]interrupt: stopping after the current step...[/]")

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        with LiveProgress(err, title) as progress:
            session.progress = progress
            yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _run(
    ctx: typer.Context,
    environment: str,
    title: str,
    call: Callable[[Any], T],
    *,
    secrets: bool = False,
    credentials: bool = False,
    ledger: bool = False,
) -> T:
    session = _session(ctx, environment, secrets=secrets, credentials=credentials, ledger=ledger)
    if ledger:  # a ledger deployer cannot read or reach is bad input, refused before any work
        session.check_ledger()
    from deployer.targets import for_session

    driver = for_session(session)
    with _live(session, title):
        return call(driver)


def _ssh_only(driver: Any, what: str) -> Any:
    """The SSH target's own session, for the commands only servers have."""
    if driver.kind != "ssh":
        raise BadRequest(
            f"environments.{driver.session.target.environment}.target: {what} is not "
            f"available for target {driver.kind!r}"
        )
    return driver.session


# --- project -----------------------------------------------------------------------------


@app.command()
def init(
    ctx: typer.Context,
    app_name: Annotated[str, typer.Option("--app", help="Application name.")] = "myapp",
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starter deploy.yml."""
    from deployer import render
    from deployer.config.names import Name
    from deployer.config.starter import starter

    with _errors(False):
        from pydantic import TypeAdapter, ValidationError

        try:
            TypeAdapter(Name).validate_python(app_name)
        except ValidationError as exc:
            raise BadRequest(f"--app: {exc.errors()[0]['msg']}") from None
        path: Path = ctx.obj.config
        if path.exists() and not force:
            raise BadRequest(f"{path} exists; use --force to overwrite it")
        path.write_text(starter(app_name))
        render.show_written(
            path, "deploy.yml", out, "edit the environments, then `deployer validate`"
        )


@app.command()
def validate(
    ctx: typer.Context,
    environments: Annotated[
        list[str] | None, typer.Argument(help="Environments to resolve (default: all).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check deploy.yml; exit 2 naming every bad config path."""
    from deployer.config import terraform
    from deployer.config.resolve import resolve
    from deployer.lab.hosts import load_lab, placeholder_lab, uses_lab

    with _errors(as_json):
        loaded = _loaded(ctx)
        names = environments or list(loaded.project.environments)
        problems: list[str] = []
        notes: list[str] = []
        for name in names:
            lab = load_lab() if uses_lab(loaded, name) else None
            if uses_lab(loaded, name) and lab is None:
                # the config is judged on its own; `deploy` will ask for `lab up`
                lab = placeholder_lab()
                notes.append(f"{name}: uses the local lab, which is not up")
            hosts = terraform.terraform_hosts(loaded, name)
            try:
                if hosts is not None and not terraform.outputs_path(loaded, hosts).exists():
                    # judged with stand-ins; `deploy` will ask for `terraform apply`
                    provisioned = terraform.placeholders(loaded, name)
                    notes.append(
                        f"{name}: its hosts come from Terraform, whose outputs "
                        f"({terraform.outputs_path(loaded, hosts)}) are not there yet"
                    )
                else:
                    provisioned = terraform.read_outputs(loaded, name)
                resolve(loaded, name, lab, provisioned)
            except ConfigError as exc:
                problems += [p for p in exc.problems if p not in problems]
        if problems:
            raise ConfigError(problems, source=str(loaded.path))
        result = {"config": str(loaded.path), "valid": True, "environments": names, "notes": notes}
        if as_json:
            _finish(result, True)
        from deployer import render

        render.show_validation(result, out)


@app.command()
def schema() -> None:
    """Print the JSON Schema of deploy.yml (for editor completion)."""
    from deployer import render
    from deployer.config.models import Project

    render.emit_json(out, Project.model_json_schema())


@app.command()
def inventory(
    ctx: typer.Context,
    environment: EnvArg,
    write: Annotated[
        bool,
        typer.Option(
            "--write",
            help="Write it to inventories/<env>/ next to deploy.yml (hosts.yml, group_vars/), "
            "for plain ansible-playbook -i; prints what was written.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Print the Ansible inventory generated for an environment (or write it, --write)."""
    from deployer import render
    from deployer.plan.inventory import build_inventory

    with _errors(as_json):
        target = _target(ctx, environment)
        if write:
            from deployer.inventories import write_inventory

            _finish(write_inventory(target, ctx.obj.config.name), as_json)
        data = build_inventory(target)
        if as_json:
            render.emit_json(out, data)
        else:
            render.show_inventory(data, out)


# --- lifecycle ---------------------------------------------------------------------------

VersionOpt = Annotated[str | None, typer.Option("--version", help="Release version.")]
ArtifactOpt = Annotated[
    Path | None,
    typer.Option(
        "--artifact",
        help="Directory or .tar.gz instead of the config's; for an app of several services "
        "SERVICE=DIR, that service's files instead of its own.",
    ),
]


@app.command()
def plan(
    ctx: typer.Context,
    environment: EnvArg,
    version: VersionOpt = None,
    artifact: ArtifactOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show hosts, batches and current -> new version per host. Changes nothing."""
    from deployer.engine.preview import plan as run_plan

    with _errors(as_json):
        result = _run(
            ctx,
            environment,
            f"plan {environment}",
            lambda d: run_plan(d.session, d, version=version, artifact_path=artifact),
            ledger=True,
        )
        _finish(result, as_json)


@app.command()
def deploy(
    ctx: typer.Context,
    environment: EnvArg,
    version: VersionOpt = None,
    artifact: ArtifactOpt = None,
    wait: Annotated[
        float, typer.Option("--wait", min=0, help="Seconds to wait for a held lock.")
    ] = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Deploy a release: stage, switch in batches, health-check; roll back on failure."""
    from deployer.engine.lifecycle import deploy as run_deploy

    with _errors(as_json):
        result = _run(
            ctx,
            environment,
            f"deploy {environment}",
            lambda d: run_deploy(d.session, d, version=version, artifact_path=artifact, wait=wait),
            secrets=True,
            ledger=True,
        )
        _finish(result, as_json, result.exit_code)


@app.command()
def build(
    ctx: typer.Context, environment: EnvArg, version: VersionOpt = None, as_json: JsonOpt = False
) -> None:
    """Build the release's container images (target swarm), tagged with the version."""
    with _errors(as_json):
        result = _run(ctx, environment, f"build {environment}", lambda d: _build(d, version))
        if as_json:
            _finish(result, True)
        from deployer import render

        render.show_build(result, out)


def _build(driver: Any, version: str | None) -> Any:
    if not hasattr(driver, "build"):
        raise BadRequest(
            f"environments.{driver.session.target.environment}.target: `build` makes "
            "container images for target swarm; SSH targets ship a tarball that `deploy` builds"
        )
    return driver.build(version)


@app.command()
def rollback(
    ctx: typer.Context,
    environment: EnvArg,
    to: Annotated[
        str | None, typer.Option("--to", help="Version (default: previous good).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Put every host back on a stored good version."""
    with _errors(as_json):
        result = _run(
            ctx,
            environment,
            f"rollback {environment}",
            lambda d: d.rollback(to),
            secrets=True,
            ledger=True,
        )
        _finish(result, as_json, result.exit_code)


@app.command()
def status(ctx: typer.Context, environment: EnvArg, as_json: JsonOpt = False) -> None:
    """Per host: current version and health; drift when hosts disagree."""
    with _errors(as_json):
        call = lambda d: d.status()  # noqa: E731
        _finish(_run(ctx, environment, f"status {environment}", call, ledger=True), as_json)


@app.command()
def releases(ctx: typer.Context, environment: EnvArg, as_json: JsonOpt = False) -> None:
    """Versions stored on the hosts, marked current / good / bad."""
    with _errors(as_json):
        call = lambda d: d.releases()  # noqa: E731
        title = f"releases {environment}"
        _finish(_run(ctx, environment, title, call, ledger=True), as_json)


maintenance_app = typer.Typer(
    help="The edge proxy's maintenance page (503 with Retry-After) for every request.",
    no_args_is_help=True,
)
app.add_typer(maintenance_app, name="maintenance")


@maintenance_app.command("on")
def maintenance_on(
    ctx: typer.Context,
    environment: EnvArg,
    retry_after: Annotated[
        int, typer.Option(min=1, max=86_400, help="Seconds clients are told to wait.")
    ] = 300,
    message: Annotated[str, typer.Option(help="One line on the page.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Answer every request through the proxy with the maintenance page; health checks and
    deploys go on."""
    _maintenance(ctx, environment, True, retry_after, message, as_json)


@maintenance_app.command("off")
def maintenance_off(ctx: typer.Context, environment: EnvArg, as_json: JsonOpt = False) -> None:
    """Send requests to the app again."""
    _maintenance(ctx, environment, False, 300, "", as_json)


def _maintenance(
    ctx: typer.Context, environment: str, on: bool, retry_after: int, message: str, js: bool
) -> None:
    from deployer.targets.ssh import maintenance

    with _errors(js):
        state = "on" if on else "off"
        result = _run(
            ctx,
            environment,
            f"maintenance {state} {environment}",
            lambda d: maintenance.run(_ssh_only(d, "maintenance"), on, retry_after, message),
        )
        _finish(result, js, ExitCode.OK if result.ok else ExitCode.DEPLOY_FAILED)


@app.command(name="exec")
def exec_command(
    ctx: typer.Context,
    environment: EnvArg,
    command: Annotated[list[str], typer.Argument(help="The command, after --.")],
    service: Annotated[
        str | None, typer.Option("--service", help="The service to run as (apps of several).")
    ] = None,
    host: Annotated[
        list[str] | None, typer.Option("--host", help="Only this host (repeatable).")
    ] = None,
    primary: Annotated[
        bool, typer.Option("--primary", help="Only the first host of the service.")
    ] = False,
    timeout: Annotated[int, typer.Option(min=1, max=86_400, help="Seconds it may run.")] = 300,
    as_json: JsonOpt = False,
) -> None:
    """Run a command on the hosts, in the current release, as the service user with its
    environment (`deployer exec production -- python3 manage.py check`)."""
    from deployer.targets.ssh import remote_exec

    with _errors(as_json):
        result = _run(
            ctx,
            environment,
            f"exec {environment}",
            lambda d: remote_exec.run(
                _ssh_only(d, "exec"),
                command,
                service=service,
                hosts=host or (),
                primary=primary,
                timeout=timeout,
            ),
            secrets=True,
        )
        code = ExitCode.OK if result.ok else ExitCode.DEPLOY_FAILED
        if result.unreachable:
            code = ExitCode.UNREACHABLE
        _finish(result, as_json, code)


@app.command()
def logs(
    ctx: typer.Context,
    environment: EnvArg,
    service: Annotated[
        str | None, typer.Option("--service", help="One service of the app.")
    ] = None,
    host: Annotated[
        list[str] | None, typer.Option("--host", help="Only this host (repeatable).")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="From this long ago (30s, 10m, 2h, 1d) or an ISO 8601 time (UTC)."),
    ] = None,
    lines: Annotated[int, typer.Option("--lines", "-n", min=1, max=100_000)] = 100,
    grep: Annotated[str | None, typer.Option(help="Only lines matching this pattern.")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """The app's journal on its hosts, each line prefixed with its host, merged by time."""
    from deployer import render
    from deployer.targets import for_session

    with _errors(as_json):
        driver = for_session(_session(ctx, environment, secrets=True))
        if driver.kind == "swarm":
            from deployer.targets.swarm import logs as journal

            session: Any = driver.session
            source: Any = driver
        else:
            from deployer.targets.ssh import logs as journal  # type: ignore[no-redef]

            session = source = _ssh_only(driver, "logs")
        options: dict[str, Any] = {
            "service": service,
            "hosts": host or (),
            "since": since,
            "grep": grep,
        }
        if not follow:
            with _live(session, f"logs {environment}"):
                result = journal.read(source, lines=lines, **options)
            code = ExitCode.OK if result.ok else ExitCode.UNREACHABLE
            _finish(result, as_json, code)

        def interrupt(signum: int, frame: Any) -> None:
            session.interrupted.set()

        def show(line: Any) -> None:
            if as_json:
                render.emit_json_line(out, line)
            else:
                render.show_log_line(line, out)

        previous = signal.signal(signal.SIGINT, interrupt)
        try:
            result = journal.follow(source, show, lines=min(lines, 1000), **options)
        finally:
            signal.signal(signal.SIGINT, previous)
        for name, why in result.errors.items():
            render.show_log_error(name, why, err)
        raise typer.Exit(int(ExitCode.OK if result.ok else ExitCode.UNREACHABLE))


def _ledger(ctx: typer.Context, environment: str | None) -> Any:
    """The project's ledger, after checking that `environment` (if any) is one of its own."""
    from deployer import secrets as secret_values
    from deployer.config.ledger import ledger_place
    from deployer.config.resolve import unknown_environment
    from deployer.session import ledger_password, open_ledger

    loaded = _loaded(ctx)
    if environment is not None and environment not in loaded.project.environments:
        raise unknown_environment(loaded, environment)
    place = ledger_place(loaded.project.ledger, loaded.directory)
    password = ledger_password(place, loaded.project.secrets, loaded.directory)
    redact = secret_values.redactor_for({"ledger password": password or ""})
    return open_ledger(place, password, redact)


@app.command()
def history(
    ctx: typer.Context,
    environment: Annotated[str | None, typer.Argument(help="Environment (default: all).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Rows.")] = 20,
    deployment: Annotated[
        int | None,
        typer.Option(
            "--id", min=1, help="One deployment in full: its hosts, why each failed, hooks."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Deployments and rollbacks from the ledger, newest first."""
    from deployer import render

    with _errors(as_json):
        ledger = _ledger(ctx, environment)
        if deployment is not None:
            found = _one_deployment(ledger, environment, deployment)
            if as_json:
                _finish(found, True)
            render.show_deployment(found, out)
            return
        rows = ledger.history(environment, limit)
        if as_json:
            _finish(rows, True)
        render.show_history(rows, out)


def _decide(ctx: typer.Context, environment: str, decision: str, as_json: bool) -> None:
    """Record an operator's decision for the canary of `environment` waiting after a step."""
    import getpass

    with _errors(as_json):
        ledger = _ledger(ctx, environment)
        from deployer.plan.strategy import waiting_share

        waiting = [
            (d, share)
            for d in ledger.running(environment)
            if (share := waiting_share(d.stage)) is not None
        ]
        if not waiting:
            raise BadRequest(
                f"{environment}: no canary is waiting for a decision (a deploy with "
                "strategy.auto_promote false waits after each step; see `deployer history`)"
            )
        found, share = waiting[0]
        standing = ledger.decide_canary(found.id, share, decision, getpass.getuser())
        if standing != decision:
            raise BadRequest(
                f"{environment}: deployment #{found.id} at {share} % was decided already: "
                f"{standing}"
            )
        result = {
            "environment": environment,
            "deployment_id": found.id,
            "version": found.version,
            "share": share,
            "decision": standing,
        }
        if as_json:
            _finish(result, True)
        from deployer import render

        render.show_canary_decision(result, out)


@app.command()
def promote(ctx: typer.Context, environment: EnvArg, as_json: JsonOpt = False) -> None:
    """A canary waiting after a step (auto_promote false): go on to the next step."""
    _decide(ctx, environment, "promote", as_json)


@app.command()
def abort(ctx: typer.Context, environment: EnvArg, as_json: JsonOpt = False) -> None:
    """A canary waiting after a step: take every request back to the stable release and
    stop the new one."""
    _decide(ctx, environment, "abort", as_json)


def _one_deployment(ledger: Any, environment: str | None, deployment: int) -> Any:
    from deployer.ledger import LedgerError

    try:
        found = ledger.get(deployment)
    except LedgerError:
        found = None
    if found is None or (environment is not None and found.environment != environment):
        where = f" of environment {environment}" if environment else ""
        raise BadRequest(f"--id: no deployment {deployment}{where} in the ledger")
    return found


@app.command()
def stats(
    ctx: typer.Context,
    environment: Annotated[str | None, typer.Argument(help="Environment (default: all).")] = None,
    textfile: Annotated[
        Path | None,
        typer.Option(help="Also write the numbers in Prometheus text format to this file."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Deployment KPIs from the ledger: success rate, deploy and rollback times."""
    from deployer import render
    from deployer import stats as kpis

    with _errors(as_json):
        result = kpis.compute(_ledger(ctx, environment), environment)
        if textfile is not None:
            kpis.write_textfile(kpis.prometheus_text(result), textfile)
        if as_json:
            _finish(result, True)
        render.show_stats(result, out)


@ledger_app.command("migrate")
def ledger_migrate(
    ctx: typer.Context,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            metavar="URL",
            help="The PostgreSQL ledger to move into, postgresql://USER@HOST[:PORT]/DATABASE "
            "(default: ledger.url). Never with a password in it: for ledger.url it is "
            "ledger.password's, for another URL libpq's (PGPASSWORD, ~/.pgpass).",
        ),
    ] = None,
    source: Annotated[
        Path | None,
        typer.Option(
            "--from", metavar="PATH", help="The SQLite ledger to move (default: the config's)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Move a SQLite ledger into PostgreSQL: every row, ids and times kept; into an empty
    database only (again: nothing to do). The SQLite file is left as it was."""
    from deployer.config.ledger import LedgerPlace, ledger_place, url_problem
    from deployer.ledger import Ledger, check_readable
    from deployer.ledger.transfer import move
    from deployer.secrets import redactor_for
    from deployer.session import ledger_password, open_ledger

    with _errors(as_json):
        hint = "give it in PGPASSWORD or ~/.pgpass, or as ledger.password for ledger.url"
        if to is not None and (problem := url_problem(to, hint)):
            raise BadRequest(f"--to: {problem}")
        loaded = _loaded(ctx)
        place = ledger_place(loaded.project.ledger, loaded.directory)
        url = to if to is not None else place.url
        if url is None:
            raise BadRequest(
                "--to: name the PostgreSQL ledger to move into "
                "(postgresql://USER@HOST[:PORT]/DATABASE), or set ledger.url"
            )
        path = source if source is not None else place.path
        if path is None:
            raise BadRequest("--from: the config's ledger is PostgreSQL: name the SQLite file")
        if not path.is_file():
            raise BadRequest(f"--from: no ledger at {path}")
        check_readable(path)
        configured = url == place.url
        password = (
            ledger_password(place, loaded.project.secrets, loaded.directory) if configured else None
        )
        named = ("ledger.url", "ledger.password") if configured else ("--to", "--to")
        with (
            Ledger(path) as moving,
            open_ledger(
                LedgerPlace(url=url),
                password,
                redactor_for({"ledger password": password or ""}),
                named=named,
            ) as target,
        ):
            moved = move(moving, target)
        _finish(moved, as_json)


@monitoring_app.command("setup")
def monitoring_setup(ctx: typer.Context, environment: EnvArg, as_json: JsonOpt = False) -> None:
    """Install node exporter on every host and Prometheus on the monitoring server
    (deploy does this by itself when features.monitoring is on)."""
    from deployer.targets.ssh.monitoring import setup

    with _errors(as_json):
        title = f"monitoring setup {environment}"
        result = _run(ctx, environment, title, lambda d: setup(_ssh_only(d, "monitoring setup")))
        _finish(result, as_json, result.exit_code)


AccessoryArg = Annotated[
    list[str] | None, typer.Argument(help="database or cache (default: every accessory).")
]


def _accessory(ctx: typer.Context, action: str, environment: str, names: Any, js: bool) -> None:
    from deployer.targets.ssh import accessories

    with _errors(js):
        title = f"accessory {action} {environment}"
        result = _run(
            ctx,
            environment,
            title,
            lambda d: accessories.run(_ssh_only(d, "accessory"), action, names or ()),
            credentials=action != "status",  # the vault's, and read back into it when it lacks them
        )
        _finish(result, js, ExitCode.OK if result.ok else ExitCode.DEPLOY_FAILED)


ACCESSORY_COMMANDS = {
    "setup": "Set up the accessories (deploy does this by itself, before anything is switched).",
    "status": "Whether each accessory runs, its version, connections or memory, its standbys.",
    "restart": "Restart the accessories (the app's connections drop and reconnect).",
    "upgrade": "Upgrade the accessories' packages within their major version, then restart.",
}


def _accessory_command(action: str) -> None:
    def command(
        ctx: typer.Context,
        environment: EnvArg,
        names: AccessoryArg = None,
        as_json: JsonOpt = False,
    ) -> None:
        _accessory(ctx, action, environment, names, as_json)

    command.__doc__ = ACCESSORY_COMMANDS[action]
    accessory_app.command(action)(command)


for _action in ACCESSORY_COMMANDS:
    _accessory_command(_action)


@db_app.command("backups")
def db_backups(ctx: typer.Context, environment: EnvArg, as_json: JsonOpt = False) -> None:
    """The dumps deploys took before their migrations (database.backup), newest first."""
    from deployer.targets.ssh import accessories

    with _errors(as_json):
        title = f"db backups {environment}"
        call = lambda d: accessories.backups(_ssh_only(d, "db backups"))  # noqa: E731
        _finish(_run(ctx, environment, title, call, ledger=True), as_json)


@db_app.command("restore")
def db_restore(
    ctx: typer.Context,
    environment: EnvArg,
    backup_id: Annotated[int, typer.Argument(metavar="ID", help="From `db backups`.")],
    yes: Annotated[
        bool, typer.Option("--yes", help="Replace the database's content: required.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Restore a dump into the app's database (its current content is replaced), holding
    the environment lock."""
    from deployer.targets.ssh import accessories

    with _errors(as_json):
        if not yes:
            raise BadRequest(
                f"db restore replaces the content of {environment}'s database with backup "
                f"{backup_id}: pass --yes"
            )
        title = f"db restore {environment} {backup_id}"
        result = _run(
            ctx,
            environment,
            title,
            lambda d: accessories.restore(_ssh_only(d, "db restore"), backup_id),
            ledger=True,
        )
        _finish(result, as_json, ExitCode.OK if result.ok else ExitCode.DEPLOY_FAILED)


@monitoring_app.command("config")
def monitoring_config(ctx: typer.Context, environment: EnvArg, as_json: JsonOpt = False) -> None:
    """Print the prometheus.yml generated from the environment's hosts."""
    from deployer import render
    from deployer.plan.monitoring import scrape_config, scrape_config_yaml
    from deployer.targets.ssh.monitoring import monitored

    with _errors(as_json):
        target = monitored(_target(ctx, environment))
        if as_json:
            render.emit_json(out, scrape_config(target))
        else:
            render.show_text(scrape_config_yaml(target), out)


@monitoring_app.command("dashboard")
def monitoring_dashboard(
    ctx: typer.Context,
    environment: EnvArg,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the JSON here, not to stdout.")
    ] = None,
) -> None:
    """Print the Grafana dashboard (JSON, for Grafana's import) of the environment."""
    from deployer import render
    from deployer.plan.monitoring import dashboard_json
    from deployer.targets.ssh.monitoring import monitored

    with _errors(False):
        text = dashboard_json(monitored(_target(ctx, environment)))
        if output is None:
            render.show_text(text, out)
        else:
            output.write_text(text + "\n")
            render.show_written(output, "dashboard", err)


@lock_app.command("status")
def lock_status(ctx: typer.Context, environment: EnvArg, as_json: JsonOpt = False) -> None:
    """Who holds the environment's lock, and whether it is stale."""
    from deployer.engine.locks import status as run_lock_status

    with _errors(as_json):
        _finish(_run(ctx, environment, f"lock status {environment}", run_lock_status), as_json)


@lock_app.command("release")
def lock_release(
    ctx: typer.Context,
    environment: EnvArg,
    force: Annotated[bool, typer.Option(help="Break a lock that is not stale.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Break a stale lock (a live one only with --force)."""
    from deployer.engine.locks import release as run_release

    with _errors(as_json):
        before = _run(
            ctx, environment, f"lock release {environment}", lambda d: run_release(d, force=force)
        )
        if as_json:
            _finish({"released": before.held, "was": before}, True)
        from deployer import render

        render.show_lock_release(environment, before, out)


# --- generate ----------------------------------------------------------------------------


def _generated(result: Any, output: Path | None, as_json: bool) -> None:
    """Print the generated files (JSON with --json), or write them to `output`."""
    from deployer import render

    if output is not None:
        from deployer.generate import write

        _finish(write(result, output), as_json)
    if as_json:
        _finish(result, True)
    render.show_generated(result, out, err)


def _judged(loaded: Any, names: list[str]) -> None:
    """Resolve each environment as a deploy would (with stand-ins for hosts Terraform has not
    created yet), so nothing is generated from a config that would be refused."""
    from deployer.config.resolve import resolve
    from deployer.config.terraform import placeholders

    problems: list[str] = []
    for name in names:
        try:
            resolve(loaded, name, None, placeholders(loaded, name))
        except ConfigError as exc:
            problems += [p for p in exc.problems if p not in problems]
    if problems:
        raise ConfigError(problems, source=str(loaded.path))


OutputOpt = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="Write here (a file for ci, a directory for terraform), not to stdout.",
    ),
]


@generate_app.command("ci")
def generate_ci(
    ctx: typer.Context,
    provider: Annotated[
        str, typer.Option("--provider", help="github (GitHub Actions) or gitlab (GitLab CI).")
    ] = "github",
    output: OutputOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The pipeline that validates, builds and deploys on a push to ci.branches and by hand."""
    from deployer.plan import ci

    with _errors(as_json):
        ci.check_provider(provider)
        loaded = _loaded(ctx)
        deployable, _ = ci.deployables(loaded.project)
        _judged(loaded, [e.name for e in deployable])
        try:
            generated = ci.pipeline(loaded.project, provider, loaded.path.name)
        except ConfigError as exc:
            raise ConfigError(exc.problems, source=str(loaded.path)) from None
        _generated(generated, output, as_json)


@generate_app.command("terraform")
def generate_terraform(
    ctx: typer.Context,
    environment: EnvArg,
    provider: Annotated[str, typer.Option("--provider", help="aws.")] = "aws",
    output: OutputOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The Terraform of the environment's hosts, their security groups, DNS and outputs."""
    from deployer.config.resolve import resolve, unknown_environment
    from deployer.config.terraform import placeholders
    from deployer.plan import terraform

    with _errors(as_json):
        terraform.check_provider(provider)
        loaded = _loaded(ctx)
        env = loaded.project.environments.get(environment)
        if env is None:
            raise unknown_environment(loaded, environment)
        problems = terraform.problems(env, environment)
        if problems:
            raise ConfigError(problems, source=str(loaded.path))
        target = resolve(loaded, environment, None, placeholders(loaded, environment))
        _generated(terraform.generate(target, env, provider), output, as_json)


# --- lab ---------------------------------------------------------------------------------

LabName = Annotated[str, typer.Option("--name", envvar="DEPLOYER_LAB_NAME", help="Lab name.")]


def _lab_state(state: Any, as_json: bool) -> None:
    from deployer import render

    if as_json:
        render.emit_json(out, state)
    else:
        render.show_lab(state, out)


@lab_app.command("up")
def lab_up(
    hosts: Annotated[int, typer.Option("--hosts", min=1, max=60, help="Number of hosts.")] = 3,
    swarm: Annotated[
        int | None,
        typer.Option("--swarm", min=1, max=9, help="N hosts running dockerd, joined in a swarm."),
    ] = None,
    name: LabName = "lab",
    as_json: JsonOpt = False,
) -> None:
    """Start (or scale to) N lab hosts; builds the image the first time."""
    from deployer import lab

    with _errors(as_json), _lab_errors():
        with err.status("lab up") as spinner:
            state = lab.up(
                swarm or hosts,
                name=name,
                progress=lambda m: spinner.update(f"lab up: {m}"),
                swarm=swarm is not None,
            )
        _lab_state(state, as_json)


@lab_app.command("status")
def lab_status(name: LabName = "lab", as_json: JsonOpt = False) -> None:
    """List the lab's hosts."""
    from deployer import lab

    with _errors(as_json), _lab_errors():
        _lab_state(lab.status(name), as_json)


@lab_app.command("down")
def lab_down(name: LabName = "lab", as_json: JsonOpt = False) -> None:
    """Remove the lab's hosts."""
    from deployer import lab

    with _errors(as_json), _lab_errors():
        with err.status("lab down"):
            state = lab.down(name)
        if as_json:
            _lab_state(state, True)
        else:
            from deployer import render

            render.show_lab_down(state, out)


@contextmanager
def _lab_errors() -> Iterator[None]:
    from deployer.lab import LabError

    try:
        yield
    except LabError as exc:
        raise DeployerError(str(exc)) from None


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
