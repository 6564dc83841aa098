# Copyright: deployer contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""systemd EnvironmentFile text, read the way systemd reads it.

deployer_release writes ``KEY="value"`` lines (``\\ " ` $`` escaped inside the double
quotes, a value's newlines kept as they are) and comment lines. What runs a release's
code outside systemd (deployer_hook) must see the very variables the service gets, so this
is systemd's own parser (``parse_env_file_internal`` in src/basic/env-file.c), state for
state: ``#``/``;`` comments, unquoted values (trailing whitespace dropped, ``\\x`` -> ``x``,
backslash-newline continues the line), single quotes (literal) and double quotes (``\\``
before one of ``\\ " ` $`` or a newline escapes it, any other backslash stays), adjacent
quoted and unquoted parts joined. Lines whose key is not a valid name are skipped, as
systemd skips them; a later assignment wins. Stdlib only: this runs on the target host.
"""

from __future__ import annotations

import re

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")  # \Z: no trailing newline
_WHITESPACE = " \t\n\r"
_NEWLINE = "\n\r"
_COMMENTS = "#;"
_DQ_ESCAPED = '"\\`$'

(_PRE_KEY, _KEY, _PRE_VALUE, _VALUE, _VALUE_ESCAPE, _SINGLE, _DOUBLE, _DOUBLE_ESCAPE,
 _COMMENT, _COMMENT_ESCAPE) = range(10)


def parse(text):
    """[(name, value)] in file order (`text`: str; bytes are decoded as UTF-8)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    out = []
    state = _PRE_KEY
    key, value = [], []
    key_ws = value_ws = -1  # where trailing whitespace of the key/unquoted value starts

    def push():
        name = "".join(key[:key_ws] if key_ws >= 0 else key)
        if NAME.match(name):
            out.append((name, "".join(value)))

    for c in text:
        if state == _PRE_KEY:
            if c in _COMMENTS:
                state = _COMMENT
            elif c not in _WHITESPACE:
                state, key, key_ws = _KEY, [c], -1
        elif state == _KEY:
            if c in _NEWLINE:
                state, key = _PRE_KEY, []  # a key without '=' is no assignment
            elif c == "=":
                state, value, value_ws = _PRE_VALUE, [], -1
            else:
                if c not in _WHITESPACE:
                    key_ws = -1
                elif key_ws < 0:
                    key_ws = len(key)
                key.append(c)
        elif state == _PRE_VALUE:
            if c in _NEWLINE:
                push()
                state, key = _PRE_KEY, []
            elif c == "'":
                state = _SINGLE
            elif c == '"':
                state = _DOUBLE
            elif c == "\\":
                state = _VALUE_ESCAPE
            elif c not in _WHITESPACE:
                state = _VALUE
                value.append(c)
        elif state == _VALUE:
            if c in _NEWLINE:
                if value_ws >= 0:
                    del value[value_ws:]
                push()
                state, key = _PRE_KEY, []
            elif c == "\\":
                state, value_ws = _VALUE_ESCAPE, -1
            else:
                if c not in _WHITESPACE:
                    value_ws = -1
                elif value_ws < 0:
                    value_ws = len(value)
                value.append(c)
        elif state == _VALUE_ESCAPE:
            state = _VALUE
            if c not in _NEWLINE:
                value.append(c)
        elif state == _SINGLE:
            if c == "'":
                state = _PRE_VALUE
            else:
                value.append(c)
        elif state == _DOUBLE:
            if c == '"':
                state = _PRE_VALUE
            elif c == "\\":
                state = _DOUBLE_ESCAPE
            else:
                value.append(c)
        elif state == _DOUBLE_ESCAPE:
            state = _DOUBLE
            if c in _DQ_ESCAPED:
                value.append(c)
            elif c != "\n":
                value.extend(("\\", c))
        elif state == _COMMENT:
            if c == "\\":
                state = _COMMENT_ESCAPE
            elif c in _NEWLINE:
                state = _PRE_KEY
        elif state == _COMMENT_ESCAPE:
            state = _COMMENT
    if state in (_PRE_VALUE, _VALUE, _VALUE_ESCAPE, _SINGLE, _DOUBLE, _DOUBLE_ESCAPE):
        if state == _VALUE and value_ws >= 0:
            del value[value_ws:]
        push()
    return out


def value(raw):
    """A config value as an env file holds it: booleans as true/false, None as empty."""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if raw is None:
        return ""
    return str(raw)


def render(env, header="# Written by deployer; do not edit.\n", comments=()):
    """The text deployer_release writes: the header, `comments` (whole lines), then
    KEY="value" sorted by name. `env` values are strings; a bad name or a NUL raises
    ValueError naming the variable, never its value."""
    lines = [header] + list(comments)
    for name in sorted(env):
        if not NAME.match(name):
            raise ValueError("invalid environment variable name %r: use letters, digits and _"
                             % name)
        value = env[name]
        if "\x00" in value:
            raise ValueError("environment variable %s contains a NUL byte" % name)
        escaped = "".join("\\" + c if c in _DQ_ESCAPED else c for c in value)
        lines.append('%s="%s"\n' % (name, escaped))
    return "".join(lines).encode("utf-8")
