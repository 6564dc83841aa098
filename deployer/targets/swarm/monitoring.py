"""Monitoring of a Swarm stack: node exporter on every node, Prometheus on the manager, and
the watch window's rollback rules judged there.

Like the rest of the Swarm target, this is a few SSH commands, not a playbook run:
- Debian's `prometheus-node-exporter` on every node and `prometheus` on the manager,
  installed when missing, flags in their `/etc/default` files as the SSH target's role
  writes them. Prometheus reads the manager's Docker API (`dockerswarm_sd_configs`, role
  tasks) through a systemd drop-in that adds the `docker` group to its unit, so it finds
  every task wherever Swarm places it. The configuration (the plan's
  `swarm_scrape_config`) arrives on stdin, is checked with promtool before it replaces the
  old one, and Prometheus reloads only when something changed.
- The watch: the same checks as on SSH (`plan.monitoring.watch_checks`), evaluated by the
  same code the hosts run (the collection's `deployer_promql`, loaded by its path) on the
  controller, each query sent to the manager's Prometheus over the target's SSH master
  connection (a fixed Python program on the manager, the query on its stdin). The answers
  are parsed strictly: they are text deployer did not write.
"""

from __future__ import annotations

import json
import shlex
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import yaml

from deployer.config.resolve import Target
from deployer.errors import ConfigError
from deployer.paths import host_code
from deployer.plan.monitoring import swarm_scrape_config, watch_checks
from deployer.session import Session
from deployer.targets.base import HostReply
from deployer.targets.swarm.compose import SECRET_STACKS
from deployer.targets.swarm.remote import SSH_UNREACHABLE, Nodes
from deployer.targets.swarm.spec import ComponentSpec

_ROOT = 'set -eu\nS=""; [ "$(id -u)" = 0 ] || S="sudo -n"'
_INSTALL = r"""
need=""
for p in %(packages)s; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need="$need $p"
done
if [ -n "$need" ]; then
  $S env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  $S env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends $need >/dev/null
fi
"""
# put FILE CONTENT: write it (root, 0644) when it differs; `changed` says whether any did
_PUT = r"""
changed=0
put() {
  if ! $S cmp -s "$1" - 2>/dev/null <<EOF
$2
EOF
  then
    $S install -d -m 0755 "$(dirname "$1")"
    printf '%%s\n' "$2" | $S tee "$1.deployer-new" >/dev/null
    $S chmod 0644 "$1.deployer-new" && $S mv "$1.deployer-new" "$1"
    changed=1
  fi
}
"""
_NODE = (
    _ROOT
    + _INSTALL
    + _PUT
    + r"""
put /etc/default/prometheus-node-exporter %(flags)s
$S systemctl enable -q prometheus-node-exporter
if [ "$changed" = 1 ]; then $S systemctl restart prometheus-node-exporter
else $S systemctl start prometheus-node-exporter; fi
"""
)
_SERVER = (
    _ROOT
    + _INSTALL
    + _PUT
    + r"""
new=$(mktemp)
trap 'rm -f "$new"' EXIT
cat > "$new"
promtool check config "$new" >/dev/null
put /etc/default/prometheus %(flags)s
put /etc/systemd/system/prometheus.service.d/deployer.conf %(dropin)s
restart=$changed
changed=0
if ! $S cmp -s /etc/prometheus/prometheus.yml "$new"; then
  $S install -m 0644 "$new" /etc/prometheus/prometheus.yml
  changed=1
fi
$S systemctl daemon-reload
$S systemctl enable -q prometheus
if [ "$restart" = 1 ]; then $S systemctl restart prometheus
elif [ "$changed" = 1 ]; then $S systemctl reload-or-restart prometheus
else $S systemctl start prometheus; fi
i=0
until python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
    http://127.0.0.1:%(port)d/-/ready 2>/dev/null; do
  i=$((i + 1)); [ $i -lt 60 ] || { echo "Prometheus is not ready after 60 s" >&2; exit 1; }
  sleep 1
done
"""
)
_QUERY = r"""
import sys, urllib.error, urllib.parse, urllib.request
url = sys.argv[1] + "/api/v1/query?" + urllib.parse.urlencode({"query": sys.stdin.read()})
try:
    with urllib.request.urlopen(url, timeout=float(sys.argv[2])) as r:
        sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    sys.stdout.write(e.read().decode())
except OSError as e:
    sys.stderr.write("cannot reach %s: %s" % (sys.argv[1], getattr(e, "reason", e)))
    sys.exit(3)
"""
_TIMEOUT = 5.0


def scraped(specs: Sequence[ComponentSpec]) -> list[str]:
    """The components whose tasks Prometheus scrapes: those running the app's code on a
    published port (an nginx-served frontend has no metrics endpoint)."""
    return [s.name for s in specs if s.stack in SECRET_STACKS and s.publish is not None]


def check(target: Target, specs: Sequence[ComponentSpec]) -> None:
    """What monitoring on a Swarm environment cannot do, refused before the manager is
    touched (exit 2, naming the config path)."""
    if target.monitoring is None:
        return
    base = f"environments.{target.environment}"
    problems = []
    if target.monitoring_server != target.primary:
        problems.append(
            f"{base}.monitoring.server: on target swarm Prometheus runs on the manager "
            f"({target.primary}), which it asks for the stack's tasks"
        )
    if not scraped(specs):
        problems.append(
            f"{base}.features.monitoring: no component has a metrics endpoint (a Python or "
            "Dockerfile component with a published port, where Prometheus scrapes "
            f"{target.monitoring.metrics_path})"
        )
    if problems:
        raise ConfigError(problems, source=str(target.config_path))


