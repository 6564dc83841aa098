#!/usr/bin/env python3
"""Fault-suite app: examples/hello's contract (GET / and /healthz, socket activation),
with faults switched on by environment variables (service.env in deploy.yml):

UNHEALTHY_ON=lab3   /healthz answers 500 on the host with that name, 200 elsewhere.
HEALTHY_AFTER=8     /healthz answers 503 for the first 8 seconds after start (a slow start
                    that keeps a deployment busy in its health checks).
CRASH_AFTER=6       healthy at first, then exits 1 six seconds after its first start, and
                    exits 1 at every later start (a marker in /tmp named after the release
                    directory, its working directory, remembers the crash): systemd restarts
                    and socket activation cannot bring it back, only a rollback can.
HEALTH_BODY_FILE=f  /healthz answers 200 with the content of file f of the release (when
                    it exists): a host whose health output is whatever its release says.

Stdlib only: it runs on the lab hosts' own python3.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from socketserver import ThreadingMixIn

# The release directory is read-only to the service: the marker lives in /tmp.
CRASH_MARKER = "/tmp/faulty-crashed" + os.getcwd().replace("/", "-")
STARTED = time.monotonic()


def read_version() -> str:
    try:
        with open(os.path.join(".deployer", "meta.json"), encoding="utf-8") as handle:
            return str(json.load(handle).get("version") or "dev")
    except (OSError, ValueError):
        return "dev"


VERSION = read_version()
UNHEALTHY = socket.gethostname() == os.environ.get("UNHEALTHY_ON", "")
HEALTHY_AFTER = float(os.environ.get("HEALTHY_AFTER") or "0")


def health_body() -> str | None:
    name = os.environ.get("HEALTH_BODY_FILE")
    if not name or not os.path.exists(name):
        return None
    with open(name, encoding="utf-8") as handle:
        return handle.read()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/healthz":
            if health_body() is not None:
                code, body = 200, str(health_body())
            elif UNHEALTHY:
                code, body = 500, "unhealthy on this host\n"
            elif time.monotonic() - STARTED < HEALTHY_AFTER:
                code, body = 503, "starting\n"
            else:
                code, body = 200, "ok\n"
        elif self.path == "/":
            code, body = 200, f"hello from {VERSION}\n"
        else:
            code, body = 404, "not found\n"
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


class Server(ThreadingMixIn, HTTPServer):
    daemon_threads = True


def make_server() -> Server:
    if os.environ.get("LISTEN_PID") == str(os.getpid()):  # systemd socket activation
        inherited = socket.socket(fileno=3)
        server = Server(inherited.getsockname()[:2], Handler, bind_and_activate=False)
        server.socket.close()
        server.socket = inherited
        return server
    return Server(("", int(os.environ.get("PORT") or "8000")), Handler)


def crash_later(seconds: float) -> None:
    time.sleep(seconds)
    with open(CRASH_MARKER, "w", encoding="utf-8") as handle:
        handle.write(f"crashed at {time.time():.0f}\n")
    sys.stderr.write(f"faulty {VERSION}: crashing now\n")
    sys.stderr.flush()
    os._exit(1)


def main() -> int:
    if os.environ.get("CRASH_AFTER"):
        if os.path.exists(CRASH_MARKER):
            sys.stderr.write(f"faulty {VERSION}: crashed before, exiting\n")
            return 1
        delay = float(os.environ["CRASH_AFTER"])
        threading.Thread(target=crash_later, args=(delay,), daemon=True).start()
    server = make_server()
    sys.stderr.write(f"faulty {VERSION} serving (unhealthy here: {UNHEALTHY})\n")
    sys.stderr.flush()
    server.serve_forever(poll_interval=0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
