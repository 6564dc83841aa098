"""Unit tests of deployer.core.deployer_promql: the watch-window logic ($window, judging,
breach counters, messages, schedule) without HTTP, then the whole module run as Ansible
runs it against a local receiver of /api/v1/query that answers in Prometheus's documented
response shape."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "collections"))

from ansible_collections.deployer.core.plugins.modules import deployer_promql as promql

MODULE = Path(promql.__file__)

ERROR_RATE = {
    "name": "error_rate",
    "query": "100 * sum(rate(errors[$window])) / sum(rate(requests[$window]))",
    "threshold": 5.0,
    "unit": "%",
    "window": 60,
}


def vector(value: str) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": {}, "value": [1700000000.1, value]}],
        },
    }


EMPTY = {"status": "success", "data": {"resultType": "vector", "result": []}}


# --- $window ----------------------------------------------------------------------------


def test_window_is_time_since_live_bounded_by_min_window_and_the_check_window() -> None:
    assert promql.window_seconds(60, 10, now=1003.0, since=1000.0) == 10  # too early: min
    assert promql.window_seconds(60, 10, now=1024.6, since=1000.0) == 25  # since live, rounded
    assert promql.window_seconds(60, 10, now=5000.0, since=1000.0) == 60  # the check's window
    assert promql.window_seconds(60, 10, now=1000.0, since=1500.0) == 10  # since in the future


def test_render_replaces_every_window_placeholder_with_a_promql_duration() -> None:
    assert promql.render("rate(a[$window]) / rate(b[$window])", 25) == "rate(a[25s]) / rate(b[25s])"


# --- the schedule -----------------------------------------------------------------------


def test_schedule_starts_one_period_in_and_ends_at_or_just_before_the_duration() -> None:
    assert promql.schedule(20, 5) == [5, 10, 15, 20]
    assert promql.schedule(12, 5) == [5, 10]
    assert promql.schedule(0.3, 0.1) == pytest.approx([0.1, 0.2, 0.3])


def test_schedule_shorter_than_a_period_evaluates_once_at_the_end() -> None:
    assert promql.schedule(3, 5) == [3.0]
    assert promql.schedule(0, 5) == [0.0]


# --- reading an answer ------------------------------------------------------------------


def test_sample_value_reads_the_first_sample_of_a_vector_or_a_scalar() -> None:
    two = vector("12.5")
    two["data"]["result"].append({"metric": {"a": "b"}, "value": [1, "99"]})
    assert promql.sample_value(two) == 12.5
    scalar = {"status": "success", "data": {"resultType": "scalar", "result": [1, "0.25"]}}
    assert promql.sample_value(scalar) == 0.25


@pytest.mark.parametrize("payload", [EMPTY, vector("NaN"), vector("+Inf"), vector("-Inf")])
def test_empty_nan_and_infinite_results_are_no_data(payload: dict[str, Any]) -> None:
    assert promql.sample_value(payload) is None


def test_status_error_from_prometheus_is_a_query_error_with_its_text() -> None:
    payload = {"status": "error", "errorType": "bad_data", "error": "parse error at char 5"}
    with pytest.raises(promql.QueryError, match="bad_data: parse error at char 5"):
        promql.sample_value(payload)
    with pytest.raises(promql.QueryError, match="unsupported result type 'matrix'"):
        promql.sample_value({"status": "success", "data": {"resultType": "matrix", "result": []}})


# --- judging and counting ---------------------------------------------------------------


def test_judge_breaches_only_above_the_threshold() -> None:
    assert promql.judge(5.1, 5.0) == (True, True)
    assert promql.judge(5.0, 5.0) == (True, False)
    assert promql.judge(None, 5.0) == (False, False)


def test_judge_skips_an_evaluation_over_too_few_requests() -> None:
    assert promql.judge(50.0, 5.0, volume=19, min_volume=20, has_volume=True) == (False, False)
    assert promql.judge(50.0, 5.0, volume=None, min_volume=20, has_volume=True) == (False, False)
    assert promql.judge(50.0, 5.0, volume=20, min_volume=20, has_volume=True) == (True, True)
    assert promql.judge(50.0, 5.0, volume=None, min_volume=0, has_volume=True) == (True, True)


def test_update_counts_breaches_in_a_row_and_resets_on_anything_else() -> None:
    counters: dict[str, int] = {}
    assert [promql.update(counters, "x", b) for b in (True, True, False, True)] == [1, 2, 0, 1]
    assert promql.update(counters, "y", True) == 1
    assert counters == {"x": 1, "y": 1}


def test_breach_message_names_value_threshold_unit_window_and_run() -> None:
    breach = {"name": "error_rate", "value": 12.5, "threshold": 5.0, "unit": "%", "window": 20}
    assert promql.breach_message(breach, 3) == (
        "error_rate 12.5 % > 5 % over 20s (3 evaluations in a row)"
    )
    latency = {"name": "latency_p95", "value": 0.73456, "threshold": 0.5, "unit": "s", "window": 60}
    assert promql.breach_message(latency, 1) == (
        "latency_p95 0.7346 s > 0.5 s over 60s (1 evaluation in a row)"
    )
    bare = {"name": "queue", "value": 123456.7, "threshold": 1000.0, "unit": "", "window": 30}
    assert promql.breach_message(bare, 2).startswith("queue 123457 > 1000 over 30s")
    down = {"name": "prometheus", "error": "cannot reach http://127.0.0.1:9090: refused"}
    assert promql.breach_message(down, 3) == (
        "prometheus query failed: cannot reach http://127.0.0.1:9090: refused "
        "(3 evaluations in a row)"
    )


# --- the watch, with a fake clock and fake answers --------------------------------------


class FakeTime:
    """A clock that only moves when the watch sleeps (queries take no time)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def answers(values: dict[str, list[Any]]) -> Callable[[str], float | None]:
    """fetch(query): the next value listed for the first key contained in the query; an
    Exception instance is raised instead (a failed query)."""

    def fetch(query: str) -> float | None:
        for key, queue in values.items():
            if key in query:
                value = queue.pop(0)
                if isinstance(value, Exception):
                    raise value
                return float(value) if value is not None else None
        raise AssertionError(f"unexpected query {query}")

    return fetch


