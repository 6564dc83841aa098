"""The `ci` section: how `deployer generate ci` writes the pipeline that deploys the app.

The pipeline installs deployer, validates deploy.yml, builds what the target needs and
deploys, on a push to one of `branches` and by hand for any environment it can reach. Its
secrets are CI secrets named here and by the config's own references (`{from_env: VAR}`
becomes the CI secret VAR); none of their values is ever written into the pipeline.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, field_validator

from deployer.config.base import Section
from deployer.config.names import EnvVarName, Name, SingleLine

_BRANCH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/-]{0,199}")
_PART = re.compile(r"[A-Za-z0-9._@+-]+")


def _branch(value: str) -> str:
    """A branch name as git takes it, without the characters CI systems read as patterns
    or quotes (`*`, `?`, `[`, `!`, `'`, `"`, spaces)."""
    if not _BRANCH.fullmatch(value) or ".." in value or "//" in value:
        raise ValueError(
            f"{value!r} is not a branch name deployer writes into a pipeline (letters, "
            "digits, '.', '_', '/', '-'; no '..', no patterns)"
        )
    if value.endswith(("/", ".", ".lock")):
        raise ValueError(f"{value!r} is not a valid git branch name")
    return value


Branch = Annotated[str, AfterValidator(_branch)]


class Ci(Section):
    """The pipeline `deployer generate ci` writes (GitHub Actions or GitLab CI)."""

    install: SingleLine | None = Field(
        default=None,
        description="What the pipeline installs deployer from: a pip requirement, for "
        "example `deployer @ git+https://git.example.com/ops/deployer.git@v0.1.0`. Required "
        "by `deployer generate ci`.",
    )
    python: str = Field(
        default="3.11",
        pattern=r"^3\.[0-9]{1,2}$",
        description="The Python version the pipeline runs deployer with.",
    )
    directory: str = Field(
        default=".",
        description="deploy.yml's directory, relative to the repository root: where the "
        "pipeline runs deployer.",
    )
    branches: dict[Branch, Name] = Field(
        default_factory=dict,
        description="Branches whose pushes deploy, each to one environment (`{main: "
        "staging}`). Every environment the pipeline can reach may also be deployed by hand.",
    )
    ssh_key: EnvVarName = Field(
        default="DEPLOYER_SSH_KEY",
        description="The CI secret holding the SSH private key, written to the environment's "
        "ssh.private_key (or given to ssh when that is not set).",
    )
    known_hosts: EnvVarName = Field(
        default="DEPLOYER_KNOWN_HOSTS",
        description="The CI secret holding the hosts' known_hosts lines, written to the "
        "environment's ssh.known_hosts: host keys are checked in CI too.",
    )
    vault_password: EnvVarName = Field(
        default="DEPLOYER_VAULT_PASSWORD",
        description="The CI secret written to secrets.vault_password_file (with "
        "secrets.vault_password_env, the secret is that variable).",
    )

    @field_validator("install")
    @classmethod
    def _a_requirement(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or value.lstrip().startswith("-")):
            raise ValueError(f"{value!r} is not a pip requirement (options are not taken here)")
        return value

    @field_validator("directory")
    @classmethod
    def _relative(cls, value: str) -> str:
        parts = value.split("/")
        if value != "." and not all(part not in ("", ".", "..") and _PART.fullmatch(part)
                                    for part in parts):  # fmt: skip
            raise ValueError(
                f"{value!r} is not a directory inside the repository ('.' or a relative path "
                "of letters, digits, '.', '_', '@', '+', '-')"
            )
        return value
