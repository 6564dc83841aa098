"""Tell people about deployments: webhooks, Slack, e-mail and PagerDuty.

A notification is a courtesy, never a reason for a deployment to fail or wait: `notify` sends
to every channel in parallel daemon threads, retries within a global deadline and then returns
whatever it has, and it never raises. Failures come back as `Delivery` values and are logged
at WARNING.

Webhook URLs carry their token, so they are secrets like the routing key and the SMTP
password: every message deployer produces about a channel passes through a mask of all the
resolved values (and their URL paths) and then the project's `redact`.

The payload builders (`webhook_payload`, `slack_payload`, `pagerduty_payload`,
`email_message`) are pure, so their output is pinned by golden files.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import smtplib
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any
from urllib.parse import urlsplit

from deployer.config.notify import (
    Channel,
    Email,
    EventKind,
    Notification,
    PagerDuty,
    Slack,
    Webhook,
    check_http_url,
)
from deployer.ledger import Analysis, Deployment, Kind, Status
from deployer.secrets import MASK

log = logging.getLogger(__name__)

DEADLINE = 15.0
"""Seconds `notify` may take in all, whatever the channels' retries say."""
SCHEMA = "deployer.notification/v1"
_USER_AGENT = "deployer-notify/1"
_OUTCOME: dict[str, str] = {
    "start": "started",
    "success": "succeeded",
    "failure": "FAILED",
    "rollback": "ROLLED BACK",
}
_SLACK_COLOUR = {
    "start": "#439fe0",
    "success": "#2eb886",
    "failure": "#a30200",
    "rollback": "#daa038",
}
_MAX_HOSTS = 20  # hosts listed in a chat message; the webhook and e-mail carry all
_MAX_ALERT_HOSTS = 50  # PagerDuty limits the size of an event


@dataclass(frozen=True)
class Event:
    """What happened. For `rollback` events `version` is the release taken away and
    `previous_version` the one restored (None when the fleet was mixed)."""

    kind: EventKind
    app: str
    environment: str
    version: str
    previous_version: str | None
    deployment_id: int | None
    status: str
    reason: str
    hosts: tuple[tuple[str, str, str], ...]  # (host, status, message)
    started_at: datetime
    seconds: float | None
    user: str
    control_host: str
    analysis: tuple[tuple[str, Analysis], ...] = ()
    """(host, why it failed) for each host whose failure was analysed."""


@dataclass(frozen=True)
class Delivery:
    channel: str  # "<type>#<index in the notifications list>", e.g. "slack#0"
    ok: bool
    attempts: int
    error: str | None = None


def event_from_deployment(app: str, deployment: Deployment) -> Event:
    """The event a ledger row stands for: RUNNING is a start, ROLLED_BACK a rollback,
    FAILED and INTERRUPTED failures. A successful manual rollback run is a rollback event,
    with the versions turned round to match the `Event` convention."""
    d = deployment
    kind: EventKind
    version, previous = d.version, d.previous_version
    if d.status is Status.RUNNING:
        kind = "start"
    elif d.status is Status.ROLLED_BACK:
        kind = "rollback"
    elif d.status is Status.SUCCEEDED and d.kind is Kind.ROLLBACK:
        kind, version, previous = "rollback", d.previous_version or "mixed", d.version
    elif d.status is Status.SUCCEEDED:
        kind = "success"
    else:
        kind = "failure"
    seconds = d.deploy_seconds if d.kind is Kind.DEPLOY else d.rollback_seconds
    return Event(
        kind=kind,
        app=app,
        environment=d.environment,
        version=version,
        previous_version=previous,
        deployment_id=d.id,
        status=d.status.value,
        reason=d.reason,
        hosts=tuple((h.host, h.status.value, h.message) for h in d.hosts),
        started_at=d.started_at,
        seconds=seconds,
        user=d.user,
        control_host=d.control_host,
        analysis=tuple((h.host, h.analysis) for h in d.hosts if h.analysis is not None),
    )


def _why(analysis: Analysis) -> str:
    """`crashed on start: exited with code 1 ...` (the service first, for an app of several):
    the summary says the cause in words, e.g. `killed by the kernel for memory`."""
    where = f"service {analysis.service}: " if analysis.service else ""
    return f"{where}{analysis.summary or analysis.label}"


def _analysis_json(event: Event, journal: int) -> dict[str, Any]:
    return {
        host: {
            "cause": a.cause,
            "summary": a.summary,
            "service": a.service or None,
            "journal": list(a.journal[-journal:]),
        }
        for host, a in event.analysis[:_MAX_ALERT_HOSTS]
    }


