"""The CI/CD pipeline generated from deploy.yml (`deployer generate ci`), for GitHub Actions
and GitLab CI: golden files, valid against each provider's published schema (check-jsonschema
ships both, so this runs offline), and its scripts run for real with a stand-in `deployer`.

tests/golden/generate/<case>/ holds a deploy.yml and, under expected/ci/, its pipelines.
After an intended change, regenerate and review the diff:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/plan/test_ci_plan.py
"""

from __future__ import annotations

import copy
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployer.config.loader import load_project
from deployer.config.models import Project
from deployer.engine.results import DeployResult
from deployer.errors import BadRequest, ConfigError
from deployer.exitcodes import ExitCode
from deployer.ledger import HookResult, HostStatus, Status
from deployer.plan import ci, ci_summary
from deployer.render import jsonable
from deployer.targets.base import HostReport

GOLDEN = Path(__file__).parents[2] / "golden" / "generate"
CASES = sorted(p.parent for p in GOLDEN.glob("*/deploy.yml"))
FILES = {"github": "github.yml", "gitlab": "gitlab.yml"}
SCHEMAS = {
    "github": ["--builtin-schema", "vendor.github-workflows"],
    "gitlab": ["--builtin-schema", "vendor.gitlab-ci", "--regex-variant", "nonunicode"],
}


def _project(case: Path) -> Project:
    return load_project(case / "deploy.yml").project


def _text(project: Project, provider: str) -> str:
    (text,) = ci.pipeline(project, provider).files.values()
    return text


@pytest.mark.parametrize("provider", ci.PROVIDERS)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_pipeline(case: Path, provider: str) -> None:
    generated = ci.pipeline(_project(case), provider)
    assert list(generated.files) == [ci.OUTPUT[provider]]
    (text,) = generated.files.values()
    golden = case / "expected" / "ci" / FILES[provider]
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.parametrize("provider", ci.PROVIDERS)
def test_the_pipelines_are_valid_against_the_providers_schema(provider: str) -> None:
    files = [case / "expected" / "ci" / FILES[provider] for case in CASES]
    assert len(files) >= 2
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", *SCHEMAS[provider], *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok -- validation done" in done.stdout


def test_the_schema_check_fails_a_broken_pipeline(tmp_path: Path) -> None:
    """The check above can fail: a job without where it runs is not a GitHub workflow."""
    data = yaml.safe_load(_text(_project(GOLDEN / "shop"), "github"))
    del data["jobs"]["deploy"]["runs-on"]
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump(data))
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", *SCHEMAS["github"], str(broken)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout


# --- what the pipeline does ------------------------------------------------------------------


def _github(case: str = "shop") -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(_text(_project(GOLDEN / case), "github"))
    return data


def _gitlab(case: str = "shop") -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(_text(_project(GOLDEN / case), "gitlab"))
    return data


def _steps(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["name"]: step for step in data["jobs"]["deploy"]["steps"]}


def test_github_deploys_on_push_to_ci_branches_and_by_hand_to_any_reachable_environment() -> None:
    data = _github()
    on = data["on"]  # quoted: YAML 1.1 readers would take a bare `on` for true
    assert on["push"] == {"branches": ["main", "release"]}
    choice = on["workflow_dispatch"]["inputs"]["environment"]
    assert choice["type"] == "choice"
    assert choice["options"] == ["development", "staging", "production", "cloud"]  # no lab
    job = data["jobs"]["deploy"]
    pick = job["env"]["DEPLOYER_ENVIRONMENT"]
    assert "inputs.environment" in pick
    assert "github.ref_name == 'main' && 'staging'" in pick
    assert "github.ref_name == 'release' && 'production'" in pick
    # one deploy per environment at a time, never cancelled half-way
    assert job["concurrency"] == {"group": f"deployer-shop-{pick}", "cancel-in-progress": False}
    assert job["environment"] == pick  # the provider's environment: its secrets, its rules


