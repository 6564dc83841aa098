"""deployer_preflight reads the edge proxy's certificate with the real openssl: its expiry
in ISO 8601 UTC and its issuer; a missing or unreadable file is an error, never a date."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "collections"))

from ansible_collections.deployer.core.plugins.plugin_utils import lean
from test_lean import run_host


def _preflight(tmp_path: Path, certificate: str) -> dict[str, Any]:
    source = lean.module_spec("deployer_preflight")[0]
    params = {"deploy_to": str(tmp_path / "srv"), "app": "x", "version": "", "sha256": ""}
    params.update(required_bytes=0, certificate=certificate)
    rc, result = run_host("deployer_preflight", source, params)
    assert rc == 0, result
    return result["deployer"]["certificate"]


def test_the_expiry_and_issuer_of_a_real_certificate(tmp_path: Path) -> None:
    cert = tmp_path / "fullchain.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
         "-subj", "/CN=deployer test CA", "-keyout", str(tmp_path / "k.pem"), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    expected = subprocess.run(
        ["openssl", "x509", "-noout", "-enddate", "-dateopt", "iso_8601", "-in", str(cert)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    info = _preflight(tmp_path, str(cert))
    assert info["error"] is None
    # openssl's own ISO rendering: "notAfter=2027-01-02 03:04:05Z"
    assert info["not_after"] == expected.split("=", 1)[1].strip().replace(" ", "T")
    assert info["issuer"] == "CN=deployer test CA"


def test_a_missing_or_garbled_certificate_is_an_error(tmp_path: Path) -> None:
    missing = _preflight(tmp_path, str(tmp_path / "nothing.pem"))
    assert missing["not_after"] is None
    assert "no certificate at" in missing["error"]
    garbled = tmp_path / "garbled.pem"
    garbled.write_text("notAfter=Jan  1 00:00:00 2999 GMT\n")  # text, not a certificate
    info = _preflight(tmp_path, str(garbled))
    assert info["not_after"] is None
    assert "could not read" in info["error"]
