"""deployer.core.proxy with a certificate pebble issued by real http-01 through nginx: HTTPS
verifies against pebble's root, HTTP redirects, and a renewal reloads nginx by its hook."""

import time

ROOT = "/etc/pebble/issuing-root.pem"
HTTPS = "--resolve shop.lab.test:443:127.0.0.1 https://shop.lab.test"


def pebble_root(host):
    # pebble makes a new issuing root at every start; its management API hands it out
    host.check_output(
        f"curl -sf --cacert /etc/pebble/ca.pem https://127.0.0.1:15000/roots/0 > {ROOT}"
    )
    return ROOT


def serial(host):
    return host.check_output(
        "openssl s_client -connect 127.0.0.1:443 -servername shop.lab.test </dev/null 2>/dev/null"
        " | openssl x509 -noout -serial"
    )


def test_https_serves_with_a_certificate_that_verifies_against_pebble(host):
    body = host.check_output(f"curl -sf --max-time 5 --cacert {pebble_root(host)} {HTTPS}/")
    assert "shop over https" in body
    issuer = host.check_output(
        "openssl x509 -noout -issuer -in /etc/letsencrypt/live/shop.lab.test/cert.pem"
    )
    assert "Pebble" in issuer


def test_http_redirects_to_https_but_the_health_check_answers(host):
    out = host.check_output(
        "curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H 'Host: shop.lab.test' "
        "http://127.0.0.1/x?y=1"
    )
    assert out == "301 https://shop.lab.test/x?y=1"
    assert host.check_output("curl -sf http://127.0.0.1/.deployer/proxy-health") == "ok"


def test_a_renewal_reloads_nginx_with_the_new_certificate(host):
    renewal = host.file("/etc/letsencrypt/renewal/shop.lab.test.conf").content_string
    assert "renew_hook = systemctl reload nginx" in renewal
    # certbot's timer trusts pebble's CA through the role's drop-in of certbot.service
    env = host.check_output("systemctl show -P Environment certbot.service")
    assert env == "REQUESTS_CA_BUNDLE=/etc/pebble/ca.pem"
    assert host.service("certbot.timer").is_enabled
    before = serial(host)
    host.check_output(
        f"{env} certbot renew --force-renewal --non-interactive"
        " --no-random-sleep-on-renew"  # without a terminal, certbot waits up to 8 minutes
    )
    for _ in range(50):  # the hook's reload is asynchronous: nginx swaps workers shortly after
        after = serial(host)
        if after != before:
            break
        time.sleep(0.1)
    assert after != before
    body = host.check_output(f"curl -sf --max-time 5 --cacert {pebble_root(host)} {HTTPS}/")
    assert "shop over https" in body
