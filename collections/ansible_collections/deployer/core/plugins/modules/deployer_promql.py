#!/usr/bin/python
# Copyright: deployer contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Watch PromQL conditions (error rate, latency) for a window after a rollout."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deployer_promql
short_description: Watch PromQL conditions after a rollout and fail when one is breached
version_added: "0.1.0"
description:
  - Runs on the Prometheus host (or any host that reaches Prometheus) for the watch window
    after a rollout. Every O(period) seconds it evaluates each of O(checks) as an instant
    query against O(url) (C(GET /api/v1/query)) and fails as soon as one check breaches
    O(threshold) evaluations in a row.
  - The first evaluation is at start + O(period), the last one at or just before start +
    O(duration) (at least one evaluation, at the end, when O(duration) < O(period)).
  - Each query may contain the literal placeholder C($window), replaced at each evaluation
    by a PromQL duration C(<W>s) with W = max(O(min_window), min(window of the check,
    now - O(since))) rounded to whole seconds, so that right after the release went live
    only samples of the new release are looked at.
  - A check is judged on the first sample of its result (a vector or a scalar). An empty
    result, C(NaN) or an infinite value is "no data"; a check with O(checks[].volume_query)
    whose value is below O(checks[].min_volume) (too few requests) is not judged either.
    A judged value above the check's threshold is a breach; any other evaluation (judged
    and fine, or not judged) ends the run of breaches of that check.
  - A failed query (connection refused, HTTP error, C(status=error) from Prometheus) counts
    as a breach of the pseudo-check C(prometheus) (once per evaluation round); a round in
    which every query succeeds ends its run.
  - Uses only the Python 3 standard library on the host. Never changes anything.
options:
  url:
    description: Base URL of Prometheus.
    type: str
    default: http://127.0.0.1:9090
  checks:
    description: The conditions to watch.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Name of the check (unique; C(prometheus) is reserved), used in messages.
        type: str
        required: true
      query:
        description: PromQL instant query giving the value to judge; may contain C($window).
        type: str
        required: true
      threshold:
        description: The check is breached when the value is above this.
        type: float
        required: true
      unit:
        description: Unit of the value and the threshold, for messages (for example C(%) or C(s)).
        type: str
        default: ""
      window:
        description: Longest range, in seconds, the query looks back over (C($window)).
        type: int
        required: true
      volume_query:
        description: PromQL query giving the traffic over C($window) (for example the request count); optional.
        type: str
      min_volume:
        description: The check is not judged while O(checks[].volume_query) is below this.
        type: float
        default: 0
  duration:
    description: Seconds to watch.
    type: float
    required: true
  period:
    description: Seconds between evaluations.
    type: float
    default: 5
  threshold:
    description: Breaching evaluations of the same check in a row that fail the watch.
    type: int
    default: 3
  since:
    description:
      - When the new release went live, in epoch seconds (default, when the module starts).
      - Compared with the host's clock; a value in the future only means C($window) is
        O(min_window).
    type: float
  min_window:
    description: Smallest C($window) in seconds (C(rate()) needs at least two scrapes in range).
    type: int
    default: 10
  timeout:
    description: Seconds each HTTP query may take.
    type: float
    default: 5
author:
  - deployer contributors
notes:
  - Supports check mode; it then evaluates once, right away, and never fails.
"""

EXAMPLES = r"""
- name: Watch the error rate and p95 latency for two minutes after the rollout
  deployer.core.deployer_promql:
    url: http://127.0.0.1:9090
    since: "{{ switched_at }}"
    duration: 120
    period: 5
    threshold: 3
    checks:
      - name: error_rate
        query: >-
          100 * sum(rate(http_requests_total{job="hello",code=~"5.."}[$window]))
          / sum(rate(http_requests_total{job="hello"}[$window]))
        threshold: 5
        unit: "%"
        window: 60
        volume_query: sum(increase(http_requests_total{job="hello"}[$window]))
        min_volume: 20
      - name: latency_p95
        query: >-
          histogram_quantile(0.95,
          sum by (le) (rate(http_request_duration_seconds_bucket{job="hello"}[$window])))
        threshold: 0.5
        unit: s
        window: 60
