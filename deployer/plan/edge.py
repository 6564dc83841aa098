"""The edge proxy of an environment, planned from its resolved settings.

The proxy (nginx, `deployer.core.proxy`) runs on the hosts `proxy.component` names and
balances over every instance of the app on every host, at the hosts' private addresses.
The files are rendered here, on the controller (`plan.proxy`); the playbooks only copy
finished text.
During a rollout the hosts of a batch (and, in a rollback, the hosts going back) are
drained from every proxy before they restart and put back once they are healthy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from deployer.config.bluegreen import CANARY, SLOTS, SLOTTED, keep_warm, slot_ports
from deployer.config.canary import steps as canary_steps
from deployer.config.canary import weights
from deployer.config.resolve import Target
from deployer.plan.proxy import (
    Backend,
    ProxySite,
    Route,
    Tls,
    Upstream,
    render_maintenance,
    render_site,
    render_upstreams,
)
from deployer.plan.proxy import site_paths as _site_paths

UPSTREAM = "app"
"""The one upstream of a one-service app: every host's instance."""
ACME_WEBROOT = "/var/lib/deployer/acme"
"""Where certbot writes ACME challenges and nginx serves them from (every site's)."""
LETSENCRYPT_LIVE = "/etc/letsencrypt/live"


def cert_name(target: Target) -> str:
    """certbot's name for the site's certificate (its directory under live/)."""
    return f"deployer-{target.app.name}-{target.environment}"


def tls_paths(target: Target) -> Tls:
    """Where the proxy hosts keep the certificate chain and key: certbot's live directory
    with ACME, else root 0600 files in a 0700 directory of the site's own."""
    if target.proxy is not None and target.proxy.acme is not None:
        live = f"{LETSENCRYPT_LIVE}/{cert_name(target)}"
        return Tls(certificate=f"{live}/fullchain.pem", key=f"{live}/privkey.pem")
    upstreams = _site_paths(target.app.name, target.environment)["upstreams"]
    directory = upstreams.rsplit("/", 1)[0] + "/tls"
    return Tls(certificate=f"{directory}/fullchain.pem", key=f"{directory}/privkey.pem")


def tls_files(target: Target, values: Mapping[str, str]) -> dict[str, str]:
    """{path on the proxy hosts: PEM text} from the resolved certificate and key; these go
    to the runner as secrets (vault-encrypted), never through the extra vars."""
    if target.proxy is None or not target.proxy.tls or not values:
        return {}
    paths = tls_paths(target)
    return {paths.certificate: values["certificate"], paths.key: values["key"]}


def site(target: Target) -> ProxySite | None:
    """The proxy's site for `target`, or None when the environment has no proxy."""
    proxy = target.proxy
    if proxy is None:
        return None
    static_root = None
    if target.services:
        routes, upstreams, static_root = _service_routes(target)
    elif target.service.port is None:
        return None
    else:
        backends = tuple(
            Backend(address=h.private_address or h.address, port=port, host=h.name)
            for h in target.hosts
            for port in target.ports(h.name)
        )
        routes = (Route(prefix="/", upstream=UPSTREAM),)
        upstreams = (Upstream(name=UPSTREAM, backends=backends),)
    return ProxySite(
        app=target.app.name,
        environment=target.environment,
        server_name=proxy.server_name,
        routes=routes,
        upstreams=upstreams,
        static_root=static_root,
        tls=tls_paths(target) if proxy.https else None,
        cdn=target.features.cdn and static_root is not None,
        json_logs=target.features.logging,
        acme_webroot=ACME_WEBROOT if proxy.acme is not None else None,
        http_port=proxy.http_port,
        https_port=proxy.https_port,
    )


def _service_routes(
    target: Target,
) -> tuple[tuple[Route, ...], tuple[Upstream, ...], str | None]:
    """An app of several services: each web service with a route is an upstream of its
    instances on every host that runs it; a static service's files are served from the
    current release on the proxy hosts (which are its own)."""
    hosts = {h.name: h for h in target.hosts}
    routes, upstreams, static_root = [], [], None
    for service in target.services:
        if service.kind == "static":
            static_root = f"{target.deploy_to}/current/{service.directory}"
            if service.root:
                static_root += "/" + service.root.strip("/")
        elif service.kind == "web" and service.route is not None:
            backends = tuple(
                Backend(
                    address=hosts[name].private_address or hosts[name].address,
                    port=port,
                    host=name,
                )
                for name in service.hosts
                for port in service.ports(name)
            )
            upstreams.append(Upstream(name=service.name, backends=backends))
            routes.append(Route(prefix=service.route, upstream=service.name))
    return tuple(routes), tuple(upstreams), static_root


def setup_vars(target: Target) -> dict[str, Any]:
    """What the prepare run needs to set the proxy up (nothing drained), before any switch."""
    planned = site(target)
    if planned is None or target.proxy is None:
        return {}
    setup: dict[str, Any] = {"hosts": list(target.proxy.hosts), "files": render_site(planned)}
    acme = target.proxy.acme
    if acme is not None and target.proxy.server_name is not None:
        plain = replace(planned, tls=None)  # served while certbot answers the challenge
        setup["acme"] = {
            "domain": target.proxy.server_name,
            "cert_name": cert_name(target),
            "server": acme.server,
            "email": acme.email,
            "ca_bundle": acme.ca_bundle,
            "webroot": ACME_WEBROOT,
            "files": render_site(plain),
        }
    return {"deployer_proxy": setup}


