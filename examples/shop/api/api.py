#!/usr/bin/env python3
"""shop's API (stdlib only), behind the edge proxy under /api.

GET /api/healthz -> 200 "ok" when the database and the cache answer, 503 naming the one
                    that does not (500 "broken" when a file named BROKEN sits next to this
                    one: how the demo and the tests make a broken release)
GET /api/version -> the release's version (from ../.deployer/meta.json)
GET /api/items   -> the items table as a JSON list (every column the migrations made)
GET /api/schema  -> the database's migration revision (alembic's)
GET /api/visits  -> a counter kept in the cache

It reads DATABASE_URL (PostgreSQL, through Debian's psycopg2) and REDIS_URL (spoken to
with the stdlib: RESP over a socket), which deployer puts in its environment file because
deploy.yml says it uses the database and the cache. The schema is alembic's (migrations/),
brought up to date by the before_switch hook before any host switches.

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
from urllib.parse import urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
BROKEN = os.path.exists(os.path.join(HERE, "BROKEN"))


def read_version() -> str:
    try:
        with open(os.path.join(HERE, "..", ".deployer", "meta.json"), encoding="utf-8") as f:
            return str(json.load(f).get("version") or "dev")
    except (OSError, ValueError, AttributeError):
        return "dev"


VERSION = read_version()


def query(sql: str) -> list[dict[str, object]]:
    import psycopg2  # Debian's python3-psycopg2

    with psycopg2.connect(os.environ["DATABASE_URL"], connect_timeout=2) as conn:
        with conn.cursor() as cur:
            cur.execute(sql)
            names = [c.name for c in cur.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def redis(*words: str) -> bytes:
    """One command to the cache (RESP), after AUTH with the URL's password."""
    url = urlsplit(os.environ["REDIS_URL"])
    with socket.create_connection((url.hostname, url.port or 6379), timeout=2) as conn:
        reader = conn.makefile("rb")
        for command in (("AUTH", url.password or ""), words):
            conn.sendall(
                f"*{len(command)}\r\n".encode()
                + b"".join(f"${len(w.encode())}\r\n{w}\r\n".encode() for w in command)
            )
            line = reader.readline()
            if line.startswith(b"-"):
                raise OSError(line[1:].strip().decode())
        return line[1:].strip()


def health() -> tuple[int, str]:
    if BROKEN:
        return 500, "broken\n"
    try:
        query("SELECT 1 AS up")
    except Exception as exc:  # noqa: BLE001 - any failure is "the database is down"
        return 503, f"database: {type(exc).__name__}\n"
    try:
        redis("PING")
    except OSError as exc:
        return 503, f"cache: {type(exc).__name__}\n"
    return 200, "ok\n"


class Handler(BaseHTTPRequestHandler):
    server_version = "shop-api/1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        kind = "text/plain; charset=utf-8"
        if path == "/api/healthz":
            code, body = health()
        elif path == "/api/version":
            code, body = 200, f"{VERSION}\n"
        elif path == "/api/items":
            rows = query("SELECT * FROM items ORDER BY id")
            code, body, kind = 200, json.dumps(rows, default=str), "application/json"
        elif path == "/api/schema":
            code, body = 200, f"{query('SELECT version_num FROM alembic_version')[0]['version_num']}\n"
        elif path == "/api/visits":
            code, body = 200, f"{int(redis('INCR', 'shop:visits'))}\n"
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