def run_watch(
    checks: list[dict[str, Any]], fetch: Callable[[str], float | None], **kwargs: Any
) -> tuple[Any, ...]:
    fake = FakeTime()
    args: dict[str, Any] = {"duration": 30, "period": 5, "threshold": 3, "since": None}
    args |= {"min_window": 10} | kwargs
    result = promql.watch(checks, fetch, clock=fake.clock, sleep=fake.sleep, **args)
    return (*result, fake)


def test_three_breaches_in_a_row_fail_at_the_third_evaluation() -> None:
    check = {"name": "err", "query": "err[$window]", "threshold": 5.0, "unit": "%", "window": 60}
    fetch = answers({"err": [1, 12.5, 12.5, 12.5, 0, 0]})
    breach, run, evaluations, rounds, fake = run_watch([check], fetch, since=990.0)
    assert (run, rounds) == (3, 4)
    assert breach == {"name": "err", "value": 12.5, "threshold": 5.0, "unit": "%",
                      "window": 30, "query": "err[30s]"}  # fmt: skip
    assert [e["breach"] for e in evaluations] == [False, True, True, True]
    assert fake.now == 1020.0  # stopped right away, not at the end of the window


def test_an_interrupted_run_does_not_fail_and_the_watch_lasts_the_duration() -> None:
    check = {"name": "err", "query": "err[$window]", "threshold": 5.0, "unit": "%", "window": 60}
    fetch = answers({"err": [9, 9, 1, 9, 9, None]})
    breach, run, evaluations, rounds, fake = run_watch([check], fetch)
    assert (breach, run, rounds) == (None, 0, 6)
    assert fake.sleeps == [5, 5, 5, 5, 5, 5]  # first evaluation one period in, last at the end
    assert [e["at"] for e in evaluations] == [1005, 1010, 1015, 1020, 1025, 1030]
    assert [e["window"] for e in evaluations] == [10, 10, 15, 20, 25, 30]  # since = start
    assert evaluations[-1]["judged"] is False  # no data: not judged


def test_too_few_requests_are_not_judged_and_end_the_run() -> None:
    check = {"name": "err", "query": "err[$window]", "threshold": 5.0, "unit": "%",
             "window": 60, "volume_query": "vol[$window]", "min_volume": 20}  # fmt: skip
    fetch = answers({"err": [50, 50, 50, 50, 50, 50], "vol": [100, 100, 3, 100, 100, 3]})
    breach, _, evaluations, rounds, _ = run_watch([check], fetch)
    assert (breach, rounds) == (None, 6)
    assert [e["judged"] for e in evaluations] == [True, True, False, True, True, False]
    assert [e["volume"] for e in evaluations] == [100, 100, 3, 100, 100, 3]


