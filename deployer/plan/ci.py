"""The CI/CD pipeline that deploys the app, generated from deploy.yml (`deployer generate ci`).

One job: install deployer (`ci.install`), `deployer validate`, put the SSH key and known_hosts
in place from CI secrets, `deployer build` for an environment whose target builds images,
then `deployer deploy ENV --version <commit> --json`, whose JSON becomes the job summary
(`deployer.plan.ci_summary`, run by the pipeline as it is). It runs on a push to a branch of
`ci.branches` (deploying that branch's environment) and by hand (GitHub's workflow_dispatch,
GitLab's Run pipeline) for any environment it can reach, one deploy per environment at a time.

Secrets: every `{from_env: VAR}` of the config becomes the CI secret VAR, handed to the deploy
step alone, and a vault's password comes from one. Host key checking is never turned off: the
hosts' keys come from a CI secret too. No secret value is ever written here; an empty one
stops the job before deployer runs, naming the secret.

Pure: models in, text out.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import yaml

from deployer.config.base import SecretRef
from deployer.config.models import Environment, Project, TerraformHosts, lab_selection
from deployer.config.notify import notify_path, secret_refs
from deployer.errors import BadRequest, ConfigError
from deployer.plan.generated import Generated

PROVIDERS = ("github", "gitlab")
OUTPUT = {"github": ".github/workflows/deploy.yml", "gitlab": ".gitlab-ci.yml"}
"""Where each provider reads its pipeline, relative to the repository root."""
RESULT = ".deployer/deploy-result.json"
"""Where the deploy's JSON is kept, relative to deploy.yml: deployer's own directory, which
no artifact ever packs."""
RESERVED_PREFIXES = {"github": ("GITHUB_",), "gitlab": ("CI_", "GITLAB_")}
"""Secret names each provider keeps for itself."""
GITHUB_ACTIONS = {
    "checkout": "actions/checkout@v4",
    "python": "actions/setup-python@v5",
    "upload": "actions/upload-artifact@v4",
}


@dataclass(frozen=True)
class Deployable:
    """One environment the pipeline can deploy, and what its deploy needs from CI."""

    name: str
    target: str
    private_key: str | None
    known_hosts: str
    secrets: Mapping[str, str] = field(default_factory=dict)
    """CI secret -> the config path that names it."""


def check_provider(provider: str) -> str:
    if provider not in PROVIDERS:
        raise BadRequest(f"--provider: {provider!r} is not a CI provider ({', '.join(PROVIDERS)})")
    return provider


def _unreachable(env: Environment) -> str | None:
    """Why a CI runner cannot deploy this environment, or None."""
    if env.target == "nomad":
        return "target nomad is not implemented"
    groups = {} if isinstance(env.hosts, TerraformHosts) else env.groups
    if any(lab_selection(group) is not None for group in groups.values()):
        return "it uses the local lab"
    return None


def deployables(project: Project) -> tuple[list[Deployable], dict[str, str]]:
    """The environments a CI runner can deploy, and those it cannot (name -> why)."""
    out: list[Deployable] = []
    left: dict[str, str] = {}
    common = {
        ref.from_env: f"secrets.env.{name}.from_env"
        for name, ref in project.secrets.env.items()
        if ref.from_env
    }
    if project.secrets.vault_file and project.secrets.vault_password_env:
        common[project.secrets.vault_password_env] = "secrets.vault_password_env"
    ledger = project.ledger.password
    if project.ledger.url is not None and ledger is not None and ledger.from_env:
        common[ledger.from_env] = "ledger.password.from_env"
    for name, env in project.environments.items():
        why = _unreachable(env)
        if why is not None:
            left[name] = why
            continue
        base = f"environments.{name}"
        secrets = dict(common)
        for key in ("certificate", "key"):
            ref: SecretRef | None = getattr(env.tls, key) if env.tls and env.features.ssl else None
            if ref is not None and ref.from_env:
                secrets[ref.from_env] = f"{base}.tls.{key}.from_env"
        for ref_name, ref in secret_refs(env.notifications).items():
            if ref.from_env:
                secrets[ref.from_env] = f"{base}.{notify_path(ref_name)}.from_env"
        out.append(
            Deployable(
                name=name,
                target=env.target,
                private_key=env.ssh.private_key,
                known_hosts=env.ssh.known_hosts,
                secrets=secrets,
            )
        )
    return out, left


def _problems(
    project: Project, provider: str, envs: list[Deployable], left: Mapping[str, str]
) -> list[str]:
    ci = project.ci
    problems: list[str] = []
    if ci.install is None:
        problems.append(
            "ci.install: required by `deployer generate ci`: the pip requirement the pipeline "
            "installs deployer from (for example `deployer @ git+https://git.example.com/ops/"
            "deployer.git@v0.1.0`)"
        )
    if project.ledger.url is not None and ci.install is not None:
        named = _DEPLOYER.match(ci.install)
        extras = {e.strip().lower() for e in (named.group(1) or "").split(",")} if named else set()
        if named and "postgres" not in extras:
            problems.append(
                "ci.install: the ledger is a PostgreSQL database (ledger.url): install deployer "
                "with its postgres extra (`deployer[postgres] @ ...`)"
            )
    if not envs:
        why = "; ".join(f"{n}: {w}" for n, w in left.items())
        problems.append(f"environments: none can be deployed from CI ({why})")
    names = {e.name for e in envs}
    for branch, environment in ci.branches.items():
        if environment in left:
            problems.append(
                f"ci.branches.{branch}: environment {environment} cannot be deployed from CI "
                f"({left[environment]})"
            )
        elif environment not in names:
            problems.append(
                f"ci.branches.{branch}: {environment!r} is not an environment "
                f"({', '.join(project.environments)})"
            )
    if "vault_password" in ci.model_fields_set and not project.secrets.vault_password_file:
        problems.append(
            "ci.vault_password: used only with secrets.vault_password_file, which is not set"
        )
    own = {"ci.ssh_key": ci.ssh_key, "ci.known_hosts": ci.known_hosts}
    if project.secrets.vault_file and project.secrets.vault_password_file:
        own["ci.vault_password"] = ci.vault_password
    seen: dict[str, str] = {}
    for env in envs:
        for secret, path in {**{v: k for k, v in own.items()}, **env.secrets}.items():
            seen.setdefault(secret, path)
    for secret, path in seen.items():
        reserved = [p for p in RESERVED_PREFIXES[provider] if secret.upper().startswith(p)]
        if reserved:
            problems.append(
                f"{path}: {secret} cannot be a {provider} secret (names starting with "
                f"{reserved[0]} are {provider}'s own)"
            )
    for key, secret in own.items():
        clash = [p for e in envs for n, p in e.secrets.items() if n == secret]
        if clash:
            problems.append(f"{key}: {secret} is also the secret of {clash[0]}; give another name")
    if len(set(own.values())) < len(own):
        problems.append(f"ci: {', '.join(own)} must name different secrets")
    return problems


_DEPLOYER = re.compile(r"\s*deployer\s*(?:\[([^\]]*)\])?\s*(?:$|[@=<>!~;])", re.IGNORECASE)
"""`ci.install` when it names deployer by its name: its extras."""
SQLITE_NOTE = (
    "the ledger is a SQLite file of the checkout, which every pipeline run starts without: "
    "history, bad versions and rollback targets are not kept from one run to the next, nor "
    "shared with other control hosts; a PostgreSQL ledger (ledger.url) is"
)


def _q(value: str) -> str:
    return shlex.quote(value)


def _case(envs: list[Deployable], assign: Any) -> list[str]:
    """A shell `case` over the environments, with `assign(env)` for each, refusing others."""
    lines = ['case "$DEPLOYER_ENVIRONMENT" in']
    lines += [f"  {env.name}) {assign(env)} ;;" for env in envs]
    lines += [
        "  *)",
        '    echo "deployer: this pipeline deploys none of the environments named '
        "'$DEPLOYER_ENVIRONMENT'\" >&2",
        "    exit 2",
        "    ;;",
        "esac",
    ]
    return lines


def _check(variable: str) -> list[str]:
    """Stop when one of the secrets named in `$<variable>` is empty or unset."""
    return [
        f"for name in ${variable}; do",
        '  if [ -z "$(printenv "$name")" ]; then',
        '    echo "deployer: the CI secret $name is not set" >&2',
        "    exit 2",
        "  fi",
        "done",
    ]


def credentials_script(project: Project, envs: list[Deployable]) -> str:
    """Put the environment's known_hosts and SSH key (and a vault password file) in place
    from their CI secrets, never readable by others."""
    ci = project.ci
    needed = [ci.ssh_key, ci.known_hosts]
    password_file = project.secrets.vault_password_file if project.secrets.vault_file else None
    if password_file:
        needed.append(ci.vault_password)

    def paths(env: Deployable) -> str:
        return f"key={_q(env.private_key or '')} known_hosts={_q(env.known_hosts)}"

    lines = ["set -eu", *_case(envs, paths), f"secrets={_q(' '.join(needed))}"]
    lines += _check("secrets")
    lines += [
        "umask 077",
        'mkdir -p "$(dirname "$known_hosts")"',
        f'printf \'%s\\n\' "${ci.known_hosts}" > "$known_hosts"',
        'if [ -z "$key" ]; then',
        "  # no ssh.private_key: ssh takes the key from its own configuration",
        '  mkdir -p "$HOME/.ssh"',
        '  key="$HOME/.ssh/id_deployer"',
        '  printf \'IdentityFile %s\\n\' "$key" >> "$HOME/.ssh/config"',
        "fi",
        'mkdir -p "$(dirname "$key")"',
        f'printf \'%s\\n\' "${ci.ssh_key}" > "$key"',
    ]
    if password_file:
        lines += [
            f'mkdir -p "$(dirname {_q(password_file)})"',
            f"printf '%s\\n' \"${ci.vault_password}\" > {_q(password_file)}",
        ]
    return "\n".join(lines) + "\n"


def deploy_script(envs: list[Deployable]) -> str:
    """Check the environment's secrets are there, then deploy, keeping the JSON result."""

    def needs(env: Deployable) -> str:
        return f"secrets={_q(' '.join(env.secrets))}"

    lines = ["set -eu", *_case(envs, needs), *_check("secrets")]
    lines += [
        f'mkdir -p "$(dirname {RESULT})"',
        f'deployer deploy "$DEPLOYER_ENVIRONMENT" --version "$DEPLOYER_VERSION" --json > {RESULT}',
    ]
    return "\n".join(lines) + "\n"