def test_github_runs_deployers_real_commands_in_order() -> None:
    steps = _github("blog")["jobs"]["deploy"]["steps"]
    runs = [s.get("run", s.get("uses", "")) for s in steps]
    assert runs[2] == 'python -m pip install "$DEPLOYER_INSTALL"'
    assert steps[2]["env"] == {"DEPLOYER_INSTALL": "deployer==0.1.0"}  # ci.install
    assert runs[3] == 'deployer validate "$DEPLOYER_ENVIRONMENT"'
    build = next(s for s in steps if s["name"] == "Build the images")
    assert build["if"] == "env.DEPLOYER_ENVIRONMENT == 'swarm'"  # the swarm target builds
    assert build["run"].strip() == ci.BUILD.strip()
    deploy = next(s for s in steps if s["name"] == "Deploy")
    assert deploy["run"].splitlines()[-1] == (
        'deployer deploy "$DEPLOYER_ENVIRONMENT" --version "$DEPLOYER_VERSION" --json '
        "> .deployer/deploy-result.json"
    )
    assert [s["name"] for s in steps].index("Build the images") < [s["name"] for s in steps].index(
        "Deploy"
    )
    assert "Build the images" not in _steps(_github("shop"))  # no target there builds images


def test_ci_python_and_directory_reach_the_pipeline() -> None:
    blog, shop = _github("blog"), _github("shop")
    assert _steps(blog)["Set up Python"]["with"] == {"python-version": "3.12"}
    assert _steps(shop)["Set up Python"]["with"] == {"python-version": "3.11"}
    assert blog["jobs"]["deploy"]["defaults"]["run"]["working-directory"] == "ops/blog"
    kept = _steps(blog)["Keep the result"]["with"]["path"]
    assert kept == "ops/blog/.deployer/deploy-result.json"
    gitlab = _gitlab("blog")["deploy"]
    assert gitlab["image"] == "python:3.12-slim"
    assert "cd ops/blog" in gitlab["before_script"]
    assert "cd ops/blog" in gitlab["after_script"]


def test_each_secret_reference_becomes_a_ci_secret_given_to_the_step_that_needs_it() -> None:
    steps = _steps(_github("blog"))
    assert steps["Deploy"]["env"] == {
        "BLOG_API_TOKEN": "${{ secrets.BLOG_API_TOKEN }}",  # secrets.env.API_TOKEN
        "BLOG_SLACK_WEBHOOK": "${{ secrets.BLOG_SLACK_WEBHOOK }}",  # a notification's
        "BLOG_TLS_KEY": "${{ secrets.BLOG_TLS_KEY }}",  # the TLS key
    }
    # ci.ssh_key, ci.known_hosts and ci.vault_password: the files put in place
    assert steps["Put the SSH key and known_hosts in place"]["env"] == {
        "BLOG_SSH_KEY": "${{ secrets.BLOG_SSH_KEY }}",
        "DEPLOYER_KNOWN_HOSTS": "${{ secrets.DEPLOYER_KNOWN_HOSTS }}",
        "DEPLOYER_VAULT_PASSWORD": "${{ secrets.DEPLOYER_VAULT_PASSWORD }}",
    }
    for name in ("Install deployer", f"Validate {'deploy.yml'}", "Summary"):
        assert "secrets." not in json.dumps(steps[name]), name  # nothing else sees them


def test_a_vault_password_from_the_environment_is_the_secret_of_that_name() -> None:
    project = _project(GOLDEN / "blog")
    secrets = project.secrets.model_copy(
        update={"vault_password_file": None, "vault_password_env": "BLOG_VAULT_PASSWORD"}
    )
    project = project.model_copy(update={"secrets": secrets})
    steps = _steps(yaml.safe_load(_text(project, "github")))
    assert steps["Deploy"]["env"]["BLOG_VAULT_PASSWORD"] == "${{ secrets.BLOG_VAULT_PASSWORD }}"
    assert "DEPLOYER_VAULT_PASSWORD" not in json.dumps(steps)


