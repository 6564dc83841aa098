#!/usr/bin/python
# Copyright: deployer contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Set up an nginx site (files, TLS files, an ACME certificate) and serve it, in one step."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deployer_proxy
short_description: Write an edge proxy's nginx files, get its ACME certificate when needed, and serve them in one step
version_added: "0.3.0"
description:
  - Leaves Debian's default site out of C(sites-enabled) (it would hold port 80), creates
    the directories of O(files) (root, 0755) and of O(tls_files) (root, 0700), and writes
    each file that differs (configuration root 0644, TLS files root 0600, atomically).
  - With O(acme), when C(/etc/letsencrypt/live/<cert_name>/fullchain.pem) is missing or
    does not cover O(acme.domain), first serves the site over plain HTTP (O(acme.files),
    which answer ACME challenges from O(acme.webroot)), then runs C(certbot certonly
    --webroot) against O(acme.server) (argv, never a shell) with a deploy hook that reloads
    nginx, so certbot's own timer renews the certificate and nginx takes it up. With
    O(acme.ca_bundle) certbot trusts that bundle for the CA's HTTPS, now and in its
    timer's renewals (a drop-in of C(certbot.service)).
  - Then checks the whole configuration with C(nginx -t), keeps nginx enabled, and starts
    it or reloads it and waits until its old workers take no new request, so the new
    configuration serves when the task returns.
  - On any failure every file this run wrote is put back (or removed when it was new), nginx
    reloads what is back when it runs and passes its check, and the task fails with the
    original message and C(deployer.stage) C(proxy).
  - A converged run changes nothing (no reload, no certbot). One remote step.
options:
  files:
    description: nginx configuration files, C(path -> text), under C(/etc/nginx/); at least one.
    type: dict
    required: true
  tls_files:
    description: TLS keys and certificates, C(path -> PEM text), under C(/etc/nginx/); never logged.
    type: dict
    default: {}
  acme:
    description: Get the certificate from an ACME CA first (see above).
    type: dict
    suboptions:
      domain:
        description: The name the certificate is for.
        type: str
        required: true
      cert_name:
        description: certbot's name for the certificate (C(/etc/letsencrypt/live/<cert_name>/)).
        type: str
        required: true
      server:
        description: The CA's ACME directory URL.
        type: str
        required: true
      email:
        description: Contact address registered with the CA; without it none is registered.
        type: str
      ca_bundle:
        description: PEM bundle that signs the CA's own HTTPS (a private ACME server).
        type: path
      webroot:
        description: Directory nginx serves C(/.well-known/acme-challenge/) from (created 0755).
        type: path
        required: true
      files:
        description: The plain HTTP configuration, C(path -> text), served while the certificate is got.
        type: dict
        required: true
  timeout:
    description: Seconds to wait for nginx's old workers after a reload.
    type: float
    default: 10
author:
  - deployer contributors
notes:
  - Supports check mode (reports what would change; never runs certbot).
"""

EXAMPLES = r"""
- name: Set up the site and get its certificate from Let's Encrypt
  deployer.core.deployer_proxy:
    files: "{{ site_files }}"
    acme:
      domain: shop.example.com
      cert_name: deployer-shop-production
      server: https://acme-v02.api.letsencrypt.org/directory
      webroot: /var/lib/deployer/acme
      files: "{{ plain_http_files }}"
"""

RETURN = r"""
deployer:
  description: What was done.
  returned: always
  type: dict
  contains:
    written:
      description: Paths of the configuration files written (TLS files are not named).
      type: list
    reloaded:
      description: nginx started or reloaded with the new files.
      type: bool
    certificate:
      description: With O(acme), C(issued) (certbot ran) and C(path) (the live chain).
      type: dict
    stage:
      description: C(proxy), on failure.
      type: str
      returned: on failure
