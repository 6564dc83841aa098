"""The scenario's before_switch hook: records what it ran with in the shared directory
(as the service user), and prints its credentials (which the module must mask)."""

import hashlib
import os
from pathlib import Path

env = os.environ


def sha(name: str) -> str:
    return hashlib.sha256(env[name].encode()).hexdigest()


Path(env["SHARED_DIR"], "migrated").write_text(
    f"uid={os.getuid()}\n"
    f"gid={os.getgid()}\n"
    f"cwd={os.getcwd()}\n"
    f"home={env.get('HOME')}\n"
    f"greeting={env.get('GREETING')}\n"
    f"target={env.get('MIGRATION_TARGET')}\n"
    f"database_url_set={'DATABASE_URL' in env}\n"
    # what the hook got, to compare with what systemd hands a unit from the same file
    f"url_sha256={sha('DATABASE_URL')}\n"
    f"options_sha256={sha('DATABASE_OPTIONS')}\n"
)
print(f"migrating {env['MIGRATION_TARGET']} with {env['DATABASE_URL']}")
print(f"api token {env['API_TOKEN']}")
print("done")
