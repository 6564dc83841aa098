#!/usr/bin/env python3
"""An HTTP app that binds its own port (PORT) and fails the way FAIL_MODE says, for the
failure analysis: `crash` (exits 1 at start, a traceback first), `oom` (allocates far more
than its MemoryMax), `port` (nothing special: another process holds the port), `hang`
(/healthz never answers). Without FAIL_MODE it is healthy. Stdlib only: it runs on the lab
hosts' own python3."""

from __future__ import annotations

import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from socketserver import ThreadingMixIn

MODE = os.environ.get("FAIL_MODE", "")

if MODE == "crash":
    print("Traceback (most recent call last):", flush=True)
    print("KeyError: 'SETTING_THAT_IS_MISSING'", flush=True)
    sys.exit(1)
if MODE == "oom":
    hog = [bytearray(16 << 20) for _ in range(64)]  # 1 GiB, far past MemoryMax


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/healthz" and MODE == "hang":
            time.sleep(60)
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class Server(ThreadingMixIn, HTTPServer):
    daemon_threads = True


Server(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