def test_each_check_counts_its_own_breaches() -> None:
    a = {"name": "a", "query": "qa", "threshold": 1.0, "unit": "", "window": 60}
    b = {"name": "b", "query": "qb", "threshold": 1.0, "unit": "s", "window": 60}
    # a and b alternate breaching: three rounds in a row with a breach, but never the same check
    fetch = answers({"qa": [2, 0, 2, 0, 2, 0], "qb": [0, 2, 0, 2, 0, 2]})
    assert run_watch([a, b], fetch)[:2] == (None, 0)
    fetch = answers({"qa": [2, 0, 2, 0, 2, 0], "qb": [0, 2, 2, 2, 0, 2]})
    breach, run, *_ = run_watch([a, b], fetch)
    assert (breach["name"], breach["unit"], run) == ("b", "s", 3)


def test_failed_queries_are_breaches_of_the_prometheus_pseudo_check() -> None:
    check = {"name": "err", "query": "err", "threshold": 5.0, "unit": "%", "window": 60}
    down = promql.QueryError("cannot reach http://127.0.0.1:9090: [Errno 111] refused")
    fetch = answers({"err": [down, down, 1, down, down, down]})
    breach, run, evaluations, rounds, _ = run_watch([check], fetch)
    assert (breach["name"], breach["error"], run, rounds) == ("prometheus", str(down), 3, 6)
    assert promql.breach_message(breach, run).startswith("prometheus query failed: cannot reach")
    assert [e["error"] is not None for e in evaluations] == [True, True, False, True, True, True]
    assert not any(e["judged"] for e in evaluations if e["error"])


def test_evaluations_are_bounded_to_the_last_fifty() -> None:
    check = {"name": "err", "query": "err", "threshold": 5.0, "unit": "", "window": 60}
    fetch = answers({"err": [0] * 120})
    _, _, evaluations, rounds, _ = run_watch([check], fetch, duration=120, period=1)
    assert (rounds, len(evaluations)) == (120, 50)
    assert (evaluations[0]["at"], evaluations[-1]["at"]) == (1071, 1120)
    assert set(evaluations[0]) == {"at", "name", "value", "volume", "window", "judged", "breach",
                                   "error"}  # fmt: skip


def test_slow_queries_skip_missed_slots_instead_of_evaluating_back_to_back() -> None:
    fake = FakeTime()
    times: list[float] = []

    def slow(query: str) -> float:
        times.append(fake.now)
        fake.now += 12  # each query takes more than two periods
        return 0.0

    check = {"name": "err", "query": "err", "threshold": 5.0, "unit": "", "window": 60}
    promql.watch([check], slow, 30, 5, 3, None, 10, clock=fake.clock, sleep=fake.sleep)
    # slots 10, 15 and 25 were missed and skipped; the one at the end always runs
    assert times == [1005, 1020, 1032]


def test_check_mode_evaluates_once_right_away_and_never_fails() -> None:
    check = {"name": "err", "query": "err", "threshold": 5.0, "unit": "", "window": 60}
    breach, _, evaluations, rounds, fake = run_watch(
        [check], answers({"err": [99]}), threshold=1, once=True
    )
    assert (breach, rounds, fake.sleeps) == (None, 1, [])
    assert evaluations[0]["breach"] is True


def test_parameter_problems_are_named() -> None:
    params = {"checks": [ERROR_RATE, ERROR_RATE, {**ERROR_RATE, "name": "prometheus"}],
              "duration": 10, "period": 0, "threshold": 0, "min_window": 10}  # fmt: skip
    assert promql.problems(params) == [
        "check name 'prometheus' is reserved for failed queries",
        "duplicate check names: error_rate",
        "period must be positive",
        "threshold must be at least 1",
    ]


# --- the module over HTTP, as Ansible runs it -------------------------------------------


class Receiver(HTTPServer):
    """Answers GET /api/v1/query: the first entry of `routes` whose key is in the query
    gives (HTTP status, body); records every query received."""

    routes: dict[str, tuple[int, dict[str, Any]]]
    queries: list[str]


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query).get("query", [""])[0]
        self.server.queries.append(query)
        status, body = 404, {"status": "error", "errorType": "not_found", "error": url.path}
        if url.path == "/api/v1/query":
            status, body = next(
                (answer for key, answer in self.server.routes.items() if key in query),
                (400, {"status": "error", "errorType": "bad_data", "error": "unknown query"}),
            )
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(("127.0.0.1", 0), _Handler)
    server.routes, server.queries = {}, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def run_module(tmp_path: Path, args: dict[str, Any]) -> dict[str, Any]:
    """Run the module file the way Ansible does (arguments in a JSON file), return its result."""
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    proc = subprocess.run(
        [sys.executable, str(MODULE), str(path)], capture_output=True, text=True, timeout=60
    )
    result: dict[str, Any] = json.loads(proc.stdout)
    assert (proc.returncode != 0) == bool(result.get("failed")), proc.stderr
    return result


