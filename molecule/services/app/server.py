"""The `api` service of the services scenario: GET /healthz -> ok, GET / -> who answers.

Socket-activated (the socket systemd passes as fd 3) or, without one, binding $PORT."""

import os
import socket
from http.server import BaseHTTPRequestHandler, HTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "..", "VERSION"), encoding="utf-8") as handle:
    VERSION = handle.read().strip()
if VERSION == "v4":
    raise SystemExit(f"api {VERSION} cannot start: no database configured")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        port = self.server.socket.getsockname()[1]
        body = "ok" if self.path == "/healthz" else f"api {VERSION} {HERE} {port}"
        data = body.encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args):
        pass


if os.environ.get("LISTEN_FDS"):
    server = HTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
    server.socket = socket.socket(fileno=3)
else:
    server = HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
server.serve_forever()
