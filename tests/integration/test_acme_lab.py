"""HTTPS with a certificate from a real ACME CA on lab hosts: pebble (Debian's package) on
the edge host, `tls.acme` in deploy.yml. The deploy serves the plain HTTP site, certbot
answers pebble's real http-01 challenge through nginx, then HTTPS serves with the issued
certificate; the next deploy leaves it alone, certbot's timer trusts pebble's CA for
renewals and its hook reloads nginx onto the renewed certificate, and `status` reports the
certificate's expiry."""

from __future__ import annotations

import json
import socket
import ssl
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import Project

pytestmark = pytest.mark.integration

PEBBLE_CA = "/etc/pebble/ca.pem"
# pebble with its own CA and API certificate, on 127.0.0.1:14000 (ACME) and :15000 (its
# issuing root); the domain resolves to the edge host itself, so pebble's validation fetches
# the challenge from nginx there.
PEBBLE = r"""set -eu
install -d -m 0755 /etc/pebble
cd /etc/pebble
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=lab-pebble-ca \
  -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout key.pem -out api.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > api.ext
openssl x509 -req -in api.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
  -extfile api.ext -out cert.pem 2>/dev/null
cat > config.json <<'JSON'
{"pebble": {"listenAddress": "127.0.0.1:14000", "managementListenAddress": "127.0.0.1:15000",
            "certificate": "/etc/pebble/cert.pem", "privateKey": "/etc/pebble/key.pem",
            "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "",
            "externalAccountBindingRequired": false}}
JSON
grep -q ' DOMAIN$' /etc/hosts || echo '127.0.0.1 DOMAIN' >> /etc/hosts
systemd-run --unit=lab-pebble -E PEBBLE_VA_NOSLEEP=1 -E PEBBLE_WFE_NONCEREJECT=0 \
  /usr/bin/pebble -config /etc/pebble/config.json
for _ in $(seq 50); do
  curl -sf --cacert ca.pem https://127.0.0.1:14000/dir >/dev/null && exit 0
  sleep 0.2
done
echo "pebble did not start" >&2
exit 1
"""


def _root(project: Project, host: Any, tmp_path: Path) -> Path:
    """pebble's issuing root (a new one at each start), from its management API."""
    out = project.ssh(host, f"curl -sf --cacert {PEBBLE_CA} https://127.0.0.1:15000/roots/0")
    assert out.returncode == 0, out.stderr
    path = tmp_path / "pebble-root.pem"
    path.write_text(out.stdout)
    return path


def _get(address: str, domain: str, root: Path) -> tuple[str, str, int]:
    """GET / over HTTPS, verifying chain and name against `root`: (head, body, serial)."""
    context = ssl.create_default_context(cafile=str(root))
    with (
        socket.create_connection((address, 443), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=domain) as tls,
    ):
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {domain}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
        serial = int(tls.getpeercert()["serialNumber"], 16)
    head, _, body = answer.decode().partition("\r\n\r\n")
    return head, body, serial


def test_a_certificate_from_an_acme_ca_is_got_served_renewed_and_reported(
    project: Project, tmp_path: Path
) -> None:
    edge, *web = project.lab.hosts[:3]
    domain = f"{project.app}.lab.test"
    setup = project.ssh(edge, f"sudo bash -c {_quote(PEBBLE.replace('DOMAIN', domain))}")
    assert setup.returncode == 0, setup.stderr
    try:

        def entry(host: Any) -> dict[str, Any]:
            return {
                "address": host.address,
                "port": host.port,
                "name": host.name,
                "user": host.user,
                "private_address": host.ip,
            }

        project.edit(
            {
                "environments": {
                    "lab": {
                        "hosts": {"edge": [entry(edge)], "web": [entry(h) for h in web]},
                        "ssh": {
                            "private_key": str(project.lab.private_key),
                            "known_hosts": str(project.lab.known_hosts),
                        },
                        "domain": domain,
                        "proxy": {"component": "edge"},
                        "features": {"ssl": True},
                        "tls": {
                            "acme": {
                                "server": "https://127.0.0.1:14000/dir",
                                "email": "ops@lab.test",
                                "ca_bundle": PEBBLE_CA,
                            }
                        },
                    }
                }
            }
        )
        first = project.cli("deploy", "lab", "--version", "v1", "--json")
        assert first.returncode == 0, first.stderr[-3000:]
        root = _root(project, edge, tmp_path)
        head, body, serial = _get(edge.ip, domain, root)
        assert head.startswith("HTTP/1.1 200"), head
        assert body.strip() == "hello from v1"
        redirect = project.ssh(
            edge,
            f"curl -s -o /dev/null -w '%{{http_code}} %{{redirect_url}}' "
            f"-H 'Host: {domain}' http://127.0.0.1/x",
        ).stdout
        assert redirect == f"301 https://{domain}/x"

        # the next deploy finds the certificate: no new one
        second = project.cli("deploy", "lab", "--version", "v2", "--json")
        assert second.returncode == 0, second.stderr[-3000:]
        head, body, again = _get(edge.ip, domain, root)
        assert (body.strip(), again) == ("hello from v2", serial)

        # status reports its expiry (pebble issues for about five years)
        status = project.cli("status", "lab", "--json")
        assert status.returncode == 0, status.stdout + status.stderr
        (cert,) = json.loads(status.stdout)["certificates"]
        assert cert["host"] == edge.name
        assert cert["error"] == ""
        assert cert["days_left"] > 300, cert
        assert "Pebble" in cert["issuer"], cert
        text = project.cli("status", "lab")
        assert f"certificate on {edge.name}: valid until {cert['not_after']}" in text.stdout

        # renewals: certbot's timer trusts pebble (the drop-in), its hook reloads nginx
        name = f"deployer-{project.app}-lab"
        env = project.ssh(edge, "systemctl show -P Environment certbot.service").stdout.strip()
        assert env == f"REQUESTS_CA_BUNDLE={PEBBLE_CA}"
        assert project.ssh(edge, "systemctl is-enabled certbot.timer").stdout.strip() == "enabled"
        renew = project.ssh(
            edge,
            f"sudo env {env} certbot renew --cert-name {name} --force-renewal "
            "--non-interactive --no-random-sleep-on-renew",
        )
        assert renew.returncode == 0, renew.stderr
        for _ in range(50):  # the hook's reload swaps nginx's workers shortly after
            _head, _body, renewed = _get(edge.ip, domain, root)
            if renewed != serial:
                break
            time.sleep(0.1)
        assert renewed != serial
    finally:
        project.ssh(
            edge,
            f"sudo systemctl stop lab-pebble; sudo sed -i '/ {domain}$/d' /etc/hosts; "
            f"sudo certbot delete --non-interactive --cert-name deployer-{project.app}-lab; true",
        )


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)