def drain_vars(target: Target, hosts: Iterable[str]) -> dict[str, Any]:
    """The upstreams file with `hosts` drained, and as it is once they are back (none with
    blue_green: the new slot starts next to the live one, and the proxy flips)."""
    planned = site(target)
    if planned is None or target.proxy is None or target.strategy.kind in SLOTTED:
        return {}
    paths = _site_paths(target.app.name, target.environment)
    return {
        "deployer_proxy_drain": {
            "hosts": list(target.proxy.hosts),
            "path": paths["upstreams"],
            "drained": render_upstreams(planned, frozenset(hosts)),
            "restored": render_upstreams(planned),
        }
    }


RETIRE_MARGIN = 30
"""Seconds added to the slot left's stop, past the switch's health checks, for the restarts
and the flip."""


def bluegreen_vars(target: Target) -> dict[str, Any]:
    """`deployer_bluegreen` for a blue-green environment ({} otherwise): the slots' ports;
    `retire_after`, the seconds after a host's switch before the slot it left stops (the
    keep-warm time counted from the flip, which follows once every host passed its health
    checks: so plus the longest those may take); and the edge proxy's upstreams file as it
    is for each slot, of which the playbooks pick the hosts' live one."""
    planned = site(target)
    port = target.service.port
    if target.strategy.kind not in SLOTTED or planned is None or port is None:
        return {}
    assert target.proxy is not None
    ports = slot_ports(port)
    health = target.health
    timeout = max(
        (c.timeout for c in (health.http, health.tcp, health.command) if c is not None),
        default=0,
    )
    checks = health.retries * (health.interval + timeout)
    upstreams = {
        slot: render_upstreams(
            replace(
                planned,
                upstreams=tuple(
                    replace(u, backends=tuple(replace(b, port=slot_port) for b in u.backends))
                    for u in planned.upstreams
                ),
            )
        )
        for slot, slot_port in ports.items()
    }
    return {
        "deployer_bluegreen": {
            "ports": dict(ports),
            "slots": {**ports, "retire_after": keep_warm(target.strategy) + checks + RETIRE_MARGIN},
            "proxy": {
                "hosts": list(target.proxy.hosts),
                "path": _site_paths(target.app.name, target.environment)["upstreams"],
                "upstreams": upstreams,
            },
        }
    }


def upstreams_path(target: Target) -> str:
    """The edge proxy's upstreams file on the proxy hosts."""
    return _site_paths(target.app.name, target.environment)["upstreams"]


def weighted_upstreams(target: Target, live: str, share: int) -> str:
    """The edge proxy's upstreams file with `share` % of requests to the slot that is not
    `live` on every host, the rest to the live one (nginx's weighted round robin; a slot of
    weight 0 is left out). Both slots run on every host, so the share is exact whatever the
    number of hosts."""
    planned = site(target)
    port = target.service.port
    if planned is None or port is None:
        raise ValueError(f"environment {target.environment} has no edge proxy to weight")
    if live not in SLOTS:
        raise ValueError(f"{live!r} is not a slot ({', '.join(SLOTS)})")
    ports = slot_ports(port)
    new = next(s for s in SLOTS if s != live)
    stable, canary = weights(share)
    upstreams = []
    for upstream in planned.upstreams:
        backends = []
        for slot, weight in ((live, stable), (new, canary)):
            if weight:
                backends += [replace(b, port=ports[slot], weight=weight) for b in upstream.backends]
        upstreams.append(replace(upstream, backends=tuple(backends)))
    return render_upstreams(replace(planned, upstreams=tuple(upstreams)))


def canary_vars(target: Target) -> dict[str, Any]:
    """`deployer_canary` for a canary environment ({} otherwise): the edge proxy's
    upstreams file at each step short of 100 % (the flip is blue-green's, `bluegreen_vars`),
    rendered for either live slot; the playbooks pick the hosts' live one and the step's
    share, so what hosts report only selects among the controller's texts."""
    planned = site(target)
    if target.strategy.kind != CANARY or planned is None or target.proxy is None:
        return {}
    shares = [s for s in canary_steps(target.strategy) if s < 100]
    return {
        "deployer_canary": {
            "proxy": {
                "hosts": list(target.proxy.hosts),
                "path": _site_paths(target.app.name, target.environment)["upstreams"],
                "upstreams": {
                    live: {str(share): weighted_upstreams(target, live, share) for share in shares}
                    for live in SLOTS
                },
            }
        }
    }


def certificate_vars(target: Target) -> dict[str, Any]:
    """Where the proxy hosts read the certificate whose expiry `status` reports."""
    if target.proxy is None or not target.proxy.https:
        return {}
    return {
        "deployer_certificate": {
            "hosts": list(target.proxy.hosts),
            "path": tls_paths(target).certificate,
        }
    }


def maintenance_vars(
    target: Target, *, on: bool, retry_after: int = 300, message: str = ""
) -> dict[str, Any]:
    """`deployer_maintenance` {hosts, path, text}: the site's maintenance file on every proxy
    host (see render_maintenance)."""
    assert target.proxy is not None
    paths = _site_paths(target.app.name, target.environment)
    text = render_maintenance(
        target.app.name, target.environment, on=on, retry_after=retry_after, message=message
    )
    return {
        "deployer_maintenance": {
            "hosts": list(target.proxy.hosts),
            "path": paths["maintenance"],
            "text": text,
        }
    }
