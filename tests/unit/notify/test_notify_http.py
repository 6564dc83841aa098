"""HTTP deliveries (webhook, Slack, PagerDuty) against real local sockets: no network mocks."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from deployer.config.notify import EventKind, Notification, PagerDuty, Slack, Webhook
from deployer.notify import Event, notify, webhook_payload
from deployer.secrets import MASK

TOKEN = "T0K3N-b7c1d9e2f4"  # the secret part of the webhook URL
HOOK_PATH = f"/services/{TOKEN}"


def make_event(kind: EventKind = "failure") -> Event:
    return Event(
        kind=kind,
        app="hello",
        environment="prod",
        version="1.2.0",
        previous_version="1.1.0",
        deployment_id=7,
        status={"start": "RUNNING", "success": "SUCCEEDED", "failure": "FAILED"}.get(
            kind, "ROLLED_BACK"
        ),
        reason="" if kind in ("start", "success") else "health check failed on web-2",
        hosts=(("web-1", "changed", ""), ("web-2", "failed", "HTTP 503")),
        started_at=datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC),
        seconds=12.5,
        user="alice",
        control_host="ctl-1",
    )


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers POSTs with the scripted statuses (then 200) and records what arrived."""

    statuses: list[int]
    echo_path: bool = False
    requests: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def receiver() -> Iterator[Any]:
    servers: list[ThreadingHTTPServer] = []

    def start(*statuses: int, echo_path: bool = False) -> Receiver:
        state = Receiver(list(statuses), echo_path)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                state.requests.append(Received(self.path, dict(self.headers), body))
                status = state.statuses.pop(0) if state.statuses else 200
                reply = f"no such hook {self.path}" if state.echo_path else "ok"
                self.send_response(status)
                if status in (301, 302, 307):
                    self.send_header("Location", f"{state.base}/elsewhere")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply.encode())

            def log_message(self, *args: object) -> None:
                pass

        state.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=state.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        servers.append(state.server)
        return state

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


