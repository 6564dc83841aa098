"""The Swarm target on a real three-node swarm (`deployer lab up --swarm 3`, lab `swarm-test`).

One stack goes through a whole life, in order (each test states what it starts from):
v1 -> v2 under load with no failed request, the environment's replicas and resources in
`docker service inspect`, a broken v3 that Swarm rolls back (exit 1, ROLLED_BACK), an
explicit `rollback --to v1`, and `status`. Nothing is mocked: images are built here,
streamed to the nodes over SSH and run by the nodes' own dockerd.

Load goes only to the lab hosts' container addresses (containers this suite created), is
bounded in requests and seconds, and stops by itself. It behaves like a load balancer in
front of host-mode ports (nginx's default `proxy_next_upstream error`): a GET that could not
be delivered to a node (connection refused or reset before any response) is tried on the
next node; a request that got a wrong answer, or no answer from any node, is a failure.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from deployer.config.base import SecretRef
from deployer.config.loader import load_project
from deployer.config.notify import Webhook
from deployer.config.resolve import resolve
from deployer.engine.lifecycle import deploy
from deployer.lab import LabState, down, up
from deployer.lab.hosts import load_lab
from deployer.ledger import Status
from deployer.session import Session
from deployer.targets import for_session

pytestmark = [pytest.mark.integration, pytest.mark.swarm]


def _deploy(session: Session, version: str) -> Any:
    """The engine's deploy on the session's own target."""
    return deploy(session, for_session(session), version=version)


LAB = "swarm-test"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "swarm-hello"
MEASURE = os.environ.get("DEPLOYER_SWARM_MEASURE")  # a file to append timings to (JSON lines)
MAX_REQUESTS = 20_000
MAX_LOAD_SECONDS = 240.0


def _measure(**values: Any) -> None:
    if MEASURE:
        with open(MEASURE, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(values) + "\n")


@pytest.fixture(scope="module")
def swarm_lab() -> Iterator[LabState]:
    started = time.monotonic()
    state = up(3, name=LAB, swarm=True)
    _measure(step="lab up --swarm 3", seconds=round(time.monotonic() - started, 1))
    yield state
    if os.environ.get("DEPLOYER_KEEP_LAB") != "1":
        down(LAB)


def _manager(lab: LabState, *argv: str) -> str:
    run = subprocess.run(
        ["docker", "exec", lab.hosts[0].container, "docker", *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


@dataclass
class Stack:
    root: Path
    app: str
    lab: LabState

    def session(self) -> Session:
        os.environ["DEPLOYER_LAB_NAME"] = LAB
        target = resolve(load_project(self.root / "deploy.yml"), "swarm", load_lab(LAB))
        return Session(target)

    @property
    def stack(self) -> str:
        return self.app

    def inspect(self, component: str) -> dict[str, Any]:
        out = _manager(self.lab, "service", "inspect", f"{self.stack}_{component}")
        found: list[dict[str, Any]] = json.loads(out)
        return found[0]


@pytest.fixture(scope="module")
def stack(swarm_lab: LabState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """examples/swarm-hello under a unique app name; its stack is removed afterwards."""
    app = "sw" + secrets.token_hex(3)
    root = tmp_path_factory.mktemp("swarm") / "project"
    shutil.copytree(EXAMPLE, root)
    text = (root / "deploy.yml").read_text().replace("name: swarm-hello", f"name: {app}")
    (root / "deploy.yml").write_text(text)
    yield Stack(root, app, swarm_lab)
    _manager(swarm_lab, "stack", "rm", app)
    for image in docker.from_env().images.list(name=f"{app}-*"):  # built here, for this app
        for tag in image.tags:
            with contextlib.suppress(docker.errors.APIError):
                docker.from_env().images.remove(tag)


@dataclass
class Load:
    """Bounded GET load over every node's published port, failing over like an LB."""

    addresses: list[str]
    port: int
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0
    failures: int = 0
    retries: int = 0
    versions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    last_ok: float = 0.0
    longest_gap: float = 0.0

    def _once(self, address: str) -> str | None:
        """The body, or None when the request never reached an app (safe to retry)."""
        conn = http.client.HTTPConnection(address, self.port, timeout=5)
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
        except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
            return None
        try:
            body = response.read().decode()
        finally:
            conn.close()
        if response.status != 200:
            raise RuntimeError(f"{address}: HTTP {response.status}: {body[:80]}")
        return body

    def _worker(self, offset: int) -> None:
        deadline = time.monotonic() + MAX_LOAD_SECONDS
        order = itertools.cycle(range(len(self.addresses)))
        for _ in range(offset):
            next(order)
        while not self.stop.is_set() and time.monotonic() < deadline:
            with self.lock:
                if self.requests >= MAX_REQUESTS:
                    return
                self.requests += 1
            first = next(order)
            body, error = None, "no node answered"
            for i in range(len(self.addresses)):
                address = self.addresses[(first + i) % len(self.addresses)]
                try:
                    body = self._once(address)
                except (OSError, RuntimeError, http.client.HTTPException) as exc:
                    error = f"{type(exc).__name__}: {exc}"
                    break
                if body is not None:
                    break
                with self.lock:
                    self.retries += 1
            now = time.monotonic()
            with self.lock:
                if body is None:
                    self.failures += 1
                    self.errors.append(error)
                    continue
                self.longest_gap = max(self.longest_gap, now - self.last_ok)
                self.last_ok = now
                version = body.split(" from ")[1].split(" ")[0] if " from " in body else "?"
                if not self.versions or self.versions[-1] != version:
                    self.versions.append(version)
            time.sleep(0.005)

    def __enter__(self) -> Load:
        self.last_ok = time.monotonic()
        self.threads = [
            threading.Thread(target=self._worker, args=(i,), daemon=True) for i in range(2)
        ]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