def test_no_secret_value_is_ever_written(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BLOG_API_TOKEN", "BLOG_TLS_KEY", "BLOG_SLACK_WEBHOOK", "BLOG_SSH_KEY"):
        monkeypatch.setenv(name, f"canary-{name.lower()}")
    for provider in ci.PROVIDERS:
        text = _text(_project(GOLDEN / "blog"), provider)
        assert "canary-" not in text
        assert "session_key" not in text  # a vault key's name is not a secret of the CI's


def test_host_key_checking_stays_on() -> None:
    for provider in ci.PROVIDERS:
        for case in ("shop", "blog"):
            text = _text(_project(GOLDEN / case), provider)
            assert "StrictHostKeyChecking" not in text
            assert "HOST_KEY_CHECKING" not in text
            assert "ssh-keyscan" not in text  # keys come from the secret, never from the network


def test_gitlab_deploys_on_push_and_from_run_pipeline_one_at_a_time() -> None:
    data = _gitlab()
    rules = data["workflow"]["rules"]
    assert rules[0] == {"if": '$CI_PIPELINE_SOURCE == "web"'}
    assert rules[1:] == [
        {
            "if": '$CI_PIPELINE_SOURCE == "push" && $CI_COMMIT_BRANCH == "main"',
            "variables": {"DEPLOYER_ENVIRONMENT": "staging"},
        },
        {
            "if": '$CI_PIPELINE_SOURCE == "push" && $CI_COMMIT_BRANCH == "release"',
            "variables": {"DEPLOYER_ENVIRONMENT": "production"},
        },
    ]
    variable = data["variables"]["DEPLOYER_ENVIRONMENT"]
    assert variable["options"] == ["development", "staging", "production", "cloud"]
    assert variable["value"] in variable["options"]
    job = data["deploy"]
    assert job["resource_group"] == "deployer-shop-$DEPLOYER_ENVIRONMENT"
    assert job["environment"] == {"name": "$DEPLOYER_ENVIRONMENT"}
    assert job["script"][0] == 'deployer validate "$DEPLOYER_ENVIRONMENT"'
    assert job["artifacts"]["when"] == "always"


def test_gitlab_builds_images_for_swarm_with_a_docker_service() -> None:
    job = _gitlab("blog")["deploy"]
    assert any("deployer build" in line for line in job["script"])
    assert job["services"][0]["name"].startswith("docker:")
    assert "services" not in _gitlab("shop")["deploy"]


# --- the scripts, run ------------------------------------------------------------------------

FAKE_DEPLOYER = """#!/bin/sh
printf '%s\\n' "$*" >> "$CALLS"
case "$1" in
  deploy) printf '{"deployment_id": 7, "environment": "%s", "status": "SUCCEEDED"}\\n' "$2" ;;
esac
"""


def _sandbox(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "deployer"
    fake.write_text(FAKE_DEPLOYER)
    fake.chmod(0o755)
    (tmp_path / "home").mkdir()
    (tmp_path / "work").mkdir()
    return {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "CALLS": str(tmp_path / "calls"),
        "DEPLOYER_VERSION": "0123456789abcdef0123456789abcdef01234567",
    }


def _run(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-e", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=30
    )


def test_the_credentials_step_writes_known_hosts_and_the_key_where_the_environment_reads_them(
    tmp_path: Path,
) -> None:
    project = _project(GOLDEN / "blog")
    envs, _ = ci.deployables(project)
    env = {
        **_sandbox(tmp_path),
        "DEPLOYER_ENVIRONMENT": "production",
        "BLOG_SSH_KEY": "-----BEGIN OPENSSH PRIVATE KEY-----\nkey\n-----END OPENSSH PRIVATE KEY-",
        "DEPLOYER_KNOWN_HOSTS": "203.0.113.11 ssh-ed25519 AAAAC3Nza",
        "DEPLOYER_VAULT_PASSWORD": "vault-password",
    }
    work = tmp_path / "work"
    done = _run(ci.credentials_script(project, envs), work, env)
    assert done.returncode == 0, done.stderr
    # environments.production.ssh: private_key and known_hosts, relative to deploy.yml
    assert (work / "keys" / "known_hosts").read_text() == "203.0.113.11 ssh-ed25519 AAAAC3Nza\n"
    key = work / "keys" / "deploy_ed25519"
    assert key.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (work / ".vault-password").read_text() == "vault-password\n"
    assert stat.S_IMODE((work / ".vault-password").stat().st_mode) == 0o600


def test_without_ssh_private_key_the_key_goes_to_sshs_own_configuration(tmp_path: Path) -> None:
    project = _project(GOLDEN / "shop")
    envs, _ = ci.deployables(project)
    env = {
        **_sandbox(tmp_path),
        "DEPLOYER_ENVIRONMENT": "staging",
        "DEPLOYER_SSH_KEY": "private",
        "DEPLOYER_KNOWN_HOSTS": "192.0.2.10 ssh-ed25519 AAAA",
    }
    done = _run(ci.credentials_script(project, envs), tmp_path / "work", env)
    assert done.returncode == 0, done.stderr
    home = tmp_path / "home" / ".ssh"
    assert (home / "id_deployer").read_text() == "private\n"
    assert (home / "config").read_text() == f"IdentityFile {home / 'id_deployer'}\n"
    assert (tmp_path / "work" / ".deployer" / "known_hosts").exists()


@pytest.mark.parametrize("missing", ["DEPLOYER_KNOWN_HOSTS", "DEPLOYER_SSH_KEY"])
def test_an_empty_secret_stops_the_job_naming_it(tmp_path: Path, missing: str) -> None:
    project = _project(GOLDEN / "shop")
    envs, _ = ci.deployables(project)
    env = {
        **_sandbox(tmp_path),
        "DEPLOYER_ENVIRONMENT": "staging",
        "DEPLOYER_SSH_KEY": "private",
        "DEPLOYER_KNOWN_HOSTS": "lines",
        missing: "",  # what GitHub hands a step for a secret nobody set
    }
    done = _run(ci.credentials_script(project, envs), tmp_path / "work", env)
    assert done.returncode == 2
    assert f"the CI secret {missing} is not set" in done.stderr
    assert not (tmp_path / "work" / ".deployer" / "known_hosts").exists()


def test_the_deploy_step_checks_the_environments_secrets_then_deploys_with_json(
    tmp_path: Path,
) -> None:
    envs, _ = ci.deployables(_project(GOLDEN / "blog"))
    script = ci.deploy_script(envs)
    base = {**_sandbox(tmp_path), "DEPLOYER_ENVIRONMENT": "production"}
    secrets = {"BLOG_API_TOKEN": "t", "BLOG_TLS_KEY": "k", "BLOG_SLACK_WEBHOOK": "w"}
    short = _run(script, tmp_path / "work", {**base, **secrets, "BLOG_TLS_KEY": ""})
    assert short.returncode == 2
    assert "the CI secret BLOG_TLS_KEY is not set" in short.stderr
    assert not (tmp_path / "calls").exists()  # deployer never ran
    done = _run(script, tmp_path / "work", {**base, **secrets})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "calls").read_text() == (
        "deploy production --version 0123456789abcdef0123456789abcdef01234567 --json\n"
    )
    result = json.loads((tmp_path / "work" / ci.RESULT).read_text())
    assert result["deployment_id"] == 7
    # the swarm environment needs the service's secret, not production's TLS key or webhook
    swarm = {**base, "DEPLOYER_ENVIRONMENT": "swarm", "BLOG_API_TOKEN": "t"}
    assert _run(script, tmp_path / "work", swarm).returncode == 0


def test_an_environment_the_pipeline_does_not_deploy_is_refused(tmp_path: Path) -> None:
    envs, _ = ci.deployables(_project(GOLDEN / "shop"))
    env = {**_sandbox(tmp_path), "DEPLOYER_ENVIRONMENT": "lab"}
    done = _run(ci.deploy_script(envs), tmp_path / "work", env)
    assert done.returncode == 2
    assert "deploys none of the environments named 'lab'" in done.stderr


# --- the job summary -------------------------------------------------------------------------


def _result() -> DeployResult:
    return DeployResult(
        deployment_id=12,
        environment="staging",
        version="0123456789ab",
        artifact_sha256="0" * 64,
        status=Status.ROLLED_BACK,
        exit_code=ExitCode.DEPLOY_FAILED,
        stage="switch",
        reason="health check failed on staging-api2",
        noop=False,
        batches=(("staging-api1",), ("staging-api2",)),
        hosts=(
            HostReport("staging-api1", HostStatus.ROLLED_BACK, "rollback", "v1", "v1"),
            HostReport("staging-api2", HostStatus.FAILED, "switch", "v1", "v2", "502 | <b>x</b>"),
        ),
        deploy_seconds=4.25,
        rollback_seconds=1.5,
        hooks=(HookResult(name="before_switch", host="staging-api1", ok=True, exit_code=0),),
    )


def test_the_summary_is_written_from_deploys_json(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    path.write_text(json.dumps(jsonable(_result())))
    step = _steps(_github())["Summary"]["run"]
    head, _, rest = step.partition("\n")
    assert head == (
        "python3 - .deployer/deploy-result.json <<'SUMMARY' | tee -a \"$GITHUB_STEP_SUMMARY\""
    )
    code = rest.rsplit("SUMMARY\n", 1)[0]
    done = subprocess.run(
        [sys.executable, "-", str(path)], input=code, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "### deployer deploy staging 0123456789ab: ROLLED_BACK\n"
        "\n"
        "deployment #12 in 4.2 s, rollback 1.5 s, exit 1\n"
        "\n"
        "reason (switch): health check failed on staging-api2\n"
        "\n"
        "| host | result | stage | before | after | message |\n"
        "|---|---|---|---|---|---|\n"
        "| staging-api1 | rolled_back | rollback | v1 | v1 | - |\n"
        "| staging-api2 | failed | switch | v1 | v2 | 502 \\| &lt;b&gt;x&lt;/b&gt; |\n"
        "\n"
        "hook before_switch on staging-api1: ok\n"
    )


def test_the_summary_of_a_refused_deploy_names_its_problems() -> None:
    error = {"error": "deploy.yml: invalid configuration", "details": ["a.b: bad"], "exit_code": 2}
    assert ci_summary.summary(error) == (
        "### deployer deploy: error (exit 2)\n\ndeploy.yml: invalid configuration\n\n- a.b: bad\n"
    )
    assert "no result" in ci_summary.summary([])


def test_the_summary_without_a_result_file_says_so(tmp_path: Path, capsys: Any) -> None:
    ci_summary.main(str(tmp_path / "missing.json"))
    assert capsys.readouterr().out.startswith("### deployer deploy\n\nno result: ")


# --- refusals --------------------------------------------------------------------------------


def _with(case: str, **change: Any) -> Project:
    data = yaml.safe_load((GOLDEN / case / "deploy.yml").read_text())
    for path, value in change.items():
        node = data
        *parents, last = path.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = copy.deepcopy(value)
    return Project.model_validate(data)


REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "no install": ({"ci__install": None}, "ci.install: required by `deployer generate ci`"),
    "a branch to no environment": (
        {"ci__branches": {"main": "stagin"}},
        "ci.branches.main: 'stagin' is not an environment",
    ),
    "a branch to the lab": (
        {"ci__branches": {"main": "lab"}},
        "ci.branches.main: environment lab cannot be deployed from CI (it uses the local lab)",
    ),
    "a provider's own secret name": (
        {"ci__ssh_key": "GITHUB_DEPLOY_KEY"},
        "ci.ssh_key: GITHUB_DEPLOY_KEY cannot be a github secret",
    ),
    "one secret for two things": (
        {"ci__known_hosts": "DEPLOYER_SSH_KEY"},
        "ci: ci.ssh_key, ci.known_hosts must name different secrets",
    ),
    "a vault password without a vault file": (
        {"ci__vault_password": "PASS"},
        "ci.vault_password: used only with secrets.vault_password_file",
    ),
    "nothing a runner can reach": (
        {"environments": {"lab": {"hosts": {"edge": "lab[0]", "backend": "lab"}}},
         "ci__branches": {}},
        "environments: none can be deployed from CI (lab: it uses the local lab)",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(REFUSED), ids=sorted(REFUSED))
def test_a_pipeline_that_cannot_be_written_as_configured_is_refused(case: str) -> None:
    change, expected = REFUSED[case]
    project = _with("shop", **change)
    with pytest.raises(ConfigError) as raised:
        ci.pipeline(project, "github")
    assert any(p.startswith(expected) for p in raised.value.problems), raised.value.problems


def test_a_secret_named_like_the_ssh_key_is_refused() -> None:
    data = yaml.safe_load((GOLDEN / "blog" / "deploy.yml").read_text())
    data["secrets"]["env"]["API_TOKEN"] = {"from_env": "BLOG_SSH_KEY"}
    with pytest.raises(ConfigError) as raised:
        ci.pipeline(Project.model_validate(data), "gitlab")
    assert (
        "ci.ssh_key: BLOG_SSH_KEY is also the secret of secrets.env.API_TOKEN.from_env; give "
        "another name"
    ) in raised.value.problems


def test_gitlab_refuses_its_own_variable_names() -> None:
    data = yaml.safe_load((GOLDEN / "blog" / "deploy.yml").read_text())
    data["secrets"]["env"]["API_TOKEN"] = {"from_env": "CI_JOB_TOKEN"}
    with pytest.raises(ConfigError) as raised:
        ci.pipeline(Project.model_validate(data), "gitlab")
    assert any(
        p.startswith("secrets.env.API_TOKEN.from_env: CI_JOB_TOKEN cannot be a gitlab secret")
        for p in raised.value.problems
    )


def test_an_unknown_provider_is_refused() -> None:
    with pytest.raises(BadRequest, match=r"--provider: 'jenkins' is not a CI provider"):
        ci.pipeline(_project(GOLDEN / "shop"), "jenkins")


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("branches", {"feature/*": "staging"}, "ci.branches.feature/*: 'feature/*' is not a"),
        ("branches", {"a..b": "staging"}, "ci.branches.a..b: 'a..b' is not a branch name"),
        ("directory", "../elsewhere", "ci.directory"),
        ("install", "--index-url=https://x", "ci.install"),
        ("python", "2.7", "ci.python"),
        ("ssh_key", "NOT-A-NAME", "ci.ssh_key"),
    ],
)
def test_the_ci_section_is_validated_with_its_path(
    tmp_path: Path, key: str, value: Any, expected: str
) -> None:
    data = yaml.safe_load((GOLDEN / "shop" / "deploy.yml").read_text())
    data["ci"][key] = value
    (tmp_path / "deploy.yml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as raised:
        load_project(tmp_path / "deploy.yml")
    assert any(p.startswith(expected) for p in raised.value.problems), raised.value.problems


# --- the ledger the pipeline deploys with ---------------------------------------------------

TEAM_LEDGER = {"url": "postgresql://deployer@db.example.com/deployer"}


def test_a_postgresql_ledgers_password_is_a_ci_secret_of_the_deploy_step() -> None:
    project = _with(
        "blog",
        ledger={**TEAM_LEDGER, "password": {"from_env": "BLOG_LEDGER_PASSWORD"}},
        ci__install="deployer[postgres]==0.1.0",
    )
    generated = ci.pipeline(project, "github")
    (text,) = generated.files.values()
    steps = _steps(yaml.safe_load(text))
    assert steps["Deploy"]["env"]["BLOG_LEDGER_PASSWORD"] == "${{ secrets.BLOG_LEDGER_PASSWORD }}"
    assert "BLOG_LEDGER_PASSWORD: ledger.password.from_env" in text  # the header's list
    assert ci.SQLITE_NOTE not in generated.notes
    gitlab = ci.pipeline(project, "gitlab").files[ci.OUTPUT["gitlab"]]
    assert "BLOG_LEDGER_PASSWORD" in gitlab


@pytest.mark.parametrize(
    ("install", "refused"),
    [
        ("deployer==0.1.0", True),
        ("deployer[test] @ git+https://git.example.com/ops/deployer.git@v0.1.0", True),
        ("deployer[postgres]==0.1.0", False),
        ("Deployer[test, postgres] @ git+https://git.example.com/ops/deployer.git", False),
        ("./vendor/deployer-0.1.0.tar.gz", False),  # not by its name: not judged
    ],
)
def test_a_postgresql_ledger_needs_the_postgres_extra_installed(
    install: str, refused: bool
) -> None:
    project = _with("blog", ledger=TEAM_LEDGER, ci__install=install)
    if not refused:
        assert ci.pipeline(project, "github").files
        return
    with pytest.raises(ConfigError) as raised:
        ci.pipeline(project, "github")
    assert any(
        p.startswith("ci.install: the ledger is a PostgreSQL") for p in raised.value.problems
    )


def test_a_sqlite_ledger_is_noted_as_kept_by_no_run() -> None:
    assert ci.SQLITE_NOTE in ci.pipeline(_project(GOLDEN / "blog"), "github").notes
