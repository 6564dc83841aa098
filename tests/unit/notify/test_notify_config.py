"""The `notifications:` models: discriminated by `type`, strict, secrets by reference only."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from deployer.config.models import SecretRef
from deployer.config.notify import (
    ALL_EVENTS,
    PAGERDUTY_URL,
    Email,
    Notification,
    PagerDuty,
    Slack,
    Webhook,
    secret_refs,
)

CHANNELS = TypeAdapter(list[Notification])

WEBHOOK = {"type": "webhook", "url": {"from_env": "HOOK_URL"}}
SLACK = {"type": "slack", "webhook_url": {"vault": "slack_url"}}
PAGER = {"type": "pagerduty", "routing_key": {"from_env": "PD_KEY"}}
EMAIL = {"type": "email", "host": "smtp.example.com", "from": "d@example.com", "to": ["o@x.io"]}


def parse(*entries: dict[str, Any]) -> list[Any]:
    return CHANNELS.validate_python(list(entries))


def errors(entry: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        parse(entry)
    return str(caught.value)


def test_type_chooses_the_model() -> None:
    parsed = parse(WEBHOOK, SLACK, PAGER, EMAIL)
    assert [type(c) for c in parsed] == [Webhook, Slack, PagerDuty, Email]


def test_defaults() -> None:
    hook, pager, mail = parse(WEBHOOK, PAGER, EMAIL)
    assert hook.events == ALL_EVENTS
    assert (hook.timeout, hook.retries, hook.backoff) == (5.0, 3, 1.0)
    assert pager.events == ("failure", "rollback")
    assert (pager.url, pager.severity) == (PAGERDUTY_URL, "critical")
    assert (mail.starttls, mail.ssl, mail.effective_port, mail.sender) == (
        False,
        False,
        25,
        "d@example.com",
    )


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ({"type": "teams", "url": {"from_env": "X"}}, "does not match any of the expected tags"),
        ({"url": {"from_env": "X"}}, "Unable to extract tag using discriminator 'type'"),
        ({**WEBHOOK, "headers": {"a": "b"}}, "Extra inputs are not permitted"),
        ({**SLACK, "webhook_url": {"vault": "k"}, "icon": ":x:"}, "Extra inputs are not permitted"),
        ({**WEBHOOK, "url": {"from_env": "A", "vault": "b"}}, "exactly one of"),
        ({**WEBHOOK, "events": ["success", "success"]}, "list each event once"),
        ({**PAGER, "events": ["failure", "failure"]}, "list each event once"),
        ({**WEBHOOK, "events": ["deployed"]}, "'start', 'success', 'failure' or 'rollback'"),
        ({**WEBHOOK, "events": []}, "at least 1 item"),
        ({**WEBHOOK, "retries": 0}, "greater than or equal to 1"),
        ({**WEBHOOK, "timeout": 0}, "greater than 0"),
        ({**PAGER, "url": "ftp://events.example.com/x"}, "http:// or https://"),
        ({**PAGER, "url": "https:///v2/enqueue"}, "http:// or https://"),
        ({**PAGER, "url": "https://example.com:99999/x"}, "invalid port"),
        ({**PAGER, "url": "https://example.com/a b"}, "whitespace"),
        ({**PAGER, "severity": "fatal"}, "'critical', 'error', 'warning' or 'info'"),
        ({**EMAIL, "to": []}, "at least 1 item"),
        ({**EMAIL, "from": "deployer"}, "not a plain e-mail address"),
        ({**EMAIL, "to": ["o@x.io\nBcc: all@x.io"]}, "not a plain e-mail address"),
        ({**EMAIL, "ssl": True, "starttls": True}, "at most one of 'ssl' and 'starttls'"),
        ({**EMAIL, "password": {"from_env": "P"}}, "'username' and 'password' go together"),
        (
            {**EMAIL, "username": "u", "password": {"from_env": "P"}},
            "a password is only sent over TLS",
        ),
        ({**EMAIL, "host": "smtp;rm -rf"}, "not a safe host address"),
    ],
)
def test_bad_entries_are_rejected(entry: dict[str, Any], needle: str) -> None:
    assert needle in errors(entry)


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"type": "webhook", "url": "https://hooks.example.com/T0K3N"}, "url"),
        ({"type": "slack", "webhook_url": "https://hooks.slack.com/services/X"}, "webhook_url"),
        ({"type": "pagerduty", "routing_key": "R0UTING"}, "routing_key"),
    ],
)
def test_secrets_cannot_be_written_inline(entry: dict[str, Any], field: str) -> None:
    text = errors(entry)
    assert field in text
    assert "SecretRef" in text or "valid dictionary" in text


def test_models_are_frozen() -> None:
    (hook,) = parse(WEBHOOK)
    with pytest.raises(ValidationError):
        hook.retries = 5


def test_email_ports_follow_tls_mode() -> None:
    starttls, smtps, explicit = parse(
        {**EMAIL, "starttls": True, "username": "u", "password": {"vault": "p"}},
        {**EMAIL, "ssl": True},
        {**EMAIL, "ssl": True, "port": 2465},
    )
    assert (starttls.effective_port, smtps.effective_port, explicit.effective_port) == (
        587,
        465,
        2465,
    )


def test_secret_refs_are_named_by_position_and_field() -> None:
    channels = parse(
        WEBHOOK,
        EMAIL,
        {**EMAIL, "starttls": True, "username": "u", "password": {"vault": "smtp_pw"}},
        SLACK,
        PAGER,
    )
    assert secret_refs(channels) == {
        "notify.0.url": SecretRef(from_env="HOOK_URL"),
        "notify.2.password": SecretRef(vault="smtp_pw"),
        "notify.3.webhook_url": SecretRef(vault="slack_url"),
        "notify.4.routing_key": SecretRef(from_env="PD_KEY"),
    }


def test_json_schema_uses_the_yaml_key_from() -> None:
    schema = CHANNELS.json_schema()
    email = schema["$defs"]["Email"]
    assert "from" in email["properties"]
    assert "from" in email["required"]
