"""The `notifications:` list of an environment: where deployer reports starts and outcomes.

Each channel is one of four `type`s. Anything that grants access (webhook URLs, which carry
their token in the path, a PagerDuty routing key, an SMTP password) is a `SecretRef`, never a
literal, so `deploy.yml` stays safe to commit; `secret_refs` (below) names them for
resolution. URLs given literally (PagerDuty's endpoint) must be http(s); secret URLs are
checked the same way when they are resolved, just before sending.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, ConfigDict, Field, field_validator, model_validator

from deployer.config.base import SecretRef, Section
from deployer.config.names import Address, SingleLine

EventKind = Literal["start", "success", "failure", "rollback"]
ALL_EVENTS: tuple[EventKind, ...] = ("start", "success", "failure", "rollback")
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"


def check_http_url(value: str) -> str:
    """http(s) with a host and nothing that could split a request line. Also used on resolved
    secret URLs, so the message never repeats the value."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if any(ch.isspace() or ch == "\x00" for ch in value):
        raise ValueError("must not contain whitespace")
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise ValueError("has an invalid port") from None
    return value


HttpUrl = Annotated[str, AfterValidator(check_http_url)]

_EMAIL = re.compile(r"[^@\s<>\"',;]+@[A-Za-z0-9.-]+")


def _email(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise ValueError(f"{value!r} is not a plain e-mail address (user@example.com)")
    return value


EmailAddress = Annotated[str, AfterValidator(_email)]


class Channel(Section):
    """What every channel shares: which events it gets and how hard to try."""

    events: tuple[EventKind, ...] = Field(
        default=ALL_EVENTS, min_length=1, description="Events sent to this channel."
    )
    timeout: float = Field(default=5.0, gt=0, le=60, description="Seconds per attempt.")
    retries: int = Field(
        default=3,
        ge=1,
        le=10,
        description="Attempts in all (1: no retry). Connection errors, timeouts, HTTP 5xx/429 "
        "and SMTP 4xx are retried; other refusals are not.",
    )
    backoff: float = Field(
        default=1.0,
        ge=0,
        le=30,
        description="Seconds before the first retry, doubled for each next one. Every attempt "
        "stays within the notification deadline of the whole deployment.",
    )

    @field_validator("events")
    @classmethod
    def _unique(cls, value: tuple[EventKind, ...]) -> tuple[EventKind, ...]:
        if len(set(value)) != len(value):
            raise ValueError("list each event once")
        return value


class Webhook(Channel):
    type: Literal["webhook"]
    url: SecretRef = Field(description="Secret reference to the URL the JSON event is POSTed to.")


class Slack(Channel):
    type: Literal["slack"]
    webhook_url: SecretRef = Field(description="Secret reference to a Slack incoming-webhook URL.")
    channel: SingleLine | None = Field(
        default=None, description="Channel override (legacy webhooks only), e.g. #deploys."
    )
    username: SingleLine | None = Field(default=None, description="Sender name override.")


class Email(Channel):
    model_config = ConfigDict(populate_by_name=True)

    type: Literal["email"]
    host: Address = Field(description="SMTP server.")
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Default: 465 with ssl, 587 with starttls, else 25.",
    )
    sender: EmailAddress = Field(alias="from", description="From address.")
    to: tuple[EmailAddress, ...] = Field(min_length=1, description="Recipients.")
    username: SingleLine | None = Field(default=None, description="SMTP login user.")
    password: SecretRef | None = Field(
        default=None, description="Secret reference to the SMTP password (needs username)."
    )
    starttls: bool = Field(default=False, description="Upgrade the connection with STARTTLS.")
    ssl: bool = Field(default=False, description="Connect with TLS from the start (SMTPS).")

    @model_validator(mode="after")
    def _consistent(self) -> Email:
        if self.ssl and self.starttls:
            raise ValueError("set at most one of 'ssl' and 'starttls'")
        if (self.password is None) != (self.username is None):
            raise ValueError("'username' and 'password' go together")
        if self.password is not None and not (self.ssl or self.starttls):
            raise ValueError("a password is only sent over TLS: set 'starttls' or 'ssl'")
        return self

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 465 if self.ssl else 587 if self.starttls else 25


class PagerDuty(Channel):
    type: Literal["pagerduty"]
    events: tuple[EventKind, ...] = Field(
        default=("failure", "rollback"),
        min_length=1,
        description="Events sent to this channel (default: failure and rollback only).",
    )
    routing_key: SecretRef = Field(description="Secret reference to the Events API v2 key.")
    severity: Literal["critical", "error", "warning", "info"] = Field(
        default="critical", description="Severity of failure and rollback alerts."
    )
    url: HttpUrl = Field(default=PAGERDUTY_URL, description="Events API v2 endpoint.")


Notification = Annotated[Webhook | Slack | Email | PagerDuty, Field(discriminator="type")]
"""One entry of `notifications:`, chosen by its `type`."""


def notify_path(name: str) -> str:
    """The config path of a reference named by `secret_refs`: notify.0.url ->
    notifications[0].url."""
    _, index, field = name.split(".", 2)
    return f"notifications[{index}].{field}"


def secret_refs(channels: Sequence[Notification]) -> dict[str, SecretRef]:
    """Every secret reference of the channels, named `notify.<index>.<field>` (for example
    `notify.0.url`, `notify.2.routing_key`): resolve them and pass the values to `notify`."""
    refs: dict[str, SecretRef] = {}
    for index, channel in enumerate(channels):
        for field in type(channel).model_fields:
            value = getattr(channel, field)
            if isinstance(value, SecretRef):
                refs[f"notify.{index}.{field}"] = value
    return refs
