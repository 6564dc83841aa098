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
from typing import Any

from deployer.config.resolve import Target
from deployer.plan.proxy import (
    Backend,
    ProxySite,
    Route,
    Tls,
    Upstream,
    render_site,
    render_upstreams,
)
from deployer.plan.proxy import site_paths as _site_paths

UPSTREAM = "app"
"""The one upstream of a one-service app: every host's instance."""


def tls_paths(target: Target) -> Tls:
    """Where the proxy hosts keep the certificate chain and key (root, 0600, in a 0700
    directory of the site's own)."""
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
    if proxy is None or target.service.port is None:
        return None
    backends = tuple(
        Backend(address=h.private_address or h.address, port=port, host=h.name)
        for h in target.hosts
        for port in target.ports(h.name)
    )
    return ProxySite(
        app=target.app.name,
        environment=target.environment,
        server_name=proxy.server_name,
        routes=(Route(prefix="/", upstream=UPSTREAM),),
        upstreams=(Upstream(name=UPSTREAM, backends=backends),),
        static_root=None,
        tls=tls_paths(target) if proxy.tls else None,
        cdn=False,
        json_logs=target.features.logging,
        acme_webroot=None,
        http_port=proxy.http_port,
        https_port=proxy.https_port,
    )


def setup_vars(target: Target) -> dict[str, Any]:
    """What the prepare run needs to set the proxy up (nothing drained), before any switch."""
    planned = site(target)
    if planned is None or target.proxy is None:
        return {}
    return {"deployer_proxy": {"hosts": list(target.proxy.hosts), "files": render_site(planned)}}


def drain_vars(target: Target, hosts: Iterable[str]) -> dict[str, Any]:
    """The upstreams file with `hosts` drained, and as it is once they are back."""
    planned = site(target)
    if planned is None or target.proxy is None:
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
