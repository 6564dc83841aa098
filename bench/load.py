"""A constant-rate HTTP load across lab hosts, bounded in count and time.

Requests go only to the addresses of lab containers this benchmark started (or loopback).
Every request is one GET with a short timeout; the schedule does not wait for answers, so a
stalled host shows up as failures and a gap, not as a slower rate.
"""

from __future__ import annotations

import http.client
import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    sent: int = 0
    ok: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    longest_gap: float = 0.0  # seconds between consecutive successes, fleet-wide
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


class Load:
    """Start with `start()`, stop with `stop()`; `result` then holds the counts."""

    def __init__(
        self,
        targets: list[tuple[str, int]],
        rate: int = 240,
        max_seconds: float = 120.0,
        path: str = "/",
    ) -> None:
        if not targets:
            raise ValueError("no targets")
        self.targets, self.rate, self.path = targets, rate, path
        self.max_requests = int(rate * max_seconds)
        self.max_seconds = max_seconds
        self.result = LoadResult()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._successes: list[float] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Load:
        self._thread.start()
        return self

    def stop(self) -> LoadResult:
        self._stop.set()
        self._thread.join()
        stamps = sorted(self._successes)
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        self.result.longest_gap = max(gaps, default=0.0)
        return self.result

    def _one(self, host: str, port: int) -> None:
        try:
            conn = http.client.HTTPConnection(host, port, timeout=2.0)
            conn.request("GET", self.path)
            response = conn.getresponse()
            response.read()
            conn.close()
            good = response.status == 200
            kind = f"http {response.status}"
        except OSError as exc:
            good, kind = False, type(exc).__name__
        with self._lock:
            if good:
                self.result.ok += 1
                self._successes.append(time.monotonic())
            else:
                self.result.failed += 1
                self.result.errors[kind] = self.result.errors.get(kind, 0) + 1

    def _run(self) -> None:
        started = time.monotonic()
        interval = 1.0 / self.rate
        with ThreadPoolExecutor(max_workers=64) as pool:
            n = 0
            while not self._stop.is_set() and n < self.max_requests:
                due = started + n * interval
                now = time.monotonic()
                if now - started > self.max_seconds:
                    break
                if due > now:
                    time.sleep(due - now)
                host, port = self.targets[n % len(self.targets)]
                pool.submit(self._one, host, port)
                n += 1
            self.result.sent = n
        self.result.seconds = time.monotonic() - started
