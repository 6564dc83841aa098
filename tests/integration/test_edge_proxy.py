"""The edge proxy on real lab hosts: nginx from Debian in front of an app that binds its own
port (`listen: port`, so each restart closes the port). Under a steady load through the
proxies, v1 -> v2 and a broken v3 rolled back automatically fail no request: each batch is
drained from every proxy before it restarts and put back after its health check."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Project

pytestmark = pytest.mark.integration

MAX_SECONDS = 240.0
RATE = 60  # requests per second, spread over the proxies


@dataclass
class Load:
    """GETs at a steady rate through every proxy; counts every answer that is not a 200."""

    proxies: list[str]
    domain: str
    path: str = "/"
    """Answered with a body whose last word is the version."""
    stop: threading.Event = field(default_factory=threading.Event)
    sent: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    threads: list[threading.Thread] = field(default_factory=list)

    def _one(self, address: str) -> None:
        conn = http.client.HTTPConnection(address, 80, timeout=5)
        try:
            conn.request("GET", self.path, headers={"Host": self.domain})
            response = conn.getresponse()
            body = response.read().decode(errors="replace")
        except (OSError, http.client.HTTPException) as exc:
            self.failures[type(exc).__name__] += 1
            return
        finally:
            conn.close()
        if response.status != 200:
            self.failures[f"http {response.status}"] += 1
        else:
            self.versions[body.strip().rsplit(" ", 1)[-1]] += 1

    def _run(self) -> None:
        started = time.monotonic()
        while not self.stop.is_set() and time.monotonic() - started < MAX_SECONDS:
            proxy = self.proxies[self.sent % len(self.proxies)]
            worker = threading.Thread(target=self._one, args=(proxy,))
            worker.start()
            self.threads.append(worker)
            self.sent += 1
            time.sleep(max(0.0, started + self.sent / RATE - time.monotonic()))

    def __enter__(self) -> Load:
        runner = threading.Thread(target=self._run, daemon=True)
        runner.start()
        self.threads.append(runner)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)


def test_requests_through_the_proxy_never_fail_during_a_deploy_or_a_rollback(
    project: Project,
) -> None:
    domain = f"{project.app}.lab.test"
    project.edit(
        {
            "service": {"listen": "port"},
            "strategy": {"kind": "rolling", "batch_size": 1, "failure_budget": 0},
            "environments": {"lab": {"hosts": {"web": "lab"}, "domain": domain}},
        }
    )
    first = project.cli("deploy", "lab", "--version", "v1", "--json")
    assert first.returncode == 0, first.stderr[-3000:]
    hosts = project.lab.hosts
    proxies = [h.ip for h in hosts[:2]]  # container addresses, reachable from here
    for host in hosts:  # nginx checked the files and serves the site on every host
        assert project.ssh(host, "systemctl is-active nginx").stdout.strip() == "active"
    with Load(proxies, domain) as load:
        time.sleep(2)
        good = project.cli("deploy", "lab", "--version", "v2", "--json")
        assert good.returncode == 0, good.stderr[-3000:]
        broken = project.cli("deploy", "lab", "--version", "v3", "--artifact", "broken", "--json")
        time.sleep(2)
    assert broken.returncode == 1, broken.stderr[-3000:]
    assert json.loads(broken.stdout)["status"] == "ROLLED_BACK"
    assert load.sent > 200
    assert sum(load.failures.values()) == 0, (load.failures, load.sent)
    assert {"v1", "v2"} <= set(load.versions), load.versions
    assert "v3" not in load.versions  # the broken release never took a request
    assert set(project.current().values()) == {"v2"}
    # every proxy has every host back in its upstreams, and logs JSON (features.logging)
    upstreams = f"/etc/nginx/deployer/{project.app}-lab/upstreams.conf"
    log = f"/var/log/nginx/deployer-{project.app}-lab.access.log"
    retried = 0
    for host in hosts:
        text = project.ssh(host, f"cat {upstreams}").stdout
        assert " down" not in text, (host.name, text)
        lines = project.ssh(host, f"sudo cat {log}").stdout.splitlines()
        entries = [json.loads(line) for line in lines if line.strip()]
        assert all(e["host"] == domain for e in entries)
        # nginx lists every instance it tried: a drained host is never tried, so no request
        # needed a second instance (retries only hide what draining must prevent)
        retried += sum(1 for e in entries if "," in e["upstream"])
    assert retried == 0, retried


def _self_signed(domain: str) -> tuple[str, str]:
    """A certificate for `domain` and its key (PEM), made here: the lab's own CA."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), pem_key


def test_https_at_the_proxy_with_a_certificate_from_the_secrets(
    project: Project, tmp_path: Path
) -> None:
    import socket
    import ssl

    domain = f"{project.app}.lab.test"
    certificate, key = _self_signed(domain)
    project.edit(
        {
            "environments": {
                "lab": {
                    "hosts": {"web": "lab"},
                    "domain": domain,
                    "features": {"ssl": True},
                    "tls": {
                        "certificate": {"from_env": "HELLO_TLS_CERT"},
                        "key": {"from_env": "HELLO_TLS_KEY"},
                    },
                }
            }
        }
    )
    env = {"HELLO_TLS_CERT": certificate, "HELLO_TLS_KEY": key}
    done = project.cli("-vvv", "deploy", "lab", "--version", "v1", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    host = project.lab.hosts[0]
    ca = tmp_path / "ca.pem"
    ca.write_text(certificate)
    context = ssl.create_default_context(cafile=str(ca))  # verifies the chain and the name
    with (
        socket.create_connection((host.ip, 443), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=domain) as tls_socket,
    ):
        request = f"GET / HTTP/1.1\r\nHost: {domain}\r\nConnection: close\r\n\r\n"
        tls_socket.sendall(request.encode())
        answer = b""
        while chunk := tls_socket.recv(65536):
            answer += chunk
    head, _, body = answer.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200"), head
    assert body.strip() == "hello from v1"
    plain = http.client.HTTPConnection(host.ip, 80, timeout=5)
    plain.request("GET", "/some/path", headers={"Host": domain})
    redirect = plain.getresponse()
    assert redirect.status == 301
    assert redirect.getheader("Location") == f"https://{domain}/some/path"
    # the key is on the proxy hosts (root, 0600) and nowhere else
    secret = next(line for line in key.splitlines() if len(line) > 40)
    for text in (done.stdout, done.stderr):
        assert secret not in text
    for path in (project.root / ".deployer").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    tls = f"/etc/nginx/deployer/{project.app}-lab/tls"
    for lab_host in project.lab.hosts:
        mode = project.ssh(lab_host, f"sudo stat -c '%a %U' {tls} {tls}/privkey.pem").stdout
        assert mode.split() == ["700", "root", "600", "root"], (lab_host.name, mode)
        leaked = project.ssh(
            lab_host, f"sudo grep -rl -- '{secret}' /tmp /var/tmp /root/.ansible /home; true"
        ).stdout
        assert leaked.strip() == "", (lab_host.name, leaked)