VALIDATE = 'deployer validate "$DEPLOYER_ENVIRONMENT"'
BUILD = 'deployer build "$DEPLOYER_ENVIRONMENT" --version "$DEPLOYER_VERSION"\n'


def summary_script(destination: str) -> str:
    """The summary of the result file, appended to `destination` (and shown in the log)."""
    from importlib import resources

    code = resources.files("deployer.plan").joinpath("ci_summary.py").read_text()
    return f"python3 - {RESULT} <<'SUMMARY' | tee -a {destination}\n{code}SUMMARY\n"


def _header(
    project: Project, provider: str, envs: list[Deployable], left: Mapping[str, str], config: str
) -> str:
    ci = project.ci
    lines = [
        f"# Generated by deployer from {config}: the pipeline that deploys {project.app.name}.",
        f"# Regenerate it with `deployer generate ci --provider {provider}` after changing "
        f"{config}.",
        "#",
        "# CI secrets it reads (none of their values is written here):",
        f"#   {ci.ssh_key}: the SSH private key of the deploy user",
        f"#   {ci.known_hosts}: the hosts' known_hosts lines (host keys are always checked)",
    ]
    if project.secrets.vault_file and project.secrets.vault_password_file:
        lines.append(f"#   {ci.vault_password}: the vault's password (secrets.vault_password_file)")
    named: dict[str, str] = {}
    for env in envs:
        for secret, path in env.secrets.items():
            general = path.replace(f"environments.{env.name}.", "environments.<env>.")
            named.setdefault(secret, general)
    lines += [f"#   {secret}: {path}" for secret, path in named.items()]
    if left:
        lines.append("#")
        lines += [f"# Not deployed from here: {n} ({w})." for n, w in left.items()]
    return "\n".join(lines) + "\n"


