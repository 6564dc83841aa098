#!/usr/bin/env python3
"""swarm-hello web: a tiny HTTP service for the Swarm target (stdlib only).

GET /         -> "hello from <version> on <hostname>"
GET /healthz  -> 200 "ok"

The version comes from $APP_VERSION (deployer sets it on the service). On SIGTERM it stops
listening at once (a load balancer in front moves on to another task), lets requests in
flight finish, and exits 0 well within the stop grace period.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BROKEN = False  # broken/app.py sets this to True: /healthz fails, for the rollback demo
VERSION = os.environ.get("APP_VERSION", "dev")
GREETING = os.environ.get("GREETING", "hello")
HOST = socket.gethostname()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/healthz":
            code, body = (500, "broken\n") if BROKEN else (200, "ok\n")
        else:
            code, body = 200, f"{GREETING} from {VERSION} on {HOST}\n"
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # one line per request would cost more CPU than the request


def main() -> None:
    server = ThreadingHTTPServer(("", int(os.environ.get("PORT", "8000"))), Handler)
    server.daemon_threads = False  # server_close() joins requests in flight
    server.block_on_close = True

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    print(f"web {VERSION} serving on {HOST}:{server.server_address[1]}", flush=True)
    server.serve_forever(poll_interval=0.1)
    server.server_close()


if __name__ == "__main__":
    main()
