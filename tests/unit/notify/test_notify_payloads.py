"""Notification formats: golden files per format and event kind, plus the rules behind them.

Regenerate tests/golden/notify/ after an intended change with
`UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/notify/test_notify_payloads.py` and review the diff.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import UTC, datetime
from email import message_from_string, policy
from pathlib import Path

import pytest

from deployer.config.notify import ALL_EVENTS, EventKind
from deployer.ledger import Analysis, HostResult, HostStatus, Kind, Ledger, Status
from deployer.notify import (
    Event,
    email_message,
    event_from_deployment,
    pagerduty_payload,
    slack_payload,
    summary,
    webhook_payload,
)

GOLDEN = Path(__file__).parents[2] / "golden" / "notify"
STARTED = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)


BASE = Event(
    kind="success",
    app="hello",
    environment="prod",
    version="1.2.0",
    previous_version="1.1.0",
    deployment_id=7,
    status="SUCCEEDED",
    reason="",
    hosts=(("web-1", "changed", ""), ("web-2", "changed", "")),
    started_at=STARTED,
    seconds=42.5,
    user="alice",
    control_host="ctl-1",
)


def make_event(kind: EventKind) -> Event:
    """A fixed event per kind: no clock, no host names from the machine."""
    if kind == "start":
        return replace(BASE, kind=kind, status="RUNNING", hosts=(), seconds=None)
    if kind == "success":
        return BASE
    if kind == "failure":
        return replace(
            BASE,
            kind=kind,
            status="FAILED",
            reason="health check failed on web-2; automatic rollback is off",
            hosts=(("web-1", "changed", ""), ("web-2", "failed", "HTTP 503 <!channel> & co")),
            seconds=61.25,
            analysis=(
                (
                    "web-2",
                    Analysis(
                        "crashed",
                        "crashed on start: exited with code 1 0.4s after it started",
                        ("Traceback (most recent call last):", "KeyError: 'DATABASE_URL' <!here>"),
                        service="api",
                    ),
                ),
            ),
        )
    return replace(
        BASE,
        kind=kind,
        status="ROLLED_BACK",
        reason="health check failed on web-2",
        hosts=(("web-1", "rolled_back", ""), ("web-2", "rolled_back", "HTTP 503")),
        seconds=80.0,
    )


def _render(fmt: str, kind: EventKind) -> str:
    event = make_event(kind)
    if fmt == "email":
        return email_message(
            event, "deployer@example.com", ["ops@example.com", "dev@example.com"]
        ).as_string()
    if fmt == "webhook":
        body = webhook_payload(event)
    elif fmt == "slack":
        body = slack_payload(event, channel="#deploys", username="deployer")
    else:
        body = pagerduty_payload(event, "R0UTING-KEY-0000")
    return json.dumps(body, indent=2, ensure_ascii=False) + "\n"


CASES = [(fmt, kind) for fmt in ("webhook", "slack", "pagerduty", "email") for kind in ALL_EVENTS]


@pytest.mark.parametrize(("fmt", "kind"), CASES, ids=[f"{f}_{k}" for f, k in CASES])
def test_payload_matches_golden(fmt: str, kind: EventKind) -> None:
    golden = GOLDEN / f"{fmt}_{kind}.{'eml' if fmt == 'email' else 'json'}"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(_render(fmt, kind))
    assert _render(fmt, kind) == golden.read_text()


def test_every_golden_file_is_a_case() -> None:
    names = {p.name for p in GOLDEN.iterdir()}
    assert names == {f"{f}_{k}.{'eml' if f == 'email' else 'json'}" for f, k in CASES}


def test_summary_names_outcome_and_versions() -> None:
    assert summary(make_event("start")) == "hello prod: deploying 1.2.0 (live: 1.1.0)"
    assert summary(make_event("success")) == "hello prod: 1.2.0 deployed in 42.5s"
    assert summary(make_event("failure")).startswith("hello prod: deployment of 1.2.0 FAILED: ")
    assert summary(make_event("rollback")) == (
        "hello prod: 1.2.0 ROLLED BACK to 1.1.0: health check failed on web-2"
    )


def test_slack_escapes_control_characters_from_messages() -> None:
    text = json.dumps(slack_payload(make_event("failure")))
    assert "<!channel>" not in text
    assert "&lt;!channel&gt; &amp; co" in text


@pytest.mark.parametrize(
    ("kind", "colour"), [("success", "#2eb886"), ("failure", "#a30200"), ("rollback", "#daa038")]
)
def test_slack_colour_follows_outcome(kind: EventKind, colour: str) -> None:
    assert slack_payload(make_event(kind))["attachments"][0]["color"] == colour


def test_slack_lists_at_most_twenty_hosts() -> None:
    event = make_event("failure")
    many = tuple((f"web-{i}", "failed", "down") for i in range(25))
    text = json.dumps(slack_payload(replace(event, hosts=many)))
    assert "web-19" in text
    assert "web-20" not in text
    assert "and 5 more" in text


def test_pagerduty_event_api_v2_shape() -> None:
    body = pagerduty_payload(make_event("failure"), "KEY", severity="error")
    assert body["routing_key"] == "KEY"
    assert body["event_action"] == "trigger"
    assert body["dedup_key"] == "deployer/hello/prod/1.2.0"
    payload = body["payload"]
    assert set(payload) >= {"summary", "source", "severity", "component", "group", "custom_details"}
    assert payload["severity"] == "error"
    assert payload["custom_details"]["hosts"] == [
        "web-1: changed",
        "web-2: failed HTTP 503 <!channel> & co",
    ]
    # A success is never an alert-level event, whatever the channel's severity.
    assert pagerduty_payload(make_event("success"), "KEY")["payload"]["severity"] == "info"


def test_pagerduty_dedup_key_is_shared_by_failure_and_rollback_of_a_version() -> None:
    keys = {pagerduty_payload(make_event(k), "K")["dedup_key"] for k in ("failure", "rollback")}
    assert len(keys) == 1


def test_email_subject_and_body() -> None:
    msg = email_message(make_event("rollback"), "deployer@example.com", ["ops@example.com"])
    parsed = message_from_string(msg.as_string(), policy=policy.default)
    assert parsed["Subject"] == "[deployer] hello prod 1.2.0: ROLLED BACK"
    assert parsed["To"] == "ops@example.com"
    assert parsed["Date"] is None  # added at send time, keeping the builder pure
    body = parsed.get_body().get_content()  # type: ignore[union-attr]
    assert "web-2  rolled_back  HTTP 503" in body


def _begin(ledger: Ledger, kind: Kind, version: str, previous: str) -> int:
    return ledger.begin(
        environment="prod",
        kind=kind,
        version=version,
        previous_version=previous,
        artifact_sha256=None,
        user="alice",
        control_host="ctl-1",
        pid=1,
    )


def test_event_from_deployment_rows(tmp_path: Path) -> None:
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        first = _begin(ledger, Kind.DEPLOY, "1.2.0", "1.1.0")
        started = event_from_deployment("hello", ledger.get(first))
        assert (started.kind, started.status, started.seconds) == ("start", "RUNNING", None)
        ledger.record_hosts(first, [HostResult("web-1", HostStatus.ROLLED_BACK, message="503")])
        row = ledger.finish(
            first, Status.ROLLED_BACK, reason="bad", deploy_seconds=9.0, rollback_seconds=3.0
        )
        event = event_from_deployment("hello", row)
        assert (event.kind, event.version, event.previous_version) == ("rollback", "1.2.0", "1.1.0")
        assert (event.deployment_id, event.seconds, event.reason) == (first, 9.0, "bad")
        assert event.hosts == (("web-1", "rolled_back", "503"),)
        assert event.started_at == row.started_at

        manual = _begin(ledger, Kind.ROLLBACK, "1.0.0", "1.1.0")
        event = event_from_deployment(
            "hello", ledger.finish(manual, Status.SUCCEEDED, rollback_seconds=2.5)
        )
        # A manual rollback from 1.1.0 to 1.0.0: 1.1.0 is taken away, 1.0.0 restored.
        assert (event.kind, event.version, event.previous_version) == ("rollback", "1.1.0", "1.0.0")
        assert event.seconds == 2.5

        failed = _begin(ledger, Kind.DEPLOY, "1.3.0", "1.0.0")
        assert (
            event_from_deployment("hello", ledger.finish(failed, Status.INTERRUPTED)).kind
            == "failure"
        )
        ok = _begin(ledger, Kind.DEPLOY, "1.3.0", "1.0.0")
        assert event_from_deployment("hello", ledger.finish(ok, Status.SUCCEEDED)).kind == "success"
