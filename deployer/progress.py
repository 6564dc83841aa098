"""Live per-host progress on stderr while playbooks run (stdout stays clean for --json)."""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.table import Table

_STYLE = {
    "running": "cyan",
    "ok": "green",
    "changed": "yellow",
    "skipped": "dim",
    "failed": "bold red",
    "unreachable": "bold red",
}


class LiveProgress:
    """A table of hosts, each with its current task and state, redrawn as events arrive.

    On a terminal it redraws in place; elsewhere (CI logs) it prints one line per failure and
    one line per task that every host finished, so logs stay short."""

    def __init__(self, console: Console, title: str) -> None:
        self.console = console
        self.title = title
        self.rows: dict[str, tuple[str, str, float]] = {}
        self.started = time.monotonic()
        self._live: Live | None = None
        self._last_task = ""

    def __enter__(self) -> LiveProgress:
        if self.console.is_terminal:
            self._live = Live(
                self._table(), console=self.console, refresh_per_second=8, transient=True
            )
            self._live.__enter__()
        else:
            self.console.print(f"[bold]{self.title}[/]")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.__exit__(kind, exc, tb)

    def task(self, host: str, task: str, state: str) -> None:
        short = task.split(" : ")[-1]
        self.rows[host] = (short, state, time.monotonic() - self.started)
        if self._live is not None:
            self._live.update(self._table())
        elif state in {"failed", "unreachable"}:
            self.console.print(f"  {host}: [red]{state}[/] in {short}")
        elif state == "running" and short != self._last_task:
            self._last_task = short
            self.console.print(f"  [dim]{time.monotonic() - self.started:5.1f}s[/] {short}")

    def _table(self) -> Table:
        table = Table(title=self.title, title_justify="left", box=None, pad_edge=False)
        table.add_column("host")
        table.add_column("task")
        table.add_column("state")
        table.add_column("t", justify="right")
        for host, (task, state, at) in sorted(self.rows.items()):
            table.add_row(host, task, f"[{_STYLE.get(state, '')}]{state}[/]", f"{at:.1f}s")
        return table
