"""`status` turns what a proxy host reports about its certificate into days left and
problems, and trusts none of it: a date that is not a date is an error, text is bounded."""

from __future__ import annotations

from datetime import UTC, datetime

from deployer.targets.ssh.state import certificate, certificate_problems

NOW = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)


def _reported(**fields: object) -> dict[str, object]:
    base = {"path": "/etc/letsencrypt/live/x/fullchain.pem", "issuer": "CN=Pebble", "error": None}
    return {"certificate": {**base, **fields}}


def test_days_left_and_a_warning_two_weeks_before_expiry() -> None:
    fine = certificate("edge1", _reported(not_after="2027-03-03T12:00:00Z"), NOW)
    assert fine is not None
    assert (fine.days_left, fine.issuer, fine.error) == (90.0, "CN=Pebble", "")
    assert certificate_problems((fine,)) == []
    soon = certificate("edge1", _reported(not_after="2026-12-10T00:00:00Z"), NOW)
    assert certificate_problems((soon,)) == [  # type: ignore[arg-type]
        "edge1: the proxy's certificate expires in 6.5 days (2026-12-10T00:00:00Z)"
    ]
    gone = certificate("edge1", _reported(not_after="2026-12-01T00:00:00Z"), NOW)
    assert certificate_problems((gone,)) == [  # type: ignore[arg-type]
        "edge1: the proxy's certificate expired on 2026-12-01T00:00:00Z"
    ]


def test_what_the_host_reports_is_checked_not_trusted() -> None:
    forged = certificate("edge1", _reported(not_after="2999-01-01T00:00:00Z; rm -rf /"), NOW)
    assert forged is not None
    assert forged.not_after is None
    assert certificate_problems((forged,)) == [
        "edge1: the proxy's certificate: no expiry date reported"
    ]
    noisy = certificate(
        "edge1", _reported(not_after="2027-01-01T00:00:00Z", issuer="CN=x\x1b[31m" + "y" * 500), NOW
    )
    assert noisy is not None
    assert noisy.issuer is not None
    assert "\x1b" not in noisy.issuer
    assert len(noisy.issuer) == 200
    failed = certificate(
        "edge1", {"certificate": {"path": "/p", "error": "no certificate at /p"}}, NOW
    )
    assert certificate_problems((failed,)) == [  # type: ignore[arg-type]
        "edge1: the proxy's certificate: no certificate at /p"
    ]
    assert certificate("web1", {}, NOW) is None  # not a proxy host