def test_v1_to_v2_without_a_failed_request(stack: Stack) -> None:

    first = _deploy(stack.session(), "v1")
    assert (first.status, first.exit_code) == (Status.SUCCEEDED, 0), first.reason
    assert first.artifact_sha256.count("sha256:") == 2
    addresses = [h.ip for h in stack.lab.hosts]
    with Load(addresses, 8000) as load:
        time.sleep(3)  # some v1 traffic first
        started = time.monotonic()
        second = _deploy(stack.session(), "v2")
        seconds = time.monotonic() - started
        time.sleep(3)  # and some v2 traffic after
    _measure(
        step="deploy v1->v2 under load",
        seconds=round(seconds, 1),
        requests=load.requests,
        failures=load.failures,
        retries=load.retries,
        longest_gap_ms=round(load.longest_gap * 1000),
        first=load.versions[0] if load.versions else None,
        last=load.versions[-1] if load.versions else None,
        answer_flips=len(load.versions) - 1,  # v1/v2 interleave while both run
    )
    assert (second.status, second.exit_code) == (Status.SUCCEEDED, 0), second.reason
    assert load.failures == 0, load.errors[:5]
    assert load.requests > 100
    assert load.versions[0] == "v1"
    assert load.versions[-1] == "v2"
    row = stack.session().ledger.history("swarm", limit=1)[0]
    assert row.status is Status.SUCCEEDED
    assert row.artifact_sha256 == second.artifact_sha256


def test_replicas_and_resources_reach_the_services(stack: Stack) -> None:
    web = stack.inspect("web")["Spec"]
    assert web["Mode"]["Replicated"]["Replicas"] == 2
    resources = web["TaskTemplate"]["Resources"]
    assert resources["Limits"] == {"NanoCPUs": 200_000_000, "MemoryBytes": 48 * 2**20}
    assert resources["Reservations"] == resources["Limits"]
    update = web["UpdateConfig"]
    assert (update["Order"], update["FailureAction"]) == ("start-first", "rollback")
    assert web["TaskTemplate"]["ContainerSpec"]["Healthcheck"]["Retries"] == 5
    assert web["EndpointSpec"]["Ports"][0]["PublishMode"] == "host"
    site = stack.inspect("site")["Spec"]
    assert site["Mode"]["Replicated"]["Replicas"] == 1
    assert site["TaskTemplate"]["Resources"]["Limits"]["MemoryBytes"] == 32 * 2**20
    running = _manager(
        stack.lab, "service", "ps", "-q", "--filter", "desired-state=running", f"{stack.app}_web"
    )
    assert len(running.split()) == 2


