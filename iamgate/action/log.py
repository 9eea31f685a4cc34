"""The step log: nothing iamgate prints in the Action can act as a workflow command.

GitHub reads commands (`::name props::data`, and the older `##[name]data`) from every line a step
writes to stdout *or* stderr. So, for the whole run:

- stdout is fenced: `::stop-commands::<random token>` first, `::<token>::` at the end, and only
  then iamgate's own commands (annotations), whose data and properties are escaped;
- stderr is escaped: each message stays one line (`%`, CR and LF as `%25`, `%0D`, `%0A`, GitHub's
  escaping for command data), because stdout and stderr reach the runner through two pipes and a
  fence on one does not order the other;
- on both, a line that would still start like a command has its leading `::`/`##` escaped too.
"""
from __future__ import annotations

import io
import re
import secrets
import sys

from ..escape import workflow_data

_COMMAND_START = re.compile(r"^(\s*)(::|##)")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # where the runner splits lines


def neutralise(line: str) -> str:
    """A line that cannot be parsed as a workflow command (the runner trims leading space first)."""
    return _COMMAND_START.sub(lambda m: m.group(1) + m.group(2).replace(":", "%3A").replace("#", "%23"), line)


class _LineSafe(io.TextIOBase):
    """A text stream that writes whole lines, none of which can act as a command. With `one_line`,
    each write() is one message: line breaks inside it are escaped, a trailing newline ends it."""

    def __init__(self, raw, one_line: bool):
        self.raw, self.one_line, self.pending, self.message = raw, one_line, "", ""
        self.messages: list[str] = []  # stderr: each message as written, for the Action to report

    def writable(self) -> bool:
        return True

    @property
    def encoding(self):
        return getattr(self.raw, "encoding", "utf-8")

    def write(self, s: str) -> int:
        if self.one_line:
            body, end = (s[:-1], "\n") if s.endswith("\n") else (s, "")
            self.pending += workflow_data(body) + end
            self.message += body
            if end:
                self.messages.append(self.message)
                self.message = ""
        else:
            self.pending += s
        *done, self.pending = _LINE_BREAK.split(self.pending)
        for line in done:
            self.raw.write(neutralise(line) + "\n")
        return len(s)

    def flush(self) -> None:
        if self.pending:
            self.raw.write(neutralise(self.pending) + "\n")
            self.pending = ""
        self.raw.flush()


class WorkflowLog:
    """Installs the fenced stdout and escaped stderr; `command()` writes one of iamgate's own
    commands, after the fence is closed."""

    def __init__(self, stdout=None, stderr=None):
        self.raw_out, self.raw_err = stdout or sys.stdout, stderr or sys.stderr
        self.token = secrets.token_hex(16)
        self.out = _LineSafe(self.raw_out, one_line=False)
        self.err = _LineSafe(self.raw_err, one_line=True)
        self._saved = None
        self.fenced = False

    def __enter__(self):
        self.raw_out.write(f"::stop-commands::{self.token}\n")
        self.raw_out.flush()
        self.fenced = True
        self._saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = self.out, self.err
        return self

    def close_fence(self) -> None:
        if self.fenced:
            self.out.flush()
            self.err.flush()
            self.raw_out.write(f"::{self.token}::\n")
            self.raw_out.flush()
            self.fenced = False

    def __exit__(self, *exc):
        self.close_fence()
        sys.stdout, sys.stderr = self._saved

    def command(self, line: str) -> None:
        """One of iamgate's own commands (already escaped, e.g. `Annotation.command()`)."""
        self.close_fence()
        self.raw_out.write(line.rstrip("\n") + "\n")

    def errors(self) -> list[str]:
        """The `iamgate: error: …` messages written to stderr so far (unescaped)."""
        return [m for m in self.err.messages if m.startswith("iamgate: ")]