"""

RETURN = r"""
deployer:
  description:
    - The verdict as deployer reads it, C(breach) and C(rounds) (see below), and C(last),
      the last judged value of each check by name (checks never judged are left out).
  returned: always
  type: dict
breach:
  description: The check that failed the watch; null when the watch passed.
  returned: always
  type: dict
  contains:
    name:
      description: Name of the check, or C(prometheus) when queries failed.
      type: str
    value:
      description: The value of the last breaching evaluation (null for C(prometheus)).
      type: float
    threshold:
      description: The check's threshold (null for C(prometheus)).
      type: float
    unit:
      description: The check's unit.
      type: str
    window:
      description: The range C($window) stood for, in seconds (null for C(prometheus)).
      type: int
    query:
      description: The query as sent, C($window) replaced.
      type: str
    error:
      description: Why the query failed (only for C(prometheus)).
      type: str
evaluations:
  description: The last 50 check evaluations, oldest first.
  returned: always
  type: list
  elements: dict
  contains:
    at:
      description: When the check was evaluated, epoch seconds.
      type: float
    name:
      description: Name of the check.
      type: str
    value:
      description: The value, or null for no data or a failed query.
      type: float
    volume:
      description: The value of the volume query, or null.
      type: float
    window:
      description: The range C($window) stood for, in seconds.
      type: int
    judged:
      description: The value was compared with the threshold.
      type: bool
    breach:
      description: The value was above the threshold.
      type: bool
    error:
      description: Why a query failed, or null.
      type: str
rounds:
  description: Evaluation rounds run (each evaluates every check).
  returned: always
  type: int
"""

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request

from ansible.module_utils.basic import AnsibleModule

PLACEHOLDER = "$window"
PROMETHEUS = "prometheus"  # the pseudo-check counting failed queries
KEEP_EVALUATIONS = 50


class QueryError(Exception):
    """A query that gave no answer: connection or HTTP failure, or status=error."""


# --- pure logic --------------------------------------------------------------------------


def window_seconds(check_window, min_window, now, since):
    """The range $window stands for: the time since the release went live, bounded below
    by min_window and above by the check's own window, in whole seconds."""
    return int(round(max(min_window, min(check_window, now - since))))


def render(query, window):
    """The query with every $window replaced by the PromQL duration `<window>s`."""
    return query.replace(PLACEHOLDER, "%ds" % window)


def schedule(duration, period):
    """Offsets from the start of the watch at which to evaluate: start + period, + 2 period,
    ... up to duration included; a single one at the end when duration < period."""
    count = int(math.floor(duration / period + 1e-9)) if period > 0 else 0
    if count < 1:
        return [max(0.0, float(duration))]
    return [k * period for k in range(1, count + 1)]


def sample_value(payload):
    """The value of the first sample of an instant query answer (the parsed JSON of
    /api/v1/query), or None for no data (empty result, NaN, infinite). Raises QueryError
    when Prometheus answered status=error or the answer is not a query result."""
    if not isinstance(payload, dict):
        raise QueryError("unexpected answer: %.200r" % (payload,))
    if payload.get("status") != "success":
        raise QueryError(
            "%s: %s" % (payload.get("errorType") or "error", payload.get("error") or payload)
        )
    data = payload.get("data") or {}
    kind, result = data.get("resultType"), data.get("result")
    try:
        if kind == "vector":
            if not result:
                return None
            raw = result[0]["value"][1]
        elif kind == "scalar":
            raw = result[1]
        else:
            raise QueryError("unsupported result type %r (want an instant vector or scalar)" % kind)
        value = float(raw)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise QueryError("malformed result: %s" % exc) from exc
    return value if math.isfinite(value) else None


