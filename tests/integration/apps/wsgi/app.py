"""A small WSGI app for Debian's gunicorn: GET / says the release's version, /healthz
answers 500 when the release holds a file named BROKEN."""

import json
import os


def _version():
    try:
        with open(os.path.join(".deployer", "meta.json"), encoding="utf-8") as handle:
            return json.load(handle).get("version", "dev")
    except (OSError, ValueError):
        return "dev"


VERSION = _version()


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/healthz":
        status, body = (
            ("500 Internal Server Error", "broken\n")
            if os.path.exists("BROKEN")
            else ("200 OK", "ok\n")
        )
    else:
        status, body = "200 OK", f"wsgi {VERSION}\n"
    data = body.encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]
