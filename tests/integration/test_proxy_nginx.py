"""Every golden edge-proxy configuration passes the real `nginx -t` (Debian's nginx, in a
throwaway container of the lab image, no network): each case alone, with its drained
upstreams, and all sites of distinct names side by side (their nginx names do not clash)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from deployer.lab import ensure_image

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("docker") is None, reason="needs dockerd and the lab image"),
]

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "proxy"

# For each case: a fresh /etc/nginx with the case's files, a self-signed certificate at
# every path a site names (one pair for all), `nginx -t`; then the drained upstreams in
# place, `nginx -t` again.
SCRIPT = r"""
set -u
echo '10.9.9.9 app1.internal' >> /etc/hosts
cp -a /etc/nginx /etc/nginx.pristine
check() {
  if nginx -t -q 2>/tmp/err; then echo "$1 ok"; else echo "$1 FAILED: $(tr '\n' ' ' </tmp/err)"; fi
}
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=t -days 1 -keyout /tmp/k.pem -out /tmp/c.pem \
  2>/dev/null
cat /tmp/k.pem /tmp/c.pem > /tmp/pair.pem  # one file serves as chain and as key
certs() {
  for path in $(grep -ho 'ssl_certificate\(_key\)\? [^;]*' "$@" | cut -d' ' -f2 | sort -u); do
    mkdir -p "$(dirname "$path")" && cp /tmp/pair.pem "$path"
  done
}
for case in /golden/*/; do
  name=$(basename "$case")
  rm -rf /etc/nginx && cp -a /etc/nginx.pristine /etc/nginx
  cp -r "$case/files/etc/nginx/." /etc/nginx/
  certs "$case"/files/etc/nginx/conf.d/*.conf
  check "$name"
  if [ -e "$case/drained.conf" ]; then
    upstreams=$(find "$case/files/etc/nginx/deployer" -name upstreams.conf)
    cp "$case/drained.conf" "${upstreams#"$case/files"}"
    check "$name+drained"
  fi
done
rm -rf /etc/nginx && cp -a /etc/nginx.pristine /etc/nginx
for name in tls_cdn_acme root_route_json_logs molecule acme_tls; do
  cp -r "/golden/$name/files/etc/nginx/." /etc/nginx/
  certs "/golden/$name"/files/etc/nginx/conf.d/*.conf
done
check together
"""


def test_every_golden_configuration_passes_nginx_t() -> None:
    cases = sorted(p.parent.name for p in GOLDEN.glob("*/site.yml"))
    drained = sorted(p.parent.name for p in GOLDEN.glob("*/drained.conf"))
    run = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--network=none",
            f"--volume={GOLDEN}:/golden:ro",
            ensure_image(),
            "bash",
            "-c",
            SCRIPT,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    results = dict(line.split(" ", 1) for line in run.stdout.splitlines())
    expected = {*cases, *(f"{name}+drained" for name in drained), "together"}
    assert set(results) == expected, run.stdout
    assert all(value == "ok" for value in results.values()), run.stdout