def judge(value, threshold, volume=None, min_volume=0.0, has_volume=False):
    """(judged, breach) for one evaluation of a check: not judged without data or, with a
    volume query, while the volume (no data counting as 0) is below min_volume."""
    if value is None:
        return False, False
    if has_volume and (volume if volume is not None else 0.0) < min_volume:
        return False, False
    return True, value > threshold


def update(counters, name, breach):
    """Count a breach of `name` or end its run; returns the run length."""
    counters[name] = counters.get(name, 0) + 1 if breach else 0
    return counters[name]


def fmt_number(value):
    """12.5 -> '12.5', 5.0 -> '5', 0.23456 -> '0.2346', 12345.6 -> '12346'."""
    if value is None:
        return "no data"
    if abs(value) >= 1000:
        return "%.0f" % value
    return "%.4g" % value


def with_unit(value, unit):
    number = fmt_number(value)
    return "%s %s" % (number, unit) if unit else number


def breach_message(breach, run):
    """The failure message, for example `error_rate 12.5 % > 5 % over 20s (3 evaluations
    in a row)`, or, for failed queries, `prometheus query failed: ... (3 ...)`."""
    tail = "(%d evaluation%s in a row)" % (run, "" if run == 1 else "s")
    if breach["name"] == PROMETHEUS:
        return "prometheus query failed: %s %s" % (breach["error"], tail)
    return "%s %s > %s over %ds %s" % (
        breach["name"],
        with_unit(breach["value"], breach["unit"]),
        with_unit(breach["threshold"], breach["unit"]),
        breach["window"],
        tail,
    )


# --- one evaluation round and the watch -------------------------------------------------


def http_query(url, query, timeout):
    """GET <url>/api/v1/query?query=... (an instant query, now) and return the parsed JSON.
    Prometheus answers errors with a 4xx/5xx whose body still says status=error."""
    full = "%s/api/v1/query?%s" % (url.rstrip("/"), urllib.parse.urlencode({"query": query}))
    try:
        with urllib.request.urlopen(full, timeout=timeout) as response:  # noqa: S310
            body = response.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            payload = json.loads(body)
        except ValueError:
            raise QueryError("HTTP %d from %s" % (exc.code, url)) from exc
        if isinstance(payload, dict) and payload.get("status") == "error":
            return payload
        raise QueryError("HTTP %d from %s" % (exc.code, url)) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise QueryError("cannot reach %s: %s" % (url, reason)) from exc
    try:
        return json.loads(body)
    except ValueError as exc:
        raise QueryError("answer from %s is not JSON: %.200r" % (url, body)) from exc


def evaluate(checks, fetch, now, since, min_window):
    """Evaluate every check once. `fetch(query) -> value or None` may raise QueryError.
    Returns (records, error): one record per check, and the first query error of the round."""
    records, error = [], None
    for check in checks:
        window = window_seconds(check["window"], min_window, now, since)
        query = render(check["query"], window)
        record = {"at": round(now, 3), "name": check["name"], "value": None, "volume": None,
                  "window": window, "judged": False, "breach": False, "error": None,
                  "query": query}
        try:
            record["value"] = fetch(query)
            if check.get("volume_query"):
                record["volume"] = fetch(render(check["volume_query"], window))
        except QueryError as exc:
            record["error"] = str(exc)
            error = error or {"name": PROMETHEUS, "value": None, "threshold": None,
                              "unit": "", "window": None, "query": query, "error": str(exc)}
        else:
            record["judged"], record["breach"] = judge(
                record["value"], check["threshold"], record["volume"],
                check.get("min_volume") or 0.0, bool(check.get("volume_query")))
        records.append(record)
    return records, error