def summary(event: Event) -> str:
    """One line for a subject, a chat message or an alert."""
    head = f"{event.app} {event.environment}"
    took = f" in {event.seconds:.1f}s" if event.seconds is not None else ""
    why = f": {event.reason}" if event.reason else ""
    if event.kind == "start":
        return f"{head}: deploying {event.version} (live: {event.previous_version or 'none'})"
    if event.kind == "success":
        return f"{head}: {event.version} deployed{took}"
    if event.kind == "rollback":
        restored = event.previous_version or "the previous release"
        return f"{head}: {event.version} ROLLED BACK to {restored}{why}"
    return f"{head}: deployment of {event.version} FAILED{why}"


# -- payloads (pure) ------------------------------------------------------------------------


def webhook_payload(event: Event) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "event": event.kind,
        "summary": summary(event),
        "app": event.app,
        "environment": event.environment,
        "version": event.version,
        "previous_version": event.previous_version,
        "deployment_id": event.deployment_id,
        "status": event.status,
        "reason": event.reason,
        "started_at": event.started_at.isoformat(),
        "seconds": event.seconds,
        "user": event.user,
        "control_host": event.control_host,
        "hosts": [{"host": h, "status": s, "message": m} for h, s, m in event.hosts],
        "analysis": _analysis_json(event, journal=12),
    }


def _mrkdwn(text: str, limit: int = 2000) -> str:
    """Slack control characters escaped, so a reason cannot ping `<!channel>`."""
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _host_lines(event: Event) -> str:
    lines = [
        f"`{_mrkdwn(h, 100)}` {s}" + (f": {_mrkdwn(m, 150)}" if m else "")
        for h, s, m in event.hosts[:_MAX_HOSTS]
    ]
    if len(event.hosts) > _MAX_HOSTS:
        lines.append(f"… and {len(event.hosts) - _MAX_HOSTS} more")
    return "\n".join(lines)


def slack_payload(
    event: Event, *, channel: str | None = None, username: str | None = None
) -> dict[str, Any]:
    """Incoming-webhook JSON: `text` is the notification fallback; one attachment coloured by
    outcome holds the blocks."""
    took = f"{event.seconds:.1f}s" if event.seconds is not None else "-"
    fields = [
        ("Environment", event.environment),
        ("Version", event.version),
        ("Previous", event.previous_version or "-"),
        ("Status", event.status),
        ("Duration", took),
        ("By", f"{event.user}@{event.control_host}"),
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_mrkdwn(summary(event))}*"}},
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{_mrkdwn(v, 500)}"} for k, v in fields],
        },
    ]
    if event.reason:
        text = f"*Reason*\n{_mrkdwn(event.reason)}"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    if event.analysis:
        causes = "\n".join(
            f"`{_mrkdwn(host, 100)}` {_mrkdwn(_why(a), 300)}"
            for host, a in event.analysis[:_MAX_HOSTS]
        )
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Why*\n{causes}"}})
    if event.hosts:
        text = f"*Hosts*\n{_host_lines(event)}"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    number = f"deployment #{event.deployment_id}" if event.deployment_id is not None else "run"
    context = f"{number} of {_mrkdwn(event.app)}, started {event.started_at.isoformat()}"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    payload: dict[str, Any] = {
        "text": _mrkdwn(summary(event)),
        "attachments": [{"color": _SLACK_COLOUR[event.kind], "blocks": blocks}],
    }
    if channel:
        payload["channel"] = channel
    if username:
        payload["username"] = username
    return payload


def pagerduty_payload(
    event: Event, routing_key: str, *, severity: str = "critical"
) -> dict[str, Any]:
    """Events API v2 `trigger`. One alert per environment and version (`dedup_key`), so a
    failure followed by its rollback is one incident. `severity` applies to failures and
    rollbacks; starts and successes (when a channel asks for them) are `info`."""
    details: dict[str, Any] = {
        "deployment_id": event.deployment_id,
        "version": event.version,
        "previous_version": event.previous_version,
        "status": event.status,
        "reason": event.reason,
        "seconds": event.seconds,
        "user": event.user,
        "control_host": event.control_host,
        "hosts": [f"{h}: {s} {m}".rstrip() for h, s, m in event.hosts[:_MAX_ALERT_HOSTS]],
    }
    if event.analysis:
        details["analysis"] = _analysis_json(event, journal=5)
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": f"deployer/{event.app}/{event.environment}/{event.version}",
        "client": "deployer",
        "payload": {
            "summary": summary(event)[:1024],
            "source": f"{event.app}/{event.environment}",
            "severity": severity if event.kind in ("failure", "rollback") else "info",
            "timestamp": event.started_at.isoformat(),
            "component": event.app,
            "group": event.environment,
            "class": event.kind,
            "custom_details": details,
        },
    }


