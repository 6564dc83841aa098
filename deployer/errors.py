"""Errors that end a command with a specific exit code and a message for the user."""

from __future__ import annotations

from collections.abc import Sequence

from deployer.exitcodes import ExitCode


class DeployerError(Exception):
    """An error the CLI renders as-is and turns into its exit code."""

    exit_code: ExitCode = ExitCode.DEPLOY_FAILED

    def __init__(self, message: str, *, details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details = tuple(details)


class ConfigError(DeployerError):
    """Bad input: names the config path of each problem. Raised before any host is touched."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, problems: Sequence[str], *, source: str = "") -> None:
        head = f"{source}: invalid configuration" if source else "invalid configuration"
        super().__init__(head, details=problems)
        self.problems = tuple(problems)


class BadRequest(DeployerError):
    """A request that cannot be carried out as asked (bad flag, unknown version...)."""

    exit_code = ExitCode.BAD_INPUT


class LockedError(DeployerError):
    exit_code = ExitCode.LOCKED


class UnreachableError(DeployerError):
    exit_code = ExitCode.UNREACHABLE