@pytest.fixture
def trickle_port() -> Iterator[int]:
    """A port that answers one header byte every 0.1 s, forever: no single read times out."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            while not stop.wait(0.1):
                try:
                    conn.sendall(b"X")
                except OSError:
                    return

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn = listener.accept()[0]
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    listener.close()


@pytest.fixture
def closed_port() -> int:
    sock = socket.create_server(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


def webhook(**extra: Any) -> Webhook:
    return Webhook.model_validate(
        {"type": "webhook", "url": {"from_env": "HOOK"}, "backoff": 0.05, **extra}
    )


def no_redact(text: str) -> str:
    return text


def test_webhook_json_arrives(receiver: Any) -> None:
    rx = receiver()
    event = make_event("success")
    (delivery,) = notify([webhook()], event, {"notify.0.url": rx.base + HOOK_PATH}, no_redact)
    assert (delivery.channel, delivery.ok, delivery.attempts, delivery.error) == (
        "webhook#0",
        True,
        1,
        None,
    )
    (request,) = rx.requests
    assert request.path == HOOK_PATH
    assert request.headers["Content-Type"] == "application/json"
    assert request.json() == webhook_payload(event)
    assert request.json()["event"] == "success"


def test_slack_and_pagerduty_formats_arrive(receiver: Any) -> None:
    rx = receiver()
    slack = Slack.model_validate(
        {"type": "slack", "webhook_url": {"vault": "slack_hook"}, "channel": "#deploys"}
    )
    pager = PagerDuty.model_validate(
        {
            "type": "pagerduty",
            "routing_key": {"from_env": "PD_KEY"},
            "url": rx.base + "/v2/enqueue",
            "severity": "warning",
        }
    )
    secrets = {"notify.0.webhook_url": rx.base + HOOK_PATH, "notify.1.routing_key": "PDKEY-123"}
    deliveries = notify([slack, pager], make_event("failure"), secrets, no_redact)
    assert [(d.channel, d.ok) for d in deliveries] == [("slack#0", True), ("pagerduty#1", True)]
    by_path = {r.path: r.json() for r in rx.requests}
    slack_body = by_path[HOOK_PATH]
    assert slack_body["channel"] == "#deploys"
    assert "FAILED" in slack_body["text"]
    assert slack_body["attachments"][0]["color"] == "#a30200"
    pd_body = by_path["/v2/enqueue"]
    assert pd_body["routing_key"] == "PDKEY-123"
    assert pd_body["event_action"] == "trigger"
    assert pd_body["dedup_key"] == "deployer/hello/prod/1.2.0"
    assert pd_body["payload"]["severity"] == "warning"
    assert pd_body["payload"]["group"] == "prod"


def test_event_filters_choose_channels(receiver: Any) -> None:
    rx = receiver()
    pager = PagerDuty.model_validate(
        {"type": "pagerduty", "routing_key": {"from_env": "K"}, "url": rx.base + "/pd"}
    )
    only_failures = webhook(events=["failure"])
    channels: list[Notification] = [pager, only_failures, webhook()]
    secrets = {
        "notify.0.routing_key": "KEY-1",
        "notify.1.url": rx.base + HOOK_PATH,
        "notify.2.url": rx.base + "/all",
    }
    for kind in ("start", "success"):
        deliveries = notify(channels, make_event(kind), secrets, no_redact)
        assert [d.channel for d in deliveries] == ["webhook#2"]
    deliveries = notify(channels, make_event("rollback"), secrets, no_redact)
    assert [d.channel for d in deliveries] == ["pagerduty#0", "webhook#2"]
    deliveries = notify(channels, make_event("failure"), secrets, no_redact)
    assert [d.channel for d in deliveries] == ["pagerduty#0", "webhook#1", "webhook#2"]
    assert all(d.ok for d in deliveries)


def test_server_errors_are_retried_until_delivered(receiver: Any) -> None:
    rx = receiver(500, 500)
    (delivery,) = notify([webhook()], make_event(), {"notify.0.url": rx.base + "/h"}, no_redact)
    assert (delivery.ok, delivery.attempts) == (True, 3)
    assert len(rx.requests) == 3
    assert rx.requests[0].body == rx.requests[2].body


def test_retries_are_bounded(receiver: Any) -> None:
    rx = receiver(503, 503, 503, 503)
    channel = webhook(retries=2)
    (delivery,) = notify([channel], make_event(), {"notify.0.url": rx.base + "/h"}, no_redact)
    assert (delivery.ok, delivery.attempts) == (False, 2)
    assert delivery.error is not None
    assert delivery.error.startswith("HTTP 503")
    assert len(rx.requests) == 2


def test_backoff_doubles_between_attempts(receiver: Any) -> None:
    rx = receiver(500, 500)
    started = time.monotonic()
    notify([webhook(backoff=0.2)], make_event(), {"notify.0.url": rx.base + "/h"}, no_redact)
    assert time.monotonic() - started >= 0.6  # 0.2 + 0.4


@pytest.mark.parametrize("status", [400, 404, 302])
def test_client_errors_and_redirects_are_not_retried(receiver: Any, status: int) -> None:
    rx = receiver(status)
    (delivery,) = notify([webhook()], make_event(), {"notify.0.url": rx.base + "/h"}, no_redact)
    assert (delivery.ok, delivery.attempts) == (False, 1)
    assert delivery.error is not None
    assert delivery.error.startswith(f"HTTP {status}")
    assert [r.path for r in rx.requests] == ["/h"]  # the redirect was not followed


def test_silent_receiver_is_bounded_by_the_timeout(silent_port: int) -> None:
    channel = webhook(timeout=0.3, retries=2, backoff=0.1)
    url = f"http://127.0.0.1:{silent_port}/h"
    started = time.monotonic()
    (delivery,) = notify([channel], make_event(), {"notify.0.url": url}, no_redact, deadline=10)
    took = time.monotonic() - started
    assert (delivery.ok, delivery.attempts) == (False, 2)
    assert delivery.error == "timed out"
    assert 0.6 <= took < 2.0


def test_silent_receiver_is_bounded_by_the_deadline(silent_port: int, receiver: Any) -> None:
    rx = receiver()
    slow = webhook(timeout=30, retries=3)
    url = f"http://127.0.0.1:{silent_port}/h"
    secrets = {"notify.0.url": url, "notify.1.url": rx.base + "/fast"}
    started = time.monotonic()
    deliveries = notify([slow, webhook()], make_event(), secrets, no_redact, deadline=1.0)
    took = time.monotonic() - started
    assert took < 1.6
    assert [(d.channel, d.ok) for d in deliveries] == [("webhook#0", False), ("webhook#1", True)]
    assert deliveries[0].attempts == 1


def test_trickling_receiver_is_cut_off_at_the_deadline(trickle_port: int) -> None:
    url = f"http://127.0.0.1:{trickle_port}/h"
    started = time.monotonic()
    (delivery,) = notify(
        [webhook(timeout=0.5)], make_event(), {"notify.0.url": url}, no_redact, deadline=1.0
    )
    assert time.monotonic() - started < 1.5
    assert (delivery.ok, delivery.attempts) == (False, 1)
    assert delivery.error == "no result within the 1s deadline"


def test_closed_port_fails_fast(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/h"
    started = time.monotonic()
    (delivery,) = notify([webhook()], make_event(), {"notify.0.url": url}, no_redact)
    assert time.monotonic() - started < 2.0
    assert (delivery.ok, delivery.attempts) == (False, 3)
    assert delivery.error == "connection refused"


def test_unresolved_secret_is_a_failed_delivery_not_an_exception() -> None:
    (delivery,) = notify([webhook()], make_event(), {}, no_redact)
    assert (delivery.ok, delivery.attempts) == (False, 0)
    assert delivery.error == "secret notify.0.url was not resolved"


def test_non_http_secret_url_is_refused() -> None:
    url = f"file:///etc/passwd?{TOKEN}"
    (delivery,) = notify([webhook()], make_event(), {"notify.0.url": url}, no_redact)
    assert (delivery.ok, delivery.attempts) == (False, 1)
    assert delivery.error is not None
    assert "http" in delivery.error
    assert TOKEN not in delivery.error


def test_secret_url_never_appears_in_errors_or_logs(
    receiver: Any, closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    rx = receiver(404, echo_path=True)  # the error body quotes the secret path back
    channels = [webhook(), webhook(), webhook(), webhook()]
    secrets = {
        "notify.0.url": rx.base + HOOK_PATH,
        "notify.1.url": f"http://127.0.0.1:{closed_port}{HOOK_PATH}",
        "notify.2.url": f"ftp://127.0.0.1{HOOK_PATH}",
        "notify.3.url": f"http://127.0.0.1:{closed_port}:99{HOOK_PATH}",  # unparsable port
    }
    caplog.set_level(logging.DEBUG)
    deliveries = notify(channels, make_event(), secrets, no_redact)
    assert [d.ok for d in deliveries] == [False] * 4
    errors = " | ".join(d.error or "" for d in deliveries)
    assert f"HTTP 404: no such hook {MASK}" in errors
    for text in (errors, caplog.text):
        assert TOKEN not in text
        assert HOOK_PATH not in text
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 4


def test_project_redactor_applies_to_errors(
    receiver: Any, caplog: pytest.LogCaptureFixture
) -> None:
    rx = receiver(404, echo_path=True)
    url = rx.base + "/h-bob"  # a path this short is not masked as a part of the secret URL
    caplog.set_level(logging.WARNING)
    (delivery,) = notify(
        [webhook()], make_event(), {"notify.0.url": url}, lambda t: t.replace("bob", "***")
    )
    assert delivery.error == "HTTP 404: no such hook /h-***"
    assert "bob" not in caplog.text


def test_a_failing_redactor_withholds_the_message(receiver: Any) -> None:
    rx = receiver(500)

    def broken(text: str) -> str:
        raise RuntimeError(text)

    (delivery,) = notify([webhook(retries=1)], make_event(), {"notify.0.url": rx.base}, broken)
    assert delivery.error == "(message withheld: redaction failed)"
