"""Process exit codes: the contract between deployer and the scripts that call it."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    DEPLOY_FAILED = 1  # the deployment failed (and was rolled back where possible)
    BAD_INPUT = 2  # bad config, flags or request; nothing was touched
    LOCKED = 3  # another deployment holds the environment's lock
    UNREACHABLE = 4  # hosts unreachable in preflight; nothing was changed
