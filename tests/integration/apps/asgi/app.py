"""A small ASGI app for Debian's uvicorn: GET / says the release's version, /healthz
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


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/healthz":
        status, body = (500, b"broken\n") if os.path.exists("BROKEN") else (200, b"ok\n")
    else:
        status, body = 200, f"asgi {VERSION}\n".encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": body})