"""

import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.deployer.core.plugins.module_utils.layout import (
    ensure_dir,
    remove_path,
    write_atomic,
    read_bytes,
)
from ansible_collections.deployer.core.plugins.module_utils.nginx import (
    Nginx,
    NginxError,
    bad_path,
)

PROXY = "proxy"
DEFAULT_SITE = "/etc/nginx/sites-enabled/default"
LIVE = "/etc/letsencrypt/live"
CERTBOT_DROPIN = "/etc/systemd/system/certbot.service.d/deployer-ca-bundle.conf"
RELOAD_HOOK = "systemctl reload nginx"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$")
_SERVER = re.compile(r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$")
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
_ABS = re.compile(r"^/[A-Za-z0-9._/@+-]*$")

MODULE_SPEC = dict(
    argument_spec=dict(
        files=dict(type="dict", required=True),
        tls_files=dict(type="dict", default={}, no_log=True),
        acme=dict(type="dict", options=dict(
            domain=dict(type="str", required=True),
            cert_name=dict(type="str", required=True),
            server=dict(type="str", required=True),
            email=dict(type="str"),
            ca_bundle=dict(type="path"),
            webroot=dict(type="path", required=True),
            files=dict(type="dict", required=True),
        )),
        timeout=dict(type="float", default=10),
    ),
    supports_check_mode=True,
)


class ProxyError(Exception):
    pass


def check_params(p):
    """Refuse anything that could make certbot or nginx do more than asked: every value
    was checked by the controller already, and is checked again here."""
    if not p["files"]:
        raise ProxyError("files: give at least one configuration file")
    acme = p["acme"]
    paths = list(p["files"]) + list(p["tls_files"]) + list((acme or {}).get("files") or ())
    for path in paths:
        if bad_path(path):
            raise ProxyError(bad_path(path))
    if acme:
        for key, pattern in (("domain", _NAME), ("cert_name", _NAME), ("server", _SERVER),
                             ("email", _EMAIL), ("ca_bundle", _ABS), ("webroot", _ABS)):
            value = acme.get(key)
            if value is not None and (not pattern.match(value) or "/../" in value):
                raise ProxyError("acme.%s: %r is not a safe value" % (key, value))


def covers(module, chain, domain):
    """The live certificate exists and names `domain`."""
    if not os.path.isfile(chain):
        return False
    openssl = module.get_bin_path("openssl")
    if openssl is None:
        return True  # it exists; nothing here can tell which names it has
    rc, out, _err = module.run_command([openssl, "x509", "-noout", "-checkhost", domain,
                                        "-in", chain])
    return rc == 0 and "does match certificate" in out


def get_certificate(module, nginx, acme, timeout):
    """Serve the plain HTTP site, then have certbot get the certificate through it."""
    for path, text in acme["files"].items():
        nginx.write(path, text)
    nginx.test("the plain HTTP site for the ACME challenge")
    nginx.serve(timeout)
    ensure_dir(acme["webroot"], 0o755)
    env = {}
    if acme.get("ca_bundle"):
        if not os.path.isfile(acme["ca_bundle"]):
            raise ProxyError("acme.ca_bundle: %s is not a file on this host" % acme["ca_bundle"])
        env["REQUESTS_CA_BUNDLE"] = acme["ca_bundle"]
        dropin = ("# Managed by deployer: certbot trusts this CA bundle for the ACME server.\n"
                  "[Service]\nEnvironment=REQUESTS_CA_BUNDLE=%s\n" % acme["ca_bundle"]).encode()
        if read_bytes(CERTBOT_DROPIN) != dropin:
            ensure_dir(os.path.dirname(CERTBOT_DROPIN), 0o755)
            write_atomic(CERTBOT_DROPIN, dropin, 0o644, 0, 0)
            module.run_command(["systemctl", "daemon-reload"])
    certbot = module.get_bin_path("certbot")
    if certbot is None:
        raise ProxyError("certbot is not installed on this host (Debian's package certbot)")
    argv = [certbot, "certonly", "--non-interactive", "--agree-tos", "--webroot",
            "--webroot-path", acme["webroot"], "--cert-name", acme["cert_name"],
            "--domain", acme["domain"], "--server", acme["server"],
            "--deploy-hook", RELOAD_HOOK, "--force-renewal"]
    argv += ["--email", acme["email"]] if acme.get("email") else [
        "--register-unsafely-without-email"]
    rc, out, err = module.run_command(argv, environ_update=env)
    if rc != 0:
        lines = [ln for ln in (err or out).strip().splitlines() if ln.strip()][-6:]
        raise ProxyError("certbot could not get a certificate for %s from %s: %s"
                         % (acme["domain"], acme["server"], " | ".join(lines)))
    # Renewals come from certbot's own timer (Debian's package ships it).
    module.run_command(["systemctl", "enable", "--now", "certbot.timer"])


def main():
    module = AnsibleModule(**MODULE_SPEC)
    p = module.params
    result = dict(written=[], reloaded=False)
    nginx = Nginx(module)
    changed = False
    try:
        check_params(p)
        if os.path.lexists(DEFAULT_SITE):
            changed = True
            if not module.check_mode:
                remove_path(DEFAULT_SITE)
        dirs = sorted({os.path.dirname(f) for f in p["files"]})
        tls_dirs = sorted({os.path.dirname(f) for f in p["tls_files"]} - set(dirs))
        if not module.check_mode:
            for directory in dirs:
                ensure_dir(directory, 0o755)
            for directory in tls_dirs:
                ensure_dir(directory, 0o700)
        acme = p["acme"]
        if acme:
            chain = "%s/%s/fullchain.pem" % (LIVE, acme["cert_name"])
            result["certificate"] = dict(issued=False, path=chain)
            if not covers(module, chain, acme["domain"]):
                changed = True
                if module.check_mode:
                    module.exit_json(changed=True, deployer=result)
                get_certificate(module, nginx, acme, p["timeout"])
                result["certificate"]["issued"] = True
        for path, text in sorted(p["files"].items()):
            if nginx.write(path, text):
                result["written"].append(path)
        tls_written = [path for path, text in sorted(p["tls_files"].items())
                       if nginx.write(path, text, 0o600)]
        changed = changed or bool(result["written"] or tls_written)
        if module.check_mode:
            module.exit_json(changed=changed, deployer=result)
        if result["written"] or tls_written or result.get("certificate", {}).get("issued"):
            nginx.test("the new site")
            nginx.serve(p["timeout"])
            result["reloaded"] = True
        elif not nginx.active():
            nginx.serve(p["timeout"])
            result["reloaded"] = changed = True
    except (NginxError, ProxyError, OSError) as error:
        nginx.restore()
        module.fail_json(msg=str(error), changed=changed, deployer=dict(result, stage=PROXY))
    module.exit_json(changed=changed, deployer=result)


if __name__ == "__main__":
    main()
