"""The edge proxy planned from deploy.yml: where it runs, what it balances over, and the
upstreams each batch of a rollout (and each rollback) drains.

tests/golden/edge/<case>/ holds a deploy.yml and the files its proxy is handed. After an
intended change, regenerate and review the diff:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/plan/test_edge.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deployer.config.loader import load_project
from deployer.config.resolve import Target, resolve
from deployer.errors import ConfigError
from deployer.plan import edge, extravars

GOLDEN = Path(__file__).parents[2] / "golden" / "edge"
CASES = sorted(p.parent for p in GOLDEN.glob("*/deploy.yml"))


def _target(path: Path) -> Target:
    loaded = load_project(path)
    (env,) = loaded.project.environments
    return resolve(loaded, env)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_proxy_files(case: Path) -> None:
    target = _target(case / "deploy.yml")
    setup = edge.setup_vars(target)["deployer_proxy"]
    drain = edge.drain_vars(target, ["web1"])["deployer_proxy_drain"]
    files = {
        **{Path(path).name: text for path, text in setup["files"].items()},
        "upstreams-web1-drained.conf": drain["drained"],
        # with ACME: the plain HTTP site served while certbot answers the first challenge
        **{f"acme-{Path(p).name}": t for p, t in setup.get("acme", {}).get("files", {}).items()},
    }
    for name, text in files.items():
        expected = case / "expected" / name
        if os.environ.get("UPDATE_GOLDEN") == "1":
            expected.parent.mkdir(exist_ok=True)
            expected.write_text(text)
        assert text == expected.read_text(), name


def test_the_proxy_runs_on_its_component_and_balances_over_every_host() -> None:
    target = _target(GOLDEN / "two_components" / "deploy.yml")
    setup = edge.setup_vars(target)["deployer_proxy"]
    assert setup["hosts"] == ["edge1"]
    site, upstreams = setup["files"].values()
    assert "server_name shop.example.com;" in site
    for address in ("10.0.0.10:8000", "10.0.0.11:8000", "10.0.0.12:8000"):
        assert f"server {address}" in upstreams  # private addresses, never the public ones
    assert "203.0.113" not in upstreams


def test_a_batch_is_drained_and_restored_in_every_run_that_restarts_it() -> None:
    target = _target(GOLDEN / "two_components" / "deploy.yml")
    switch = extravars.switch_vars(target, ["web1"], "v2")["deployer_proxy_drain"]
    first = extravars.first_batch_vars(target, ["web1"])["deployer_proxy_drain"]
    assert first == switch
    assert switch["hosts"] == ["edge1"]
    assert switch["path"] == "/etc/nginx/deployer/shop-production/upstreams.conf"
    down = [line for line in switch["drained"].splitlines() if " down" in line]
    assert len(down) == 1
    assert "10.0.0.11:8000" in down[0]
    assert " down" not in switch["restored"]
    back = extravars.rollback_vars(target, {"web1": "v1", "web2": "v1"}, "v2", "why")
    drained = [ln for ln in back["deployer_proxy_drain"]["drained"].splitlines() if " down" in ln]
    assert len(drained) == 2
    assert "deployer_proxy" in extravars.prepare_vars(
        target,
        ["edge1", "web1", "web2"],
        version="v2",
        artifact="a",
        sha256="0" * 64,
        required_bytes=1,
        lock={},
    )


def test_no_domain_and_no_proxy_means_no_proxy(tmp_path: Path) -> None:
    text = (GOLDEN / "two_components" / "deploy.yml").read_text()
    text = text.replace("    domain: shop.example.com\n", "").replace(
        "    proxy: {component: edge}\n", ""
    )
    (tmp_path / "deploy.yml").write_text(text)
    target = _target(tmp_path / "deploy.yml")
    assert target.proxy is None
    assert edge.setup_vars(target) == {}
    assert "deployer_proxy_drain" not in extravars.switch_vars(target, ["web1"], "v2")


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ("    proxy: {component: edge}\n", "environments.production.proxy.component"),
        ("    proxy: {http_port: 8000}\n", "environments.production.proxy.http_port"),
    ],
)
def test_bad_proxy_settings_are_refused_with_their_path(
    tmp_path: Path, change: str, path: str
) -> None:
    text = (GOLDEN / "two_components" / "deploy.yml").read_text()
    text = text.replace("    proxy: {component: edge}\n", change).replace(
        "      edge:\n", "      front:\n"
    )
    (tmp_path / "deploy.yml").write_text(text)
    with pytest.raises(ConfigError) as error:
        _target(tmp_path / "deploy.yml")
    assert any(p.startswith(path) for p in error.value.problems), error.value.problems


def test_https_serves_the_certificate_the_secrets_give(tmp_path: Path) -> None:
    text = (GOLDEN / "two_components" / "deploy.yml").read_text()
    text = text.replace(
        "    proxy: {component: edge}\n",
        "    proxy: {component: edge}\n    features: {ssl: true}\n"
        "    tls: {certificate: {from_env: SHOP_CERT}, key: {from_env: SHOP_KEY}}\n",
    )
    (tmp_path / "deploy.yml").write_text(text)
    target = _target(tmp_path / "deploy.yml")
    site, _upstreams = edge.setup_vars(target)["deployer_proxy"]["files"].values()
    paths = edge.tls_paths(target)
    assert f"ssl_certificate {paths.certificate};" in site
    assert f"ssl_certificate_key {paths.key};" in site
    assert "return 301 https://" in site
    assert paths.key.startswith("/etc/nginx/deployer/shop-production/tls/")
    files = edge.tls_files(target, {"certificate": "CERT", "key": "KEY"})
    assert files == {paths.certificate: "CERT", paths.key: "KEY"}
    # the PEM text is never in the extra vars, only in the runner's encrypted secrets
    setup = str(edge.setup_vars(target)) + str(extravars.switch_vars(target, ["web1"], "v2"))
    assert "KEY" not in setup


def test_ssl_without_a_certificate_source_is_refused(tmp_path: Path) -> None:
    text = (GOLDEN / "two_components" / "deploy.yml").read_text()
    text = text.replace("    proxy: {component: edge}\n", "    features: {ssl: true}\n")
    (tmp_path / "deploy.yml").write_text(text)
    with pytest.raises(ConfigError) as error:
        _target(tmp_path / "deploy.yml")
    assert error.value.problems[0].startswith("environments.production.features.ssl: HTTPS needs")


def _acme_target(tmp_path: Path, old: str, new: str) -> Target:
    text = (GOLDEN / "acme" / "deploy.yml").read_text()
    assert old in text
    (tmp_path / "deploy.yml").write_text(text.replace(old, new))
    return _target(tmp_path / "deploy.yml")


def test_acme_hands_certbot_the_ca_and_serves_its_live_certificate() -> None:
    target = _target(GOLDEN / "acme" / "deploy.yml")
    setup = edge.setup_vars(target)["deployer_proxy"]
    acme = setup["acme"]
    assert {k: v for k, v in acme.items() if k != "files"} == {
        "domain": "shop.example.com",
        "cert_name": "deployer-shop-production",
        "server": "https://acme.internal.example:14000/dir",
        "email": "ops@example.com",
        "ca_bundle": "/etc/ssl/internal-ca.pem",
        "webroot": "/var/lib/deployer/acme",
    }
    site = setup["files"]["/etc/nginx/conf.d/deployer-shop-production.conf"]
    live = "/etc/letsencrypt/live/deployer-shop-production"
    assert f"ssl_certificate {live}/fullchain.pem;" in site
    assert f"ssl_certificate_key {live}/privkey.pem;" in site
    # renewals answer their challenge over HTTP while HTTPS serves
    assert "location ^~ /.well-known/acme-challenge/" in site
    plain = acme["files"]["/etc/nginx/conf.d/deployer-shop-production.conf"]
    assert "ssl_certificate" not in plain
    assert "location ^~ /.well-known/acme-challenge/" in plain
    assert edge.tls_files(target, {"certificate": "C", "key": "K"}) == {}  # nothing to upload


def test_acme_defaults_to_lets_encrypt_without_a_contact(tmp_path: Path) -> None:
    old = (
        "        server: https://acme.internal.example:14000/dir\n"
        "        email: ops@example.com\n"
        "        ca_bundle: /etc/ssl/internal-ca.pem\n"
    )
    target = _acme_target(tmp_path, old, "        {}\n")
    acme = edge.setup_vars(target)["deployer_proxy"]["acme"]
    assert acme["server"] == "https://acme-v02.api.letsencrypt.org/directory"
    assert acme["email"] is None
    assert acme["ca_bundle"] is None


PROD = "environments.production"
ACME_REFUSALS = {
    "no-domain": ("    domain: shop.example.com\n", "", f"{PROD}.tls.acme"),
    "ip-domain": ("    domain: shop.example.com\n", "    domain: 10.0.0.10\n", f"{PROD}.domain"),
    "several-proxies": ("    proxy: {component: edge}\n", "", f"{PROD}.tls.acme"),
    "two-sources": (
        "      acme:\n",
        "      certificate: {from_env: C}\n      acme:\n",
        f"{PROD}.tls",
    ),
    "email": (
        "        email: ops@example.com\n",
        "        email: 'o; rm -rf /'\n",
        f"{PROD}.tls.acme.email",
    ),
    "plain-http": (
        "        server: https://acme",
        "        server: http://acme",
        f"{PROD}.tls.acme.server",
    ),
    "relative-bundle": (
        "ca_bundle: /etc/ssl/internal-ca.pem",
        "ca_bundle: ca.pem",
        f"{PROD}.tls.acme.ca_bundle",
    ),
}


@pytest.mark.parametrize(("old", "new", "path"), ACME_REFUSALS.values(), ids=ACME_REFUSALS)
def test_acme_that_cannot_work_is_refused_with_its_path(
    tmp_path: Path, old: str, new: str, path: str
) -> None:
    with pytest.raises(ConfigError) as error:
        _acme_target(tmp_path, old, new)
    assert any(p.startswith(path) for p in error.value.problems), error.value.problems


def test_tls_with_only_a_certificate_names_the_missing_key(tmp_path: Path) -> None:
    text = (
        (GOLDEN / "two_components" / "deploy.yml")
        .read_text()
        .replace(
            "    proxy: {component: edge}\n",
            "    proxy: {component: edge}\n    features: {ssl: true}\n"
            "    tls: {certificate: {from_env: C}}\n",
        )
    )
    (tmp_path / "deploy.yml").write_text(text)
    with pytest.raises(ConfigError) as error:
        _target(tmp_path / "deploy.yml")
    assert any("key is missing" in p for p in error.value.problems), error.value.problems
