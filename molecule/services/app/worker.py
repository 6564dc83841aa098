"""The `worker` service of the services scenario: a loop without a port that writes a
heartbeat (its version and working directory) to its runtime directory every second."""

import os
import time

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "..", "VERSION"), encoding="utf-8") as handle:
    VERSION = handle.read().strip()
if VERSION == "v2":
    raise SystemExit(f"worker {VERSION} cannot start: no queue configured")
BEAT = os.path.join(os.environ["RUNTIME_DIRECTORY"], "beat")
while True:
    with open(BEAT + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(f"{VERSION} {os.getcwd()}\n")
    os.replace(BEAT + ".tmp", BEAT)
    time.sleep(1)
