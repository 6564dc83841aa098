"""deployer.core.proxy: nginx serves the rendered site (static files with CDN headers, /api
on both backends, ACME challenges, JSON logs), retries a dead backend on the other one, and
keeps its configuration root's and checked."""

import json

import pytest

SITE = "/etc/nginx/conf.d/deployer-shop-lab.conf"
UPSTREAMS = "/etc/nginx/deployer/shop-lab/upstreams.conf"
ACCESS_LOG = "/var/log/nginx/deployer-shop-lab.access.log"


def curl(host, path, *flags):
    return host.check_output(" ".join(["curl -sf --max-time 5", *flags, f"http://127.0.0.1{path}"]))


def header(host, path, name):
    lines = curl(host, path, "-o /dev/null -D -").splitlines()
    prefix = name.lower() + ":"
    found = [ln.split(":", 1)[1].strip() for ln in lines if ln.lower().startswith(prefix)]
    return found[0] if found else None


def ports(host, requests):
    out = host.check_output(
        f"for i in $(seq {requests}); do curl -sf --max-time 5 http://127.0.0.1/api/who; echo; done"
    )
    return [json.loads(line)["port"] for line in out.splitlines()]


def test_nginx_is_enabled_running_and_its_configuration_passes(host):
    assert host.service("nginx").is_enabled
    assert host.service("nginx").is_running
    assert host.run("nginx -t").rc == 0
    assert host.socket("tcp://0.0.0.0:80").is_listening
    assert not host.file("/etc/nginx/sites-enabled/default").exists


def test_files_are_roots_and_no_copy_of_an_old_one_is_left(host):
    for path in (SITE, UPSTREAMS):
        f = host.file(path)
        assert (f.user, f.group, f.mode) == ("root", "root", 0o644)
    assert host.file("/etc/nginx/deployer/shop-lab").mode == 0o755
    assert host.run("ls /etc/nginx/conf.d /etc/nginx/deployer/shop-lab | grep '~$'").rc == 1
    assert " down;" not in host.file(UPSTREAMS).content_string  # undrained again


def test_root_serves_the_static_files_with_no_cache(host):
    assert "shop index" in curl(host, "/")
    assert "shop index" in curl(host, "/some/client/route")  # index.html for unknown paths
    assert "shop index" in curl(host, "/apiary")  # not the /api route
    assert header(host, "/", "Cache-Control") == "no-cache"
    assert header(host, "/robots.txt", "Cache-Control") == "no-cache"


@pytest.mark.parametrize("path", ["/app.3f9c2b1e.js", "/assets/site-0123456789abcdef.css"])
def test_fingerprinted_assets_are_cached_for_a_year(host, path):
    assert header(host, path, "Cache-Control") == "public, max-age=31536000, immutable"


def test_api_reaches_both_backends_with_the_path(host):
    assert set(ports(host, 20)) == {8101, 8102}
    assert json.loads(curl(host, "/api/x?y=1"))["path"] == "/api/x?y=1"
    assert json.loads(curl(host, "/api"))["path"] == "/api"


def test_a_dead_backend_is_retried_on_the_other_one(host):
    host.check_output("systemctl stop molecule-backend@8102")
    try:
        answered = ports(host, 30)  # curl -f: any error status fails the loop
        assert answered == [8101] * 30
    finally:
        host.check_output("systemctl start molecule-backend@8102")


def test_acme_challenges_and_the_health_check_are_served_by_nginx(host):
    assert curl(host, "/.well-known/acme-challenge/token-1") == "token-1.key"
    assert curl(host, "/.deployer/proxy-health") == "ok"
    status = host.check_output(
        "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/.well-known/acme-challenge/none"
    )
    assert status == "404"


def test_access_log_lines_are_json(host):
    curl(host, "/api/logged", "-A 'agent \"quoted\"'")
    lines = host.file(ACCESS_LOG).content_string.splitlines()
    entries = [json.loads(line) for line in lines]
    assert len(entries) > 20
    last = [e for e in entries if e["uri"] == "/api/logged"][-1]
    assert last["status"] == 200
    assert last["user_agent"] == 'agent "quoted"'
    assert last["upstream"].startswith("127.0.0.1:81")
