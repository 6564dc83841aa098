# Copyright: deployer contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""nginx on the proxy host: write configuration files, check them as a whole, reload and
wait until the old workers take no new request; put everything back on failure.

Shared by deployer_proxy (the site, its TLS files, ACME) and deployer_upstreams (drains).
"""

from __future__ import annotations

import os
import re
import time

from ansible_collections.deployer.core.plugins.module_utils.layout import (
    read_bytes,
    remove_path,
    write_atomic,
)

WORKER = "nginx: worker process"
_PATH = re.compile(r"^/etc/nginx/[A-Za-z0-9._@+-][A-Za-z0-9._/@+-]*$")


class NginxError(Exception):
    pass


def bad_path(path):
    """Why `path` may not be written by deployer, or None."""
    if not _PATH.match(path) or "/../" in path or "/./" in path or path.endswith("/."):
        return "%s: not a path under /etc/nginx/" % path
    return None


class Nginx(object):
    """Files written through one object are remembered (their previous content), so that
    `restore` puts back everything this run changed."""

    def __init__(self, module):
        self.module = module
        self.backups = {}  # path -> (previous bytes or None, mode)
        self._nginx = self._systemctl = None

    @property
    def nginx(self):
        if self._nginx is None:
            self._nginx = self.module.get_bin_path("nginx", required=True)
        return self._nginx

    @property
    def systemctl(self):
        if self._systemctl is None:
            self._systemctl = self.module.get_bin_path("systemctl", required=True)
        return self._systemctl

    def write(self, path, text, mode=0o644):
        """Write `text` to `path` (root) when it differs; True when it was written."""
        data = text.encode("utf-8")
        data = data if data.endswith(b"\n") else data + b"\n"
        before = read_bytes(path)
        if before == data and (os.stat(path).st_mode & 0o777) == mode:
            return False
        if self.module.check_mode:
            return True
        self.backups.setdefault(path, (before, mode))
        write_atomic(path, data, mode, 0, 0)
        return True

    def restore(self):
        """Put back what this object wrote (remove what it added) and reload what is back,
        when nginx runs and that configuration passes its check."""
        for path, (before, mode) in self.backups.items():
            if before is None:
                remove_path(path)
            else:
                write_atomic(path, before, mode, 0, 0)
        self.backups = {}
        rc, _out, _err = self.module.run_command([self.nginx, "-t", "-q"])
        if rc == 0 and self.active():
            self.module.run_command([self.systemctl, "reload", "nginx"])

    def test(self, what):
        rc, out, err = self.module.run_command([self.nginx, "-t", "-q"])
        if rc != 0:
            raise NginxError("nginx refused the configuration with %s: %s"
                             % (what, (err or out).strip()))

    def active(self):
        rc, _out, _err = self.module.run_command([self.systemctl, "-q", "is-active", "nginx"])
        return rc == 0

    def serving_workers(self):
        """PIDs of nginx's worker processes that still take requests."""
        rc, out, _err = self.module.run_command(
            [self.systemctl, "show", "-P", "MainPID", "nginx"])
        master = out.strip() if rc == 0 else ""
        if not master.isdigit() or master == "0":
            return set()
        pids = set()
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % name) as handle:
                    parent = handle.read().rsplit(")", 1)[1].split()[1]
                with open("/proc/%s/cmdline" % name, "rb") as handle:
                    title = handle.read().replace(b"\0", b"").decode("utf-8", "replace")
            except (OSError, IndexError):
                continue
            if parent == master and title == WORKER:
                pids.add(name)
        return pids

    def serve(self, timeout):
        """Have nginx serve with the files as they are now, enabled at boot: started when it
        is not running, else reloaded, waiting until the old workers have stopped taking
        requests (nginx reloads asynchronously; `systemctl reload` returns at once).
        Returns the seconds waited."""
        rc, _out, _err = self.module.run_command([self.systemctl, "-q", "is-enabled", "nginx"])
        if rc != 0:
            self.module.run_command([self.systemctl, "enable", "nginx"])
        if not self.active():
            rc, out, err = self.module.run_command([self.systemctl, "start", "nginx"])
            if rc != 0:
                raise NginxError("systemctl start nginx failed: %s" % (err or out).strip())
            return 0.0
        old = self.serving_workers()
        rc, out, err = self.module.run_command([self.systemctl, "reload", "nginx"])
        if rc != 0:
            raise NginxError("systemctl reload nginx failed: %s" % (err or out).strip())
        started = time.time()
        while old & self.serving_workers():
            if time.time() - started > timeout:
                raise NginxError("nginx did not take up its new configuration within %g s"
                                 % timeout)
            time.sleep(0.05)
        return round(time.time() - started, 3)