def email_message(event: Event, sender: str, to: Sequence[str]) -> EmailMessage:
    """Plain-text mail. Date and Message-ID are added when it is sent, so this stays pure."""
    msg = EmailMessage()
    msg["Subject"] = (
        f"[deployer] {event.app} {event.environment} {event.version}: {_OUTCOME[event.kind]}"
    )
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    rows = [
        ("app", event.app),
        ("environment", event.environment),
        ("version", event.version),
        ("previous", event.previous_version or "-"),
        ("status", event.status),
        ("deployment", f"#{event.deployment_id}" if event.deployment_id is not None else "-"),
        ("started", event.started_at.isoformat()),
        ("duration", f"{event.seconds:.1f}s" if event.seconds is not None else "-"),
        ("by", f"{event.user}@{event.control_host}"),
        ("reason", event.reason or "-"),
    ]
    lines = [summary(event), ""] + [f"{k + ':':<13}{v}" for k, v in rows]
    if event.hosts:
        width = max(len(h) for h, _, _ in event.hosts)
        lines += ["", "hosts:"]
        lines += [f"  {h:<{width}}  {s:<11}  {m}".rstrip() for h, s, m in event.hosts]
    for host, a in event.analysis:
        lines += ["", f"why {host} failed: {_why(a)}"]
        lines += [f"  | {line}" for line in a.journal]
    msg.set_content("\n".join(lines) + "\n")
    return msg


# -- sending --------------------------------------------------------------------------------


class _Retry(Exception):
    """A failure worth another attempt; the message is already safe to show."""