def watch(checks, fetch, duration, period, threshold, since, min_window,
          clock=time.time, sleep=time.sleep, once=False):
    """Run the watch. Returns (breach or None, run length, evaluations, rounds)."""
    start = clock()
    since = start if since is None else since
    offsets = [0.0] if once else schedule(duration, period)
    counters, evaluations, rounds = {}, [], 0
    for index, offset in enumerate(offsets):
        if index + 1 < len(offsets) and clock() > start + offset:
            continue  # slow queries: skip a missed slot (never the last) rather than catch up
        delay = start + offset - clock()
        if delay > 0:
            sleep(delay)
        records, error = evaluate(checks, fetch, clock(), since, min_window)
        rounds += 1
        evaluations.extend(records)
        del evaluations[:-KEEP_EVALUATIONS]
        failing = None
        for check, record in zip(checks, records):
            run = update(counters, check["name"], record["breach"])
            if run >= threshold and failing is None:
                failing = ({"name": check["name"], "value": record["value"],
                            "threshold": check["threshold"], "unit": check.get("unit") or "",
                            "window": record["window"], "query": record["query"]}, run)
        run = update(counters, PROMETHEUS, error is not None)
        if run >= threshold and failing is None:
            failing = (error, run)
        if failing is not None and not once:
            return failing[0], failing[1], public(evaluations), rounds
    return None, 0, public(evaluations), rounds


def public(evaluations):
    """The evaluations as returned (the rendered query stays in `breach` only)."""
    return [{k: v for k, v in record.items() if k != "query"} for record in evaluations]


# --- the module -------------------------------------------------------------------------


def problems(params):
    """What is wrong with the parameters (empty when they are fine)."""
    found = []
    names = [check["name"] for check in params["checks"]]
    if not names:
        found.append("checks is empty")
    if PROMETHEUS in names:
        found.append("check name %r is reserved for failed queries" % PROMETHEUS)
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        found.append("duplicate check names: %s" % ", ".join(duplicates))
    for check in params["checks"]:
        if check["window"] < 1:
            found.append("check %s: window must be at least 1" % check["name"])
    if params["duration"] < 0:
        found.append("duration must not be negative")
    if params["period"] <= 0:
        found.append("period must be positive")
    if params["threshold"] < 1:
        found.append("threshold must be at least 1")
    if params["min_window"] < 1:
        found.append("min_window must be at least 1")
    return found


def latest_values(evaluations):
    """{check name: its last judged value}: checks never judged are left out."""
    return dict((e["name"], e["value"]) for e in evaluations if e.get("judged"))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", default="http://127.0.0.1:9090"),
            checks=dict(type="list", elements="dict", required=True, options=dict(
                name=dict(type="str", required=True),
                query=dict(type="str", required=True),
                threshold=dict(type="float", required=True),
                unit=dict(type="str", default=""),
                window=dict(type="int", required=True),
                volume_query=dict(type="str"),
                min_volume=dict(type="float", default=0),
            )),
            duration=dict(type="float", required=True),
            period=dict(type="float", default=5),
            threshold=dict(type="int", default=3),
            since=dict(type="float"),
            min_window=dict(type="int", default=10),
            timeout=dict(type="float", default=5),
        ),
        supports_check_mode=True,
    )
    p = module.params
    found = problems(p)
    if found:
        module.fail_json(msg="; ".join(found), breach=None, evaluations=[], rounds=0)

    def fetch(query):
        return sample_value(http_query(p["url"], query, p["timeout"]))

    breach, run, evaluations, rounds = watch(
        p["checks"], fetch, p["duration"], p["period"], p["threshold"], p["since"],
        p["min_window"], once=module.check_mode)
    # `deployer` carries the verdict the way the other deployer modules report theirs, with
    # the last judged value of each check (what the ledger keeps as post-deploy measures)
    last = latest_values(evaluations)
    if breach is not None:
        module.fail_json(msg=breach_message(breach, run), breach=breach,
                         evaluations=evaluations, rounds=rounds,
                         deployer=dict(breach=breach, rounds=rounds, last=last))
    module.exit_json(changed=False, breach=None, evaluations=evaluations, rounds=rounds,
                     deployer=dict(breach=None, rounds=rounds, last=last))


if __name__ == "__main__":
    main()
