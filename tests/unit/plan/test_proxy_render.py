"""Golden nginx configurations of the edge proxy, rendered on the controller.

Each tests/golden/proxy/<case>/ holds a site.yml (a ProxySite, plus `drained`: hosts to
drain) and the expected files: files/<path on the proxy host> for render_site, and
drained.conf for render_upstreams with those hosts drained. The `molecule` case is the site
of molecule/proxy, `acme_http` and `acme_tls` those of molecule/proxy_acme: the scenarios'
vars/rendered.yml must be these cases' output. After an
intended change, regenerate and review the diff:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/plan/test_proxy_render.py
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployer.plan.proxy import (
    Backend,
    ProxySite,
    Route,
    Tls,
    Upstream,
    render_maintenance,
    render_site,
    render_upstreams,
    site_paths,
)

ROOT = Path(__file__).parents[3]
GOLDEN = ROOT / "tests" / "golden" / "proxy"
CASES = sorted(p.parent for p in GOLDEN.glob("*/site.yml"))
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def site_of(spec: dict[str, Any]) -> ProxySite:
    spec = dict(spec)
    tls = spec.pop("tls", None)
    return ProxySite(
        app=spec.pop("app"),
        environment=spec.pop("environment"),
        server_name=spec.pop("server_name", None),
        routes=tuple(Route(**r) for r in spec.pop("routes", [])),
        upstreams=tuple(
            Upstream(u["name"], tuple(Backend(**b) for b in u["backends"]))
            for u in spec.pop("upstreams", [])
        ),
        static_root=spec.pop("static_root", None),
        tls=Tls(**tls) if tls else None,
        cdn=spec.pop("cdn", False),
        json_logs=spec.pop("json_logs", False),
        acme_webroot=spec.pop("acme_webroot", None),
        **spec,
    )


def load_case(case: Path) -> tuple[ProxySite, frozenset[str]]:
    spec = yaml.safe_load((case / "site.yml").read_text())
    drained = frozenset(spec.pop("drained", []))
    return site_of(spec), drained


def compare(path: Path, content: str) -> None:
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    assert content == path.read_text(), path


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_proxy_config(case: Path) -> None:
    site, drained = load_case(case)
    rendered = render_site(site)
    for path, content in rendered.items():
        compare(case / "files" / path.lstrip("/"), content)
    on_disk = {
        "/" + str(p.relative_to(case / "files")) for p in (case / "files").rglob("*") if p.is_file()
    }
    assert on_disk == set(rendered)  # no stale golden file
    if drained:
        compare(case / "drained.conf", render_upstreams(site, drained))
    else:
        assert not (case / "drained.conf").exists()


# --- the Molecule scenario's vars are the renderer's output --------------------------------


class _UnsafeLoader(yaml.SafeLoader):
    pass


_UnsafeLoader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def _unsafe_block(text: str, indent: str) -> str:
    return "!unsafe |\n" + "".join(f"{indent}{line}".rstrip() + "\n" for line in text.splitlines())


def _header(cases: str) -> list[str]:
    return [
        "---",
        f"# Generated from tests/golden/proxy/{cases} by",
        "# tests/unit/plan/test_proxy_render.py (UPDATE_GOLDEN=1); do not edit. The renderer's",
        "# finished text, marked !unsafe so that Ansible never templates it.",
    ]


def _files_var(name: str, files: dict[str, str]) -> list[str]:
    entries = [f"  {path}: {_unsafe_block(text, '    ')}" for path, text in files.items()]
    return [f"{name}:", *entries]


def proxy_vars() -> str:
    """molecule/proxy: one site, its upstreams undrained and with app2 drained."""
    site, drained = load_case(GOLDEN / "molecule")
    files = render_site(site)
    paths = site_paths(site.app, site.environment)
    lines = [
        *_header("molecule/site.yml"),
        *_files_var("flow_proxy_files", files),
        f"flow_upstreams_path: {paths['upstreams']}",
        f"flow_upstreams_text: {_unsafe_block(files[paths['upstreams']], '  ')}",
        f"flow_drained_text: {_unsafe_block(render_upstreams(site, drained), '  ')}",
    ]
    return "\n".join(line.rstrip("\n") for line in lines) + "\n"


def proxy_acme_vars() -> str:
    """molecule/proxy_acme: the site before its first certificate, and with it."""
    before, _ = load_case(GOLDEN / "acme_http")
    after, _ = load_case(GOLDEN / "acme_tls")
    lines = [
        *_header("acme_http/site.yml and acme_tls/site.yml"),
        *_files_var("flow_http_files", render_site(before)),
        *_files_var("flow_tls_files", render_site(after)),
    ]
    return "\n".join(line.rstrip("\n") for line in lines) + "\n"


SCENARIOS = {"proxy": proxy_vars, "proxy_acme": proxy_acme_vars}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_molecule_scenario_vars_are_the_renderers_output(scenario: str) -> None:
    path = ROOT / "molecule" / scenario / "vars" / "rendered.yml"
    expected = SCENARIOS[scenario]()
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(expected)
    assert path.read_text() == expected, "run with UPDATE_GOLDEN=1 and review the diff"
    loaded = yaml.load(path.read_text(), Loader=_UnsafeLoader)
    if scenario == "proxy":
        site, _ = load_case(GOLDEN / "molecule")
        assert loaded["flow_proxy_files"] == render_site(site)


# --- behaviour -------------------------------------------------------------------------------


def base(**changes: Any) -> ProxySite:
    site, _ = load_case(GOLDEN / "static_and_api")
    return dataclasses.replace(site, **changes)


def upstreams_text(site: ProxySite) -> str:
    return render_site(site)[site_paths(site.app, site.environment)["upstreams"]]


def test_site_file_includes_its_upstreams_file() -> None:
    site = base()
    paths = site_paths("shop", "production")
    assert paths == {
        "site": "/etc/nginx/conf.d/deployer-shop-production.conf",
        "upstreams": "/etc/nginx/deployer/shop-production/upstreams.conf",
        "maintenance": "/etc/nginx/deployer/shop-production/maintenance.conf",
        "access_log": "/var/log/nginx/deployer-shop-production.access.log",
    }
    files = render_site(site)
    assert set(files) == {paths["site"], paths["upstreams"]}  # never the maintenance file
    assert f"include {paths['upstreams']};\n" in files[paths["site"]]
    # a glob: no error while the file does not exist
    assert (
        "include /etc/nginx/deployer/shop-production/maintenance*.conf;\n" in (files[paths["site"]])
    )


def test_the_maintenance_page_is_text_nginx_cannot_read_as_config() -> None:
    hostile = 'back soon"; } location / { proxy_pass http://evil; } #$host <script>'
    text = render_maintenance("shop", "production", on=True, retry_after=120, message=hostile)
    (page,) = [line for line in text.splitlines() if line.startswith("    return 503 ")]
    body = page.removeprefix('    return 503 "').removesuffix('";')
    # nothing ends nginx's quoted string or names a variable in it; no markup of the message
    assert '"' not in body
    assert "$" not in body
    assert "<script>" not in body
    assert "back soon&#34;&#59; &#125; location" in body
    assert "add_header Retry-After 120 always;" in text
    assert "return 503;" in text
    off = render_maintenance("shop", "production", on=False)
    assert "return" not in off
    with pytest.raises(ValueError, match="retry_after"):
        render_maintenance("shop", "production", on=True, retry_after=0)
    with pytest.raises(ValueError, match="message"):
        render_maintenance("shop", "production", on=True, message="two\nlines")


def test_drain_marks_only_that_hosts_backends_down() -> None:
    text = render_upstreams(base(), frozenset({"web2"}))
    assert "server 10.0.1.11:8001 max_fails=2 fail_timeout=5s;  # web1\n" in text
    assert "server 10.0.1.12:8002 max_fails=2 fail_timeout=5s down;  # web2\n" in text
    assert text.count(" down;") == 2
    assert render_upstreams(base()) == upstreams_text(base())


def test_draining_every_backend_keeps_them_all_in_service() -> None:
    text = render_upstreams(base(), frozenset({"web1", "web2"}))
    assert " down;" not in text
    assert "all kept in" in text


def test_draining_an_unknown_host_changes_nothing_but_the_comment() -> None:
    text = render_upstreams(base(), frozenset({"web9"}))
    assert " down;" not in text
    assert "# Drained (their backends take no new requests): web9\n" in text


def test_without_cdn_no_cache_headers_and_without_json_logs_the_default_log() -> None:
    site_file = render_site(base())["/etc/nginx/conf.d/deployer-shop-production.conf"]
    assert "Cache-Control" not in site_file
    assert "access_log" not in site_file.replace("access_log off;", "")
    assert "log_format" not in site_file


def test_without_server_name_the_site_is_the_default_server() -> None:
    site_file = render_site(base(server_name=None))[
        "/etc/nginx/conf.d/deployer-shop-production.conf"
    ]
    assert "listen 80 default_server;\n" in site_file
    assert "server_name _;\n" in site_file


def test_a_route_prefix_takes_its_subpaths_but_not_longer_names() -> None:
    site_file = render_site(base())["/etc/nginx/conf.d/deployer-shop-production.conf"]
    assert "location = /api {" in site_file
    assert "location ^~ /api/ {" in site_file
    assert "location ^~ /api {" not in site_file  # that would also take /apiary


def test_tls_on_another_port_redirects_there() -> None:
    site = base(tls=Tls("/etc/ssl/shop.pem", "/etc/ssl/shop.key"), https_port=8443)
    site_file = render_site(site)["/etc/nginx/conf.d/deployer-shop-production.conf"]
    assert "return 301 https://$host:8443$request_uri;" in site_file
    assert "listen 8443 ssl http2;" in site_file


# --- hostile input ---------------------------------------------------------------------------

BACKEND = Backend("10.0.1.11", 8001, "web1")
HOSTILE = [
    "a;b",
    "a{b",
    "a}b",
    'a"b',
    "a'b",
    "a b",
    "a\nb",
    "a$b",
    "a#b",
    "a\\b",
    "",
]


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize(
    "field",
    ["app", "environment", "server_name", "static_root", "acme_webroot"],
)
def test_hostile_site_values_are_refused(field: str, value: str) -> None:
    if (field, value) == ("server_name", "a b"):
        value = "a  b"  # two names are allowed: one space between them, no more
    with pytest.raises(ValueError):
        render_site(base(**{field: "/x/" + value if "root" in field else value}))


@pytest.mark.parametrize("name", [" a", "a ", "a\tb", "*.", "a.*", "*a.com", "a_b.com", "-a.com"])
def test_hostile_server_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        render_site(base(server_name=name))


@pytest.mark.parametrize("value", [*HOSTILE, "api", "/api/../etc", "/./api", "//api", "/a?b"])
def test_hostile_prefixes_are_refused(value: str) -> None:
    with pytest.raises(ValueError):
        render_site(base(routes=(Route(value, "web"),)))


@pytest.mark.parametrize(
    "address",
    [
        *HOSTILE,
        "10.0.1.11:8001",
        "999.1.1.1",
        "[app1.internal]",
        "fe80::1%eth0",
        "unix:/run/app.sock",
        "-app",
        "a..b",
    ],
)
def test_hostile_backend_addresses_are_refused(address: str) -> None:
    upstream = Upstream("web", (Backend(address, 8001, "web1"),))
    with pytest.raises(ValueError):
        render_site(base(upstreams=(upstream,)))


@pytest.mark.parametrize("host", [*HOSTILE, "..", "a/b"])
def test_hostile_backend_hosts_are_refused(host: str) -> None:
    upstream = Upstream("web", (Backend("10.0.1.11", 8001, host),))
    with pytest.raises(ValueError):
        render_site(base(upstreams=(upstream,)))
    with pytest.raises(ValueError):
        render_upstreams(base(), frozenset({host}))


@pytest.mark.parametrize("name", [*HOSTILE, "Web", "1web", "web-1", "web.1"])
def test_hostile_upstream_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        render_site(base(upstreams=(Upstream(name, (BACKEND,)),), routes=()))


@pytest.mark.parametrize("value", ["/etc/ssl/a;b", "etc/ssl/a", "/etc/ssl/../a", "/etc/ssl/a b"])
def test_hostile_tls_paths_are_refused(value: str) -> None:
    with pytest.raises(ValueError):
        render_site(base(tls=Tls(value, "/etc/ssl/k.pem")))
    with pytest.raises(ValueError):
        render_site(base(tls=Tls("/etc/ssl/c.pem", value)))


@pytest.mark.parametrize("port", [0, 65536, -1, True, "80"])
def test_ports_out_of_range_are_refused(port: Any) -> None:
    with pytest.raises(ValueError):
        render_site(base(http_port=port))
    upstream = Upstream("web", (Backend("10.0.1.11", port, "web1"),))
    with pytest.raises(ValueError):
        render_site(base(upstreams=(upstream,)))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"routes": (Route("/api", "nope"),)}, "no upstream named"),
        ({"routes": (Route("/", "web"),)}, "both claim '/'"),
        ({"routes": (Route("/api", "web"), Route("/api", "web"))}, "unique"),
        ({"upstreams": (Upstream("web", ()),)}, "no backend"),
        ({"upstreams": (Upstream("web", (BACKEND, BACKEND)),)}, "twice"),
        ({"routes": (Route("/.well-known/acme-challenge/", "web"),)}, "reserved"),
        ({"tls": Tls("/c.pem", "/k.pem"), "https_port": 80}, "must differ"),
    ],
)
def test_inconsistent_sites_are_refused(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        render_site(base(**changes))
