"""E-mail deliveries against a real local SMTP server (aiosmtpd): plain, STARTTLS and SMTPS."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from deployer.config.notify import Email
from deployer.notify import Event, notify

PASSWORD = "smtp-pa55w0rd-9d2e"


def make_event() -> Event:
    return Event(
        kind="failure",
        app="hello",
        environment="prod",
        version="1.2.0",
        previous_version="1.1.0",
        deployment_id=7,
        status="FAILED",
        reason="health check failed on web-2",
        hosts=(("web-1", "changed", ""), ("web-2", "failed", "HTTP 503")),
        started_at=dt.datetime(2025, 3, 14, 9, 26, 53, tzinfo=dt.UTC),
        seconds=12.5,
        user="alice",
        control_host="ctl-1",
    )


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    message: EmailMessage
    tls: bool
    login: str | None


@dataclass
class Inbox:
    """aiosmtpd handler: refuses recipients named nobody@, keeps every accepted message."""

    mails: list[Mail] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data.decode() if isinstance(session.auth_data, bytes) else None
        self.mails.append(
            Mail(
                envelope.mail_from or "",
                list(envelope.rcpt_tos),
                message,
                server.transport is not None
                and server.transport.get_extra_info("ssl_object") is not None,
                login,
            )
        )
        return "250 Message accepted"


def _authenticate(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data == (b"deployer", PASSWORD.encode())
    return AuthResult(success=ok, handled=False, auth_data=data.login if ok else None)


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., tuple[Inbox, int]]]:
    controllers: list[Controller] = []

    def start(**kwargs: Any) -> tuple[Inbox, int]:
        inbox, port = Inbox(), _free_port()
        controller = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
        controller.start()
        controllers.append(controller)
        return inbox, port

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: (cert, key) PEM files."""
    pytest.importorskip(
        "cryptography", reason="the STARTTLS/SMTPS cases need `cryptography` for a test cert"
    )
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "deployer test SMTP")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture
def trust(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the test certificate the client's only trusted CA (OpenSSL reads SSL_CERT_FILE)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    monkeypatch.setenv("SSL_CERT_DIR", str(certificate[0].parent / "none"))


def channel(port: int, **extra: Any) -> Email:
    return Email.model_validate(
        {
            "type": "email",
            "host": "127.0.0.1",
            "port": port,
            "from": "deployer@example.com",
            "to": ["ops@example.com", "dev@example.com"],
            "timeout": 5,
            "backoff": 0.05,
            **extra,
        }
    )


def no_redact(text: str) -> str:
    return text


def test_plain_smtp_mail_arrives(smtp_server: Callable[..., tuple[Inbox, int]]) -> None:
    inbox, port = smtp_server()
    (delivery,) = notify([channel(port)], make_event(), {}, no_redact)
    assert (delivery.channel, delivery.ok, delivery.attempts) == ("email#0", True, 1)
    (mail,) = inbox.mails
    assert mail.sender == "deployer@example.com"
    assert mail.recipients == ["ops@example.com", "dev@example.com"]
    assert mail.message["Subject"] == "[deployer] hello prod 1.2.0: FAILED"
    assert mail.message["Date"] is not None
    assert mail.message["Message-ID"].endswith("@example.com>")
    body = mail.message.get_body()
    assert body is not None
    assert "health check failed on web-2" in body.get_content()
    assert not mail.tls


def test_starttls_with_login(
    smtp_server: Callable[..., tuple[Inbox, int]], server_tls: ssl.SSLContext, trust: None
) -> None:
    inbox, port = smtp_server(
        tls_context=server_tls,
        require_starttls=True,
        authenticator=_authenticate,
        auth_require_tls=True,
    )
    mail_channel = channel(
        port, starttls=True, username="deployer", password={"from_env": "SMTP_PASSWORD"}
    )
    secrets = {"notify.0.password": PASSWORD}
    (delivery,) = notify([mail_channel], make_event(), secrets, no_redact)
    assert (delivery.ok, delivery.error) == (True, None)
    (mail,) = inbox.mails
    assert (mail.tls, mail.login) == (True, "deployer")
    assert mail.message["Subject"] == "[deployer] hello prod 1.2.0: FAILED"


def test_smtps(
    smtp_server: Callable[..., tuple[Inbox, int]], server_tls: ssl.SSLContext, trust: None
) -> None:
    inbox, port = smtp_server(ssl_context=server_tls)
    (delivery,) = notify([channel(port, ssl=True)], make_event(), {}, no_redact)
    assert (delivery.ok, delivery.error) == (True, None)
    assert [m.tls for m in inbox.mails] == [True]


def test_untrusted_certificate_is_refused_without_retry(
    smtp_server: Callable[..., tuple[Inbox, int]],
    server_tls: ssl.SSLContext,
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0].parent / "missing.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(certificate[0].parent / "none"))
    inbox, port = smtp_server(tls_context=server_tls, require_starttls=True)
    (delivery,) = notify([channel(port, starttls=True)], make_event(), {}, no_redact)
    assert (delivery.ok, delivery.attempts) == (False, 1)
    assert delivery.error is not None
    assert delivery.error.startswith("TLS certificate not trusted")
    assert inbox.mails == []


def test_wrong_password_is_not_retried_and_not_shown(
    smtp_server: Callable[..., tuple[Inbox, int]],
    server_tls: ssl.SSLContext,
    trust: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, port = smtp_server(tls_context=server_tls, authenticator=_authenticate)
    wrong = "not-the-" + PASSWORD
    mail_channel = channel(port, starttls=True, username="deployer", password={"vault": "pw"})
    caplog.set_level(logging.WARNING)
    (delivery,) = notify([mail_channel], make_event(), {"notify.0.password": wrong}, no_redact)
    assert (delivery.ok, delivery.attempts) == (False, 1)
    assert delivery.error is not None
    assert delivery.error.startswith("SMTP 535")
    assert wrong not in caplog.text
    assert "email#0" in caplog.text


def test_refused_recipient_is_not_retried(smtp_server: Callable[..., tuple[Inbox, int]]) -> None:
    inbox, port = smtp_server()
    (delivery,) = notify([channel(port, to=["nobody@example.com"])], make_event(), {}, no_redact)
    assert (delivery.ok, delivery.attempts) == (False, 1)
    assert delivery.error is not None
    assert "SMTPRecipientsRefused" in delivery.error
    assert inbox.mails == []


def test_no_server_is_retried_then_reported() -> None:
    (delivery,) = notify([channel(_free_port())], make_event(), {}, no_redact)
    assert (delivery.ok, delivery.attempts, delivery.error) == (False, 3, "connection refused")