def test_broken_version_is_rolled_back_by_swarm_and_fails(stack: Stack) -> None:

    shutil.copy(stack.root / "broken" / "app.py", stack.root / "web" / "app.py")
    received: list[dict[str, Any]] = []
    with _webhook_receiver(received) as url:
        session = stack.session()
        session.target = replace(
            session.target,
            notifications=(Webhook(type="webhook", url=SecretRef(from_env="SWARM_HOOK")),),
        )
        session.notify_secrets = {"notify.0.url": url}
        started = time.monotonic()
        result = _deploy(session, "v3")
    assert [e["event"] for e in received] == ["start", "rollback"]  # swarm announces too
    assert all(e["version"] == "v3" for e in received)
    _measure(step="broken v3, rolled back", seconds=round(time.monotonic() - started, 1))
    assert (result.status, result.exit_code) == (Status.ROLLED_BACK, 1)
    assert "rolled" in result.reason
    assert {h.after for h in result.hosts} == {"v2"}
    ledger = stack.session().ledger
    assert "v3" in ledger.bad_versions("swarm")
    assert ledger.current("swarm") == "v2"
    assert stack.inspect("web")["Spec"]["Labels"]["io.deployer.version"] == "v2"
    shutil.copy(EXAMPLE / "web" / "app.py", stack.root / "web" / "app.py")


@contextlib.contextmanager
def _webhook_receiver(received: list[dict[str, Any]]) -> Iterator[str]:
    """A local HTTP endpoint on 127.0.0.1 that records every JSON body posted to it."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()


def test_rollback_to_a_stored_version(stack: Stack) -> None:

    result = for_session(stack.session()).rollback("v1")
    assert (result.status, result.exit_code) == (Status.SUCCEEDED, 0), result.reason
    assert {h.after for h in result.hosts} == {"v1"}
    for component in ("web", "site"):
        assert stack.inspect(component)["Spec"]["Labels"]["io.deployer.version"] == "v1"
    assert stack.session().ledger.current("swarm") == "v1"


def test_status_reads_the_tasks(stack: Stack) -> None:

    result = for_session(stack.session()).status()
    assert result.healthy, result.problems
    assert {v: set(s) for v, s in result.versions.items()} == {
        "v1": {f"{stack.app}_web", f"{stack.app}_site"}
    }
    assert result.expected == "v1"
    assert not result.drift


def test_logs_read_every_task_of_a_service_by_its_node(stack: Stack) -> None:
    from deployer.targets.swarm import logs

    result = logs.read(for_session(stack.session()), service="web", grep="serving", lines=50)
    assert result.ok, result.errors
    nodes = {line.host for line in result.lines}
    assert nodes  # the web tasks said they serve, each on its node
    assert nodes <= {h.name for h in stack.lab.hosts}
    assert all(line.unit == "web" and "serving on" in line.message for line in result.lines)
    assert [line.time for line in result.lines] == sorted(line.time for line in result.lines)


# --- secrets as Docker secrets, monitoring and the PromQL watch window --------------------

VAULTED_APP = """\
import http.server, os, signal, socket, threading, time

VERSION = os.environ.get("APP_VERSION", "dev")
FLAKY = os.path.exists(os.path.join(os.path.dirname(__file__), "flaky"))
COUNTS, LOCK = {}, threading.Lock()
BUCKETS = (0.005, 0.05, 0.5, 5.0)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        started = time.monotonic()
        if self.path == "/healthz":
            code, body = 200, "ok\\n"
        elif self.path == "/metrics":
            code, body = 200, self.metrics()
        elif self.path == "/secret":
            code = 200
            body = os.environ.get("API_TOKEN", "-") + "|" + os.environ.get("DB_PASSWORD", "-")
            body += "|" + os.environ.get("API_TOKEN_FILE", "-")
        else:
            with LOCK:
                n = sum(COUNTS.values())
            code = 500 if FLAKY and n % 2 else 200
            body = "hello from %s on %s\\n" % (VERSION, socket.gethostname())
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if self.path not in ("/metrics", "/healthz", "/secret"):
            with LOCK:
                COUNTS[code] = COUNTS.get(code, 0) + 1
                DURATIONS.append(time.monotonic() - started)

    def metrics(self):
        with LOCK:
            lines = ["hello_requests_total{code=\\"%d\\"} %d" % (c, n) for c, n in COUNTS.items()]
            for le in BUCKETS:
                count = sum(1 for d in DURATIONS if d <= le)
                lines.append("hello_request_duration_seconds_bucket{le=\\"%g\\"} %d" % (le, count))
            lines.append("hello_request_duration_seconds_bucket{le=\\"+Inf\\"} %d" % len(DURATIONS))
            lines.append("hello_request_duration_seconds_count %d" % len(DURATIONS))
            lines.append("hello_request_duration_seconds_sum %f" % sum(DURATIONS))
        return "\\n".join(lines) + "\\n"

    def log_message(self, *args):
        pass