class _Dumper(yaml.SafeDumper):
    """Block scalars for scripts, keys in the order given, lists indented under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _yaml(data: Mapping[str, Any]) -> str:
    return yaml.dump(dict(data), Dumper=_Dumper, sort_keys=False, width=1000)


def _github_environment(project: Project) -> str:
    """The expression that picks the environment: the dispatch's input, or the branch's."""
    if not project.ci.branches:
        return "${{ inputs.environment }}"
    picks = ["github.event_name == 'workflow_dispatch' && inputs.environment"]
    picks += [f"github.ref_name == '{b}' && '{e}'" for b, e in project.ci.branches.items()]
    return "${{ " + " || ".join(picks) + " || '' }}"


def github(project: Project, envs: list[Deployable], config: str) -> dict[str, Any]:
    ci = project.ci
    pick = _github_environment(project)
    on: dict[str, Any] = {}
    if ci.branches:
        on["push"] = {"branches": sorted(set(ci.branches))}
    on["workflow_dispatch"] = {
        "inputs": {
            "environment": {
                "description": "The environment to deploy",
                "type": "choice",
                "required": True,
                "options": [e.name for e in envs],
            }
        }
    }
    own = {ci.ssh_key, ci.known_hosts}
    if project.secrets.vault_file and project.secrets.vault_password_file:
        own.add(ci.vault_password)
    secrets = sorted({s for e in envs for s in e.secrets})
    steps: list[dict[str, Any]] = [
        {"name": "Check out", "uses": GITHUB_ACTIONS["checkout"]},
        {
            "name": "Set up Python",
            "uses": GITHUB_ACTIONS["python"],
            "with": {"python-version": ci.python},
        },
        {
            "name": "Install deployer",
            "env": {"DEPLOYER_INSTALL": ci.install},
            "run": 'python -m pip install "$DEPLOYER_INSTALL"',
        },
        {"name": f"Validate {config}", "run": VALIDATE},
        {
            "name": "Put the SSH key and known_hosts in place",
            "env": {s: f"${{{{ secrets.{s} }}}}" for s in sorted(own)},
            "run": credentials_script(project, envs),
        },
    ]
    builders = [e.name for e in envs if e.target == "swarm"]
    if builders:
        condition = " || ".join(f"env.DEPLOYER_ENVIRONMENT == '{n}'" for n in builders)
        steps.append({"name": "Build the images", "if": condition, "run": BUILD})
    deploy: dict[str, Any] = {"name": "Deploy"}
    if secrets:
        deploy["env"] = {s: f"${{{{ secrets.{s} }}}}" for s in secrets}
    steps.append({**deploy, "run": deploy_script(envs)})
    steps += [
        {"name": "Summary", "if": "always()", "run": summary_script('"$GITHUB_STEP_SUMMARY"')},
        {
            "name": "Keep the result",
            "if": "always()",
            "uses": GITHUB_ACTIONS["upload"],
            "with": {
                "name": "deploy-result",
                "path": str(PurePosixPath(ci.directory) / RESULT),
                "if-no-files-found": "ignore",
            },
        },
    ]
    return {
        "name": f"deploy {project.app.name}",
        "on": on,
        "permissions": {"contents": "read"},
        "jobs": {
            "deploy": {
                "name": f"deploy {pick}",
                "runs-on": "ubuntu-latest",
                "environment": pick,
                "concurrency": {
                    "group": f"deployer-{project.app.name}-{pick}",
                    "cancel-in-progress": False,
                },
                "env": {
                    "DEPLOYER_ENVIRONMENT": pick,
                    "DEPLOYER_VERSION": "${{ github.sha }}",
                    "DEPLOYER_CONFIG": config,
                },
                "defaults": {"run": {"working-directory": ci.directory}},
                "steps": steps,
            }
        },
    }


def gitlab(project: Project, envs: list[Deployable], config: str) -> dict[str, Any]:
    ci = project.ci
    rules: list[dict[str, Any]] = [{"if": '$CI_PIPELINE_SOURCE == "web"'}]
    for branch, environment in ci.branches.items():
        rules.append(
            {
                "if": f'$CI_PIPELINE_SOURCE == "push" && $CI_COMMIT_BRANCH == "{branch}"',
                "variables": {"DEPLOYER_ENVIRONMENT": environment},
            }
        )
    names = [e.name for e in envs]
    default = next(iter(ci.branches.values()), names[0])
    script = [
        VALIDATE,
        credentials_script(project, envs),
    ]
    if any(e.target == "swarm" for e in envs):
        builders = " ".join(e.name for e in envs if e.target == "swarm")
        script.append(
            f'case " {builders} " in *" $DEPLOYER_ENVIRONMENT "*) {BUILD.strip()} ;; esac'
        )
    script.append(deploy_script(envs))
    job: dict[str, Any] = {
        "stage": "deploy",
        "image": f"python:{ci.python}-slim",
        "resource_group": f"deployer-{project.app.name}-$DEPLOYER_ENVIRONMENT",
        "environment": {"name": "$DEPLOYER_ENVIRONMENT"},
        "before_script": [
            "apt-get update -qq && apt-get install -y -qq --no-install-recommends "
            "openssh-client git > /dev/null",
            'python -m pip install "$DEPLOYER_INSTALL"',
            f"cd {_q(ci.directory)}",
        ],
        "script": script,
        "after_script": [f"cd {_q(ci.directory)}", summary_script("deploy-summary.md")],
        "artifacts": {
            "when": "always",
            "expire_in": "30 days",
            "paths": [
                str(PurePosixPath(ci.directory) / RESULT),
                str(PurePosixPath(ci.directory) / "deploy-summary.md"),
            ],
        },
    }
    if any(e.target == "swarm" for e in envs):
        job["services"] = [{"name": "docker:27-dind", "alias": "docker"}]
        job["variables"] = {"DOCKER_HOST": "tcp://docker:2375", "DOCKER_TLS_CERTDIR": ""}
    return {
        "workflow": {"name": f"deploy {project.app.name} to $DEPLOYER_ENVIRONMENT", "rules": rules},
        "variables": {
            "DEPLOYER_ENVIRONMENT": {
                "value": default,
                "options": names,
                "description": "The environment to deploy",
            },
            "DEPLOYER_VERSION": "$CI_COMMIT_SHA",
            "DEPLOYER_CONFIG": config,
            "DEPLOYER_INSTALL": ci.install,
        },
        "stages": ["deploy"],
        "deploy": job,
    }


def pipeline(project: Project, provider: str, config: str = "deploy.yml") -> Generated:
    """The pipeline file for `provider`, named as the provider reads it. Raises ConfigError
    (exit 2) naming the config path that keeps it from being written."""
    check_provider(provider)
    envs, left = deployables(project)
    problems = _problems(project, provider, envs, left)
    if problems:
        raise ConfigError(problems)
    data = github(project, envs, config) if provider == "github" else gitlab(project, envs, config)
    text = _header(project, provider, envs, left, config) + _yaml(data)
    notes = tuple(f"not deployed from CI: {n} ({w})" for n, w in left.items())
    if project.ledger.url is None:
        notes += (SQLITE_NOTE,)
    return Generated(kind="ci", provider=provider, files={OUTPUT[provider]: text}, notes=notes)