class _GiveUp(Exception):
    """A refusal another attempt would not change."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirected POST loses its body (or, for 307/308, goes where we did not check)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _describe(exc: BaseException) -> str:
    """What went wrong, from the exception type and OS error text only: exception messages
    of URL libraries like to quote the URL."""
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        return _describe(exc.reason)
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {exc.verify_message}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return type(exc).__name__


def _post_json(url: str, body: dict[str, Any], timeout: float) -> None:
    try:
        check_http_url(url)
    except ValueError as exc:
        raise _GiveUp(f"the URL {exc}") from None
    request = urllib.request.Request(  # noqa: S310 - scheme checked just above
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": _USER_AGENT},
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(65536)
    except urllib.error.HTTPError as exc:
        text = exc.read(200).decode("utf-8", "replace").strip()
        why = f"HTTP {exc.code}" + (f": {text}" if text else "")
        raise (_Retry if exc.code in (408, 429) or exc.code >= 500 else _GiveUp)(why) from None
    except (OSError, http.client.HTTPException) as exc:  # URLError is an OSError
        raise _Retry(_describe(exc)) from None


def _send_email(channel: Email, msg: EmailMessage, password: str | None, timeout: float) -> None:
    context = ssl.create_default_context()
    try:
        if channel.ssl:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                channel.host, channel.effective_port, timeout=timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(channel.host, channel.effective_port, timeout=timeout)
        try:
            if channel.starttls:
                smtp.starttls(context=context)
            if channel.username is not None and password is not None:
                smtp.login(channel.username, password)
            smtp.send_message(msg)
        finally:
            with contextlib.suppress(Exception):
                smtp.quit()
            smtp.close()
    except ssl.SSLError as exc:
        raise _GiveUp(_describe(exc)) from None
    except smtplib.SMTPResponseException as exc:
        text = exc.smtp_error
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        why = f"SMTP {exc.smtp_code}: {text}"
        raise (_Retry if 400 <= exc.smtp_code < 500 else _GiveUp)(why) from None
    except smtplib.SMTPServerDisconnected as exc:
        raise _Retry(f"server disconnected: {exc}") from None
    except smtplib.SMTPException as exc:  # refused recipients, no STARTTLS, no AUTH...
        raise _GiveUp(f"{type(exc).__name__}: {exc}") from None
    except OSError as exc:  # after SMTPException, which is an OSError too
        raise _Retry(_describe(exc)) from None


def _masker(secrets: Mapping[str, str], redact: Callable[[str], str]) -> Callable[[str], str]:
    """Masks every resolved secret, and the path and query of secret URLs (which hold the
    token even when a library quotes only part of the URL), then applies `redact`."""
    values = {v for v in secrets.values() if len(v) >= 4}
    for value in list(values):
        parts = urlsplit(value)
        if parts.scheme and parts.netloc:
            values |= {p for p in (parts.path, parts.query) if len(p) >= 8}
    ordered = sorted(values, key=len, reverse=True)

    def mask(text: str) -> str:
        for value in ordered:
            text = text.replace(value, MASK)
        try:
            return redact(text)
        except Exception:
            return "(message withheld: redaction failed)"

    return mask


class _Job:
    """One channel's delivery, run in its own thread; `attempts` is read when it overruns."""

    def __init__(self, index: int, channel: Channel, event: Event, secrets: Mapping[str, str]):
        self.index = index
        self.channel = channel
        self.name = f"{getattr(channel, 'type', 'channel')}#{index}"
        self.event = event
        self.secrets = secrets
        self.attempts = 0
        self.result: Delivery | None = None

    def secret(self, field: str) -> str:
        value = self.secrets.get(f"notify.{self.index}.{field}")
        if value is None:
            raise _GiveUp(f"secret notify.{self.index}.{field} was not resolved")
        return value

    def prepare(self) -> Callable[[float], None]:
        """Build the payload once; return the attempt, which takes its timeout."""
        ch, event = self.channel, self.event
        if isinstance(ch, Webhook):
            url, body = self.secret("url"), webhook_payload(event)
            return lambda timeout: _post_json(url, body, timeout)
        if isinstance(ch, Slack):
            url = self.secret("webhook_url")
            body = slack_payload(event, channel=ch.channel, username=ch.username)
            return lambda timeout: _post_json(url, body, timeout)
        if isinstance(ch, PagerDuty):
            body = pagerduty_payload(event, self.secret("routing_key"), severity=ch.severity)
            return lambda timeout: _post_json(ch.url, body, timeout)
        if isinstance(ch, Email):
            password = self.secret("password") if ch.password is not None else None
            msg = email_message(event, ch.sender, ch.to)
            msg["Date"] = formatdate(localtime=False, usegmt=True)
            msg["Message-ID"] = make_msgid("deployer", domain=ch.sender.rpartition("@")[2])
            return lambda timeout: _send_email(ch, msg, password, timeout)
        raise _GiveUp(f"unknown channel type {type(ch).__name__}")

    def run(self, until: float) -> None:
        try:
            attempt = self.prepare()
            delay = self.channel.backoff
            while True:
                remaining = until - time.monotonic()
                if remaining <= 0:
                    raise _GiveUp("no time left before the deadline")
                self.attempts += 1
                try:
                    attempt(min(self.channel.timeout, remaining))
                    self.result = Delivery(self.name, True, self.attempts)
                    return
                except _Retry as exc:
                    last = str(exc)
                if self.attempts >= self.channel.retries:
                    raise _GiveUp(last)
                if time.monotonic() + delay >= until:
                    raise _GiveUp(f"{last}; no time left to retry before the deadline")
                time.sleep(delay)
                delay *= 2
        except _GiveUp as exc:
            self.result = Delivery(self.name, False, self.attempts, str(exc))
        except Exception as exc:  # a bug must not become a failed deployment
            self.result = Delivery(self.name, False, self.attempts, _describe(exc))


def notify(
    channels: Sequence[Notification],
    event: Event,
    secrets: Mapping[str, str],
    redact: Callable[[str], str],
    *,
    deadline: float = DEADLINE,
) -> list[Delivery]:
    """Send `event` to the channels that want it; one `Delivery` per channel tried, in
    config order. Returns within `deadline` seconds (plus thread start-up) and never raises;
    channels still trying then are reported failed and left to finish in daemon threads."""
    try:
        until = time.monotonic() + deadline
        mask = _masker(secrets, redact)
        jobs = [
            _Job(i, ch, event, secrets) for i, ch in enumerate(channels) if event.kind in ch.events
        ]
        threads = [
            threading.Thread(target=job.run, args=(until,), name=f"notify-{job.name}", daemon=True)
            for job in jobs
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, until - time.monotonic()))
        deliveries = []
        for job in jobs:
            result = job.result or Delivery(
                job.name, False, job.attempts, f"no result within the {deadline:g}s deadline"
            )
            if result.error is not None:
                result = Delivery(result.channel, result.ok, result.attempts, mask(result.error))
                log.warning(
                    "notification %s failed after %d attempt(s): %s",
                    result.channel,
                    result.attempts,
                    result.error,
                )
            deliveries.append(result)
        return deliveries
    except Exception as exc:  # pragma: no cover - defensive: notify must never raise
        log.warning("notifications not sent: %s", type(exc).__name__)
        return []
