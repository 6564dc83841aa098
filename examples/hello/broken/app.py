#!/usr/bin/env python3
"""hello: the example application deployer ships (stdlib only).

GET /         -> "hello from <version>\n"
GET /healthz  -> 200 "ok"
GET /metrics  -> Prometheus text: hello_requests_total{code=...}, hello_request_duration_seconds
GET /slow?seconds=N -> answers after N seconds (at most 30): an in-flight request for
                       graceful-restart tests

The version comes from ./.deployer/meta.json (relative to the working directory, which
systemd sets to <deploy_to>/current), else $APP_VERSION, else "dev".

Listens on the socket systemd passes (LISTEN_FDS/LISTEN_PID, fd 3) when there is one,
else binds $PORT (default 8000). On SIGTERM it stops accepting, lets in-flight requests
finish and exits 0; with socket activation, new connections wait in the socket's backlog
for the next instance.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from socketserver import ThreadingMixIn
from urllib.parse import parse_qs, urlparse

BROKEN = True  # this is the broken variant: /healthz answers 500
SD_LISTEN_FDS_START = 3
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def read_version() -> str:
    try:
        with open(os.path.join(".deployer", "meta.json"), encoding="utf-8") as handle:
            version = json.load(handle).get("version")
        if version:
            return str(version)
    except (OSError, ValueError, AttributeError):
        pass
    return os.environ.get("APP_VERSION") or "dev"


class Metrics:
    """A request counter by status code and a latency histogram, thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_code: dict[int, int] = {}
        self.bucket_counts = [0] * len(BUCKETS)
        self.count = 0
        self.total = 0.0

    def observe(self, code: int, seconds: float) -> None:
        with self.lock:
            self.by_code[code] = self.by_code.get(code, 0) + 1
            self.count += 1
            self.total += seconds
            for index, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self.bucket_counts[index] += 1

    def render(self) -> str:
        with self.lock:
            lines = [
                "# HELP hello_requests_total HTTP requests served, by status code.",
                "# TYPE hello_requests_total counter",
            ]
            lines += [f'hello_requests_total{{code="{code}"}} {n}'
                      for code, n in sorted(self.by_code.items())]
            lines += [
                "# HELP hello_request_duration_seconds Time to answer a request.",
                "# TYPE hello_request_duration_seconds histogram",
            ]
            lines += [f'hello_request_duration_seconds_bucket{{le="{bound}"}} {n}'
                      for bound, n in zip(BUCKETS, self.bucket_counts)]
            lines += [
                f'hello_request_duration_seconds_bucket{{le="+Inf"}} {self.count}',
                f"hello_request_duration_seconds_sum {self.total:.6f}",
                f"hello_request_duration_seconds_count {self.count}",
            ]
        return "\n".join(lines) + "\n"


METRICS = Metrics()
VERSION = read_version()


class Handler(BaseHTTPRequestHandler):
    server_version = "hello/1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        started = time.monotonic()
        url = urlparse(self.path)
        if url.path == "/":
            code, body, kind = 200, f"hello from {VERSION}\n", "text/plain; charset=utf-8"
        elif url.path == "/healthz":
            code, body = (500, "broken\n") if BROKEN else (200, "ok\n")
            kind = "text/plain; charset=utf-8"
        elif url.path == "/metrics":
            code, body, kind = 200, METRICS.render(), "text/plain; version=0.0.4"
        elif url.path == "/slow":
            try:
                seconds = float(parse_qs(url.query).get("seconds", ["1"])[0])
            except ValueError:
                seconds = 1.0
            time.sleep(min(max(seconds, 0.0), 30.0))
            code, body, kind = 200, f"slow hello from {VERSION}\n", "text/plain; charset=utf-8"
        else:
            code, body, kind = 404, "not found\n", "text/plain; charset=utf-8"
        data = body.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        METRICS.observe(code, time.monotonic() - started)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        sys.stderr.write("%s %s\n" % (self.address_string(), format % args))


class Server(ThreadingMixIn, HTTPServer):
    daemon_threads = False  # server_close() waits for in-flight requests
    block_on_close = True
    allow_reuse_address = True


def systemd_socket() -> socket.socket | None:
    """The listening socket systemd passed us, if LISTEN_PID/LISTEN_FDS say so."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    if int(os.environ.get("LISTEN_FDS") or "0") < 1:
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    return socket.socket(fileno=SD_LISTEN_FDS_START)


def make_server() -> Server:
    inherited = systemd_socket()
    if inherited is None:
        port = int(os.environ.get("PORT") or "8000")
        return Server(("", port), Handler)
    server = Server(inherited.getsockname()[:2], Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = inherited
    server.address_family = inherited.family
    return server


def main() -> int:
    server = make_server()

    def stop(signum: int, _frame: object) -> None:
        # shutdown() waits for serve_forever() to return, so it cannot run in this thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.stderr.write(f"hello {VERSION} serving on {server.socket.getsockname()}\n")
    sys.stderr.flush()
    # shutdown() is noticed within a poll: a restart waits at most 50 ms for this instance
    server.serve_forever(poll_interval=0.05)
    server.server_close()  # joins the request threads: in-flight requests finish
    sys.stderr.write("hello: stopped cleanly\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