DURATIONS = []
server = http.server.ThreadingHTTPServer(("", int(os.environ["PORT"])), Handler)
# PID 1 of its container: without a handler SIGTERM would be ignored until the SIGKILL
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
print("web", VERSION, "serving", flush=True)
server.serve_forever(poll_interval=0.1)
"""


@dataclass
class Vaulted:
    root: Path
    app: str
    lab: LabState

    def cli(self, *argv: str, token: str, expect: int = 0) -> tuple[dict[str, Any], str]:
        env = {**os.environ, "DEPLOYER_LAB_NAME": LAB, "VAULTED_TOKEN": token}
        env["VAULTED_VAULT_PASSWORD"] = "vault-pass-for-the-test"
        run = subprocess.run(
            [sys.executable, "-m", "deployer", *argv, "--json"],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert run.returncode == expect, run.stdout[-2000:] + run.stderr[-3000:]
        return json.loads(run.stdout), run.stdout + run.stderr

    def get(self, path: str) -> tuple[int, str]:
        for host in self.lab.hosts:
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection(host.ip, 8100, timeout=3)
                conn.request("GET", path)
                response = conn.getresponse()
                return response.status, response.read().decode()
        raise AssertionError(f"no node answered {path}")


@pytest.fixture(scope="module")
def vaulted(swarm_lab: LabState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vaulted]:
    """A one-component stack reading a secret from the vault and one from the environment,
    with monitoring on and a short watch window."""
    from ansible.parsing.vault import VaultLib, VaultSecret

    app = "sv" + secrets.token_hex(3)
    root = tmp_path_factory.mktemp("vaulted") / "project"
    (root / "web").mkdir(parents=True)
    (root / "web" / "app.py").write_text(VAULTED_APP)
    (root / "web" / "requirements.txt").write_text("")
    vault = VaultLib([("default", VaultSecret(b"vault-pass-for-the-test"))])
    (root / "vault.yml").write_bytes(vault.encrypt(f"db_password: {DB_CANARY}\n"))
    config = {
        "app": {"name": app},
        "artifact": {"path": "."},
        "service": {"command": "python3 app.py", "port": 8100},
        "health": {"http": {"path": "/healthz", "timeout": 2}, "retries": 5, "interval": 1},
        "secrets": {
            "vault_file": "vault.yml",
            "vault_password_env": "VAULTED_VAULT_PASSWORD",
            "env": {
                "DB_PASSWORD": {"vault": "db_password"},
                "API_TOKEN": {"from_env": "VAULTED_TOKEN"},
            },
        },
        "keep_releases": 2,
        "monitoring": {
            "scrape_interval": 1,
            "min_requests": 10,
            "metrics": {
                "requests": "hello_requests_total",
                "duration": "hello_request_duration_seconds",
            },
        },
        "rollback": {
            "automatic": True,
            "watch": 20,
            "health_checks": {"threshold": 2, "period": 2},
            "error_rate": {"threshold": 20, "window": 15},
            "response_time": {"threshold_ms": 2000, "window": 15},
        },
        "environments": {
            "swarm": {
                "target": "swarm",
                "hosts": {"web": "lab"},
                "replicas": {"web": 2},
                "features": {"monitoring": True},
            }
        },
    }
    (root / "deploy.yml").write_text(json.dumps(config, indent=2))
    yield Vaulted(root, app, swarm_lab)
    _manager(swarm_lab, "stack", "rm", app)
    deadline = time.monotonic() + 60  # the objects are free once the tasks are gone
    for kind in ("secret", "config"):
        found = _manager(swarm_lab, kind, "ls", "-q", "--filter", f"label=io.deployer.stack={app}")
        while found.split() and time.monotonic() < deadline:
            with contextlib.suppress(AssertionError):
                _manager(swarm_lab, kind, "rm", *found.split())
                break
            time.sleep(2)
    for image in docker.from_env().images.list(name=f"{app}-*"):
        for tag in image.tags:
            with contextlib.suppress(docker.errors.APIError):
                docker.from_env().images.remove(tag)


DB_CANARY = "db-canary-" + secrets.token_hex(8)
TOKENS = ["tok-canary-one-" + secrets.token_hex(6), "tok-canary-two-" + secrets.token_hex(6)]


def _hits(text: str) -> list[str]:
    return [c for c in (DB_CANARY, *TOKENS) if c in text]


def test_secrets_reach_the_tasks_as_docker_secrets_and_nowhere_else(vaulted: Vaulted) -> None:
    outputs = []
    for version, token in (("v1", TOKENS[0]), ("v2", TOKENS[1])):
        result, output = vaulted.cli("deploy", "swarm", "--version", version, token=token)
        assert result["status"] == "SUCCEEDED", result
        outputs.append(output)
        status, body = vaulted.get("/secret")
        assert status == 200
        assert body == f"{token}|{DB_CANARY}|/run/secrets/API_TOKEN"

    # a rollback to v1 mounts v1's objects again: the older token is served
    result, output = vaulted.cli("rollback", "swarm", "--to", "v1", token=TOKENS[1])
    assert result["status"] == "SUCCEEDED", result
    outputs.append(output)
    assert vaulted.get("/secret")[1].startswith(f"{TOKENS[0]}|")

    stack = vaulted.app
    names = _manager(vaulted.lab, "secret", "ls", "--format", "{{.Name}}").split()
    ours = [n for n in names if n.startswith(f"{stack}_")]
    assert len(ours) == 3  # DB_PASSWORD once (unchanged), API_TOKEN for v1 and v2
    inspect = _manager(vaulted.lab, "service", "inspect", f"{stack}_web")
    configs = _manager(vaulted.lab, "config", "ls", "-q")
    records = _manager(vaulted.lab, "config", "inspect", *configs.split()) if configs else ""
    ledger = (vaulted.root / ".deployer").rglob("*")
    stored = "".join(
        p.read_bytes().decode(errors="replace") for p in ledger if p.is_file()
    )  # ledger, runner artifacts, state: everything deployer keeps on the control host
    target = resolve(load_project(vaulted.root / "deploy.yml"), "swarm", load_lab(LAB))
    from deployer.targets.swarm import compose
    from deployer.targets.swarm.build import specs_of
    from deployer.targets.swarm.spec import stack_name

    settings = target.swarm or compose.SwarmSettings()
    mounts = {"API_TOKEN": next(n for n in ours if "API_TOKEN" in n)}
    stack_file = compose.to_yaml(
        compose.render(target, settings, specs_of(target, settings), "v1", mounts)
    )
    assert stack_name(target, settings) == stack
    assert "/run/secrets/API_TOKEN" in stack_file
    for where, text in {
        "docker service inspect": inspect,
        "the release records": records,
        "the stack file": stack_file,
        "the output": "".join(outputs),
        "the project's .deployer": stored,
    }.items():
        assert _hits(text) == [], where


def test_a_release_that_fails_half_its_requests_is_rolled_back_by_the_promql_rule(
    vaulted: Vaulted,
) -> None:
    (vaulted.root / "web" / "flaky").write_text("answer 500 to every other request\n")
    codes: dict[int, int] = {}
    stop = threading.Event()

    def traffic() -> None:
        deadline = time.monotonic() + MAX_LOAD_SECONDS
        while not stop.is_set() and time.monotonic() < deadline:
            with contextlib.suppress(AssertionError):
                code, _body = vaulted.get("/")
                codes[code] = codes.get(code, 0) + 1
            time.sleep(0.03)

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    try:
        result, _output = vaulted.cli(
            "deploy", "swarm", "--version", "v3", token=TOKENS[1], expect=1
        )
    finally:
        stop.set()
        thread.join(timeout=30)
        (vaulted.root / "web" / "flaky").unlink()
    _measure(
        step="v3 failing half its requests, rolled back by the PromQL rule",
        seconds=round(result.get("deploy_seconds") or 0, 1),
        codes=codes,
        reason=result["reason"],
    )
    assert codes.get(500, 0) > 0, codes
    assert result["status"] == "ROLLED_BACK", result
    assert result["stage"] == "watch", result
    assert "error_rate" in result["reason"], result
    assert "Prometheus on" in result["reason"], result
    web = json.loads(_manager(vaulted.lab, "service", "inspect", f"{vaulted.app}_web"))[0]
    assert web["Spec"]["Labels"]["io.deployer.version"] == "v1"
    assert vaulted.get("/secret")[1].startswith(f"{TOKENS[0]}|")  # v1's own secret again
    # keep_releases 2 keeps the two newest records (v3, v2) and the running v1's
    ids = _manager(
        vaulted.lab, "config", "ls", "-q", "--filter", f"label=io.deployer.stack={vaulted.app}"
    ).split()
    records = json.loads(_manager(vaulted.lab, "config", "inspect", *ids))
    labels = [r["Spec"]["Labels"]["io.deployer.version"] for r in records]
    assert sorted(labels) == ["v1", "v2", "v3"]


def _prometheus(lab: LabState, query: str) -> list[dict[str, Any]]:
    """An instant query to the manager's Prometheus, from inside the manager."""
    run = subprocess.run(
        ["docker", "exec", lab.hosts[0].container, "curl", "-sf", "--data-urlencode",
         f"query={query}", "http://127.0.0.1:9090/api/v1/query"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert run.returncode == 0, (query, run.stderr)
    answer = json.loads(run.stdout)
    assert answer["status"] == "success", answer
    found: list[dict[str, Any]] = answer["data"]["result"]
    return found


def test_prometheus_finds_the_stack_s_tasks_and_answers_the_dashboard(vaulted: Vaulted) -> None:
    from deployer.plan.monitoring import RATE_INTERVAL, dashboard

    deadline = time.monotonic() + 60
    up: list[dict[str, Any]] = []
    while time.monotonic() < deadline:  # discovery refreshes every scrape interval
        up = _prometheus(vaulted.lab, f'up{{job="{vaulted.app}"}} == 1')
        if len(up) == 2 and {r["metric"].get("version") for r in up} == {"v1"}:
            break
        time.sleep(1)
    assert len(up) == 2, up  # the two running tasks, each at its node's published port
    assert {r["metric"]["service"] for r in up} == {f"{vaulted.app}_web"}
    assert {r["metric"]["component"] for r in up} == {"web"}
    assert {r["metric"]["environment"] for r in up} == {"swarm"}
    assert {r["metric"]["version"] for r in up} == {"v1"}
    assert {r["metric"]["host"] for r in up} <= {"lab1", "lab2", "lab3"}
    nodes = _prometheus(vaulted.lab, 'up{job="node", environment="swarm"} == 1')
    assert len(nodes) == 3
    target = resolve(load_project(vaulted.root / "deploy.yml"), "swarm", load_lab(LAB))
    exprs = [t["expr"] for p in dashboard(target)["panels"] for t in p["targets"]]
    assert len(exprs) >= 6
    for expr in exprs:  # every panel's query is one this Prometheus answers
        _prometheus(vaulted.lab, expr.replace(RATE_INTERVAL, "1m"))


def test_keep_releases_prunes_older_records_and_their_images_on_every_node(
    vaulted: Vaulted,
) -> None:
    result, _output = vaulted.cli("deploy", "swarm", "--version", "v4", token=TOKENS[1])
    assert result["status"] == "SUCCEEDED", result
    ids = _manager(
        vaulted.lab, "config", "ls", "-q", "--filter", f"label=io.deployer.stack={vaulted.app}"
    ).split()
    records = json.loads(_manager(vaulted.lab, "config", "inspect", *ids))
    # keep_releases 2: v4 and v3 are the newest, v1 ran before v4; v2 went
    assert sorted(r["Spec"]["Labels"]["io.deployer.version"] for r in records) == [
        "v1",
        "v3",
        "v4",
    ]
    for host in vaulted.lab.hosts:
        run = subprocess.run(
            ["docker", "exec", host.container, "docker", "image", "ls", "--format",
             "{{.Tag}}", f"{vaulted.app}-web"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        tags = set(run.stdout.split())
        assert "v2" not in tags, host.name
        assert "v4" in tags, host.name
    assert vaulted.get("/secret")[1].startswith(f"{TOKENS[1]}|")