def test_module_fails_on_a_breach_read_over_http(receiver: Receiver, tmp_path: Path) -> None:
    receiver.routes = {
        "errors_total": (200, vector("12.5")),
        "requests_total": (200, vector("240")),
        "duration_bucket": (200, vector("NaN")),
    }
    checks = [
        {"name": "error_rate", "query": "100 * rate(errors_total[$window])", "threshold": 5,
         "unit": "%", "window": 60, "volume_query": "increase(requests_total[$window])",
         "min_volume": 20},
        {"name": "latency_p95", "query": "histogram_quantile(0.95, rate(duration_bucket[$window]))",
         "threshold": 0.5, "unit": "s", "window": 60},
    ]  # fmt: skip
    url = f"http://127.0.0.1:{receiver.server_address[1]}"
    result = run_module(
        tmp_path, {"url": url, "checks": checks, "duration": 10, "period": 0.05, "threshold": 3}
    )
    assert result["failed"] is True
    assert result["msg"] == "error_rate 12.5 % > 5 % over 10s (3 evaluations in a row)"
    assert result["breach"] == {"name": "error_rate", "value": 12.5, "threshold": 5.0,
                                "unit": "%", "window": 10,
                                "query": "100 * rate(errors_total[10s])"}  # fmt: skip
    assert result["rounds"] == 3
    latency = [e for e in result["evaluations"] if e["name"] == "latency_p95"]
    assert [(e["value"], e["judged"]) for e in latency] == [(None, False)] * 3  # NaN: no data
    assert "increase(requests_total[10s])" in receiver.queries


def test_module_passes_a_quiet_window_over_http(receiver: Receiver, tmp_path: Path) -> None:
    receiver.routes = {"errors_total": (200, vector("0.5"))}
    check = {"name": "error_rate", "query": "rate(errors_total[$window])", "threshold": 5,
             "unit": "%", "window": 60}  # fmt: skip
    url = f"http://127.0.0.1:{receiver.server_address[1]}/"
    result = run_module(tmp_path, {"url": url, "checks": [check], "duration": 0.3, "period": 0.1})
    assert "failed" not in result
    assert (result["changed"], result["breach"], result["rounds"]) == (False, None, 3)
    assert [e["value"] for e in result["evaluations"]] == [0.5, 0.5, 0.5]


def test_module_fails_when_prometheus_rejects_the_query(receiver: Receiver, tmp_path: Path) -> None:
    receiver.routes = {
        "broken": (400, {"status": "error", "errorType": "bad_data", "error": "parse error"})
    }
    check = {"name": "error_rate", "query": "broken(", "threshold": 5, "window": 60}
    url = f"http://127.0.0.1:{receiver.server_address[1]}"
    result = run_module(
        tmp_path, {"url": url, "checks": [check], "duration": 5, "period": 0.05, "threshold": 2}
    )
    assert (
        result["msg"] == "prometheus query failed: bad_data: parse error (2 evaluations in a row)"
    )
    assert result["breach"]["name"] == "prometheus"


def test_module_in_check_mode_evaluates_once_and_never_fails(
    receiver: Receiver, tmp_path: Path
) -> None:
    receiver.routes = {"errors_total": (200, vector("50"))}
    check = {"name": "error_rate", "query": "rate(errors_total[$window])", "threshold": 5,
             "window": 60}  # fmt: skip
    url = f"http://127.0.0.1:{receiver.server_address[1]}"
    result = run_module(
        tmp_path,
        {
            "url": url,
            "checks": [check],
            "duration": 60,
            "threshold": 1,
            "_ansible_check_mode": True,
        },
    )
    assert "failed" not in result
    assert (result["breach"], result["rounds"]) == (None, 1)
    assert result["evaluations"][0]["breach"] is True


def test_module_fails_when_prometheus_cannot_be_reached(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run_module(
        tmp_path,
        {"url": f"http://127.0.0.1:{port}", "checks": [ERROR_RATE], "duration": 5,
         "period": 0.05, "threshold": 2, "timeout": 1},
    )  # fmt: skip
    assert result["breach"]["name"] == "prometheus"
    assert result["msg"].startswith(
        f"prometheus query failed: cannot reach http://127.0.0.1:{port}"
    )
    assert result["msg"].endswith("(2 evaluations in a row)")


def test_latest_values_keep_the_last_judged_value_of_each_check() -> None:
    evaluations = [
        {"name": "error_rate", "value": 1.0, "judged": True},
        {"name": "p95_latency", "value": None, "judged": False},
        {"name": "error_rate", "value": 2.5, "judged": True},
        {"name": "error_rate", "value": 9.0, "judged": False},
    ]
    assert promql.latest_values(evaluations) == {"error_rate": 2.5}
