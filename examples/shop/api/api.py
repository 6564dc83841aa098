#!/usr/bin/env python3
"""shop's API (stdlib only), behind the edge proxy under /api.

GET /api/healthz -> 200 "ok" (500 "broken" when a file named BROKEN sits next to this one:
                    how the demo and the tests make a broken release)
GET /api/version -> the release's version (from ../.deployer/meta.json)
GET /api/items   -> a JSON list of items

Takes the listening socket systemd hands it (socket activation: fd 3, one per instance),
else binds $PORT. On SIGTERM it stops accepting and lets requests in flight finish.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from socketserver import ThreadingMixIn

HERE = os.path.dirname(os.path.abspath(__file__))
BROKEN = os.path.exists(os.path.join(HERE, "BROKEN"))
ITEMS = [{"name": "tea", "price": "3.50"}, {"name": "coffee", "price": "4.00"}]


def read_version() -> str:
    try:
        with open(os.path.join(HERE, "..", ".deployer", "meta.json"), encoding="utf-8") as f:
            return str(json.load(f).get("version") or "dev")
    except (OSError, ValueError, AttributeError):
        return "dev"


VERSION = read_version()


class Handler(BaseHTTPRequestHandler):
    server_version = "shop-api/1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        kind = "text/plain; charset=utf-8"
        if path == "/api/healthz":
            code, body = (500, "broken\n") if BROKEN else (200, "ok\n")
        elif path == "/api/version":
            code, body = 200, f"{VERSION}\n"
        elif path == "/api/items":
            code, body, kind = 200, json.dumps(ITEMS), "application/json"
        else:
            code, body = 404, "not found\n"
        data = body.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        sys.stderr.write("%s %s\n" % (self.address_string(), format % args))


class Server(ThreadingMixIn, HTTPServer):
    daemon_threads = False  # server_close() waits for requests in flight
    block_on_close = True
    allow_reuse_address = True


def make_server() -> Server:
    if os.environ.get("LISTEN_PID") == str(os.getpid()) and os.environ.get("LISTEN_FDS"):
        inherited = socket.socket(fileno=3)
        server = Server(inherited.getsockname()[:2], Handler, bind_and_activate=False)
        server.socket.close()
        server.socket = inherited
        return server
    return Server(("", int(os.environ.get("PORT") or "8000")), Handler)


def main() -> int:
    server = make_server()

    def stop(_signum: int, _frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    sys.stderr.write(f"shop api {VERSION} serving on {server.socket.getsockname()}\n")
    server.serve_forever(poll_interval=0.05)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
