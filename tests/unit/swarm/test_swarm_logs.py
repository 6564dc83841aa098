"""`docker service logs -t` lines, as the manager prints them, read into log lines: the node
is the host, the timestamp the time; anything of another shape is dropped, text cleaned."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from deployer.targets.swarm.logs import parse_line

# what docker 20.10 prints on the lab's manager for `docker service logs -t --no-trunc`
LINE = "2026-12-04T05:22:05.182464813Z tlog.1.se7cc5kcpvakbqmz8j4uhxk3v@lab1    | hi there\n"


def test_a_docker_line_gives_its_node_time_and_message() -> None:
    line = parse_line("web", LINE, lambda text: text)
    assert line is not None
    assert (line.host, line.unit, line.message) == ("lab1", "web", "hi there")
    assert line.time == datetime(2026, 12, 4, 5, 22, 5, 182464, tzinfo=UTC)


def test_other_shapes_are_dropped_and_text_is_cleaned_and_masked() -> None:
    assert parse_line("web", "no bar at all\n", str) is None
    assert parse_line("web", "garbage | hi\n", str) is None  # no timestamp, no task@node
    hostile = LINE.replace("hi there", "\x1b[2J\x1b]0;pwned\x07token s3cret")
    line = parse_line("web", hostile, lambda text: text.replace("s3cret", "***"))
    assert line is not None
    assert "\x1b" not in line.message
    assert "\x07" not in line.message
    assert line.message.endswith("token ***")
    assert parse_line("web", LINE, str, re.compile("nothing")) is None
    assert parse_line("web", LINE, str, re.compile("hi")) is not None
