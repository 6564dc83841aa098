"""The job summary of a generated pipeline: Markdown from what `deployer deploy ENV --json` printed.

The pipeline runs this file's text as it is (`python3 - RESULT.json`, standard library only),
so it works whatever deployer version the runner installed and even when the deploy itself
failed before printing anything. It reads the two shapes `--json` has: a deploy result
(`deployer.engine.results.DeployResult`, as `deployer.render.jsonable` writes it) or an error
(`{"error", "details", "exit_code"}`). Everything a host sent is escaped for Markdown.
"""

from __future__ import annotations

import html
import json
import sys
from typing import Any


def cell(value: Any) -> str:
    """A value as text for a Markdown table cell: one line, HTML and pipes escaped."""
    text = "-" if value is None or value == "" else str(value)
    return html.escape(" ".join(text.split())).replace("|", "\\|")


def summary(result: Any) -> str:
    """The Markdown summary of one `deployer deploy --json` result."""
    if not isinstance(result, dict):
        return "### deployer deploy\n\nno result: the deploy printed no JSON object\n"
    if "error" in result:
        lines = [
            f"### deployer deploy: error (exit {cell(result.get('exit_code'))})",
            "",
            cell(result.get("error")),
            "",
        ]
        lines += [f"- {cell(detail)}" for detail in result.get("details") or ()]
        return "\n".join(lines) + "\n"
    took = result.get("deploy_seconds") or 0.0
    rollback = result.get("rollback_seconds")
    noop = " (no-op: already deployed)" if result.get("noop") else ""
    lines = [
        f"### deployer deploy {cell(result.get('environment'))} {cell(result.get('version'))}: "
        f"{cell(result.get('status'))}{noop}",
        "",
        f"deployment #{cell(result.get('deployment_id'))} in {float(took):.1f} s"
        + (f", rollback {float(rollback):.1f} s" if rollback else "")
        + f", exit {cell(result.get('exit_code'))}",
    ]
    if result.get("reason"):
        lines += ["", f"reason ({cell(result.get('stage'))}): {cell(result['reason'])}"]
    hosts = result.get("hosts") or ()
    if hosts:
        lines += ["", "| host | result | stage | before | after | message |", "|---" * 6 + "|"]
        for host in hosts:
            row = (host.get(k) for k in ("host", "status", "stage", "before", "after", "message"))
            lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    for hook in result.get("hooks") or ():
        state = "ok" if hook.get("ok") else f"failed (exit {cell(hook.get('exit_code'))})"
        lines += ["", f"hook {cell(hook.get('name'))} on {cell(hook.get('host'))}: {state}"]
    for note in result.get("notes") or ():
        lines += ["", f"note: {cell(note)}"]
    return "\n".join(lines) + "\n"


def main(path: str) -> None:
    try:
        with open(path, encoding="utf-8") as handle:
            result = json.load(handle)
    except (OSError, ValueError) as exc:
        sys.stdout.write(f"### deployer deploy\n\nno result: {cell(exc)}\n")
        return
    sys.stdout.write(summary(result))


if __name__ == "__main__":
    main(sys.argv[1])