def scripts(
    target: Target, stack: str, specs: Sequence[ComponentSpec]
) -> dict[str, tuple[str, bytes | None]]:
    """{node: (script, stdin)}: what each node runs to set monitoring up (pure)."""
    settings = target.monitoring
    assert settings is not None
    header = f"# Managed by deployer for app {target.app.name}; changes are overwritten."
    node_flags = f'{header}\nARGS="--web.listen-address=:{settings.node_exporter_port}"'
    out: dict[str, tuple[str, bytes | None]] = {}
    for host in target.hosts:
        if host.name == target.primary:
            continue
        values = {"packages": "prometheus-node-exporter", "flags": shlex.quote(node_flags)}
        out[host.name] = (_NODE % values, None)
    server_flags = (
        f'{header}\nARGS="--web.listen-address=:{settings.prometheus_port} '
        f'--storage.tsdb.retention.time={settings.retention}"'
    )
    dropin = f"{header}\n[Service]\nSupplementaryGroups=docker"
    server = _NODE % {
        "packages": "prometheus-node-exporter",
        "flags": shlex.quote(node_flags),
    } + _SERVER % {
        "packages": "prometheus",
        "flags": shlex.quote(server_flags),
        "dropin": shlex.quote(dropin),
        "port": settings.prometheus_port,
    }
    config = swarm_scrape_config(target, stack, scraped(specs))
    out[target.primary] = (server, yaml.safe_dump(config, sort_keys=False).encode())
    return out


def set_up(
    session: Session, nodes: Nodes, stack: str, specs: Sequence[ComponentSpec]
) -> tuple[str, str] | None:
    """Set monitoring up on every node at once; (node, why) of the first that failed."""
    target = session.target
    if target.monitoring is None:
        return None
    work = scripts(target, stack, specs)
    if session.progress is not None:
        for node in work:
            session.progress.task(node, "monitoring", "running")
    with ThreadPoolExecutor(max_workers=min(len(work), 16)) as pool:
        replies = dict(
            zip(
                work,
                pool.map(lambda n: nodes.run(n, work[n][0], stdin=work[n][1], timeout=600), work),
                strict=True,
            )
        )
    for node, reply in replies.items():
        if session.progress is not None:
            session.progress.task(node, "monitoring", "ok" if reply.ok else "failed")
    for node, reply in replies.items():
        if reply.code == SSH_UNREACHABLE:
            return node, f"unreachable: {reply.err[-300:]}"
        if not reply.ok:
            return node, f"monitoring set-up failed: {session.redact(reply.err[-500:])}"
    return None


@dataclass
class Verdict:
    reply: HostReply
    breach: bool
    measured: Mapping[str, float] = field(default_factory=dict)


class Judge:
    """The rollback rules evaluated for the watch window, in a thread of the controller."""

    def __init__(self, session: Session, nodes: Nodes, since: float) -> None:
        self.session, self.nodes, self.since = session, nodes, since
        self._verdict: Verdict | None = None
        self._thread = threading.Thread(target=self._run, name="promql", daemon=True)

    @classmethod
    def start(cls, session: Session, nodes: Nodes, since: float) -> Judge | None:
        if session.target.monitoring is None:
            return None
        judge = cls(session, nodes, since)
        judge._thread.start()
        return judge

    def fetch(self, query: str) -> float | None:
        promql = host_code("modules", "deployer_promql")
        target = self.session.target
        assert target.monitoring is not None
        url = f"http://127.0.0.1:{target.monitoring.prometheus_port}"
        command = shlex.join(["python3", "-c", _QUERY, url, str(_TIMEOUT)])
        reply = self.nodes.run(
            self.nodes.manager, command, stdin=query.encode(), timeout=_TIMEOUT + 10
        )
        if not reply.ok:
            raise promql.QueryError(reply.err[-200:] or f"exit {reply.code}")
        try:
            payload = json.loads(reply.out)
        except ValueError:
            raise promql.QueryError(f"answer is not JSON: {reply.out[:200]!r}") from None
        value: float | None = promql.sample_value(payload)
        return value

    def _run(self) -> None:
        promql = host_code("modules", "deployer_promql")
        target = self.session.target
        settings = target.monitoring
        assert settings is not None
        rule = target.rollback.health_checks
        period = min(rule.period, max(1, target.rollback.watch), max(settings.scrape_interval, 1))
        manager = self.nodes.manager
        try:
            breach, run, evaluations, _rounds = promql.watch(
                watch_checks(target),
                self.fetch,
                target.rollback.watch,
                period,
                rule.threshold,
                self.since,
                2 * settings.scrape_interval + 1,
            )
            last = promql.latest_values(evaluations)
        except Exception as exc:  # a verdict must come back, whatever happened
            reply = HostReply(manager, ok=False, message=f"judging failed: {exc}", stage="watch")
            self._verdict = Verdict(reply, False)
            return
        if breach is None:
            self._verdict = Verdict(HostReply(manager), False, dict(last))
            return
        message = self.session.redact(promql.breach_message(breach, run))
        reply = HostReply(manager, ok=False, message=message, stage="watch")
        self._verdict = Verdict(reply, True, dict(last))

    def result(self) -> Verdict:
        self._thread.join()
        assert self._verdict is not None
        return self._verdict
