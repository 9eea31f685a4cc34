"""Text edits shared by the `fix_*` modules: apply them, show them as a diff, cut them into line hunks.

An edit replaces characters [start, end) of a file. Everything outside the edits stays byte for
byte as it was; a hunk is the whole lines an edit touches, which is what a GitHub suggestion replaces.
"""
from __future__ import annotations

import difflib
import re
from bisect import bisect_right
from dataclasses import dataclass

from .model import Location
from .remediate import Problem, StatementFix


@dataclass(frozen=True)
class Edit:
    start: int
    end: int
    text: str
    statement: Location  # the statement this edit belongs to


@dataclass(frozen=True)
class Hunk:
    """Lines first..last (1-based, inclusive) of the original file, and what replaces them."""
    file: str
    first: int
    last: int
    old: str
    new: str
    statement: Location


class StatementNotFound(Exception):
    """The statement's text is not where, or not what, the analysis read (computed, aliased, generated)."""


class Lines:
    """Offsets <-> 1-based line numbers of one text."""

    def __init__(self, text: str):
        self.text = text
        self.starts = [0]
        for i, ch in enumerate(text):
            if ch == "\n":
                self.starts.append(i + 1)

    def line_of(self, offset: int) -> int:
        return bisect_right(self.starts, offset)

    def start(self, line: int) -> int:
        return self.starts[line - 1] if line - 1 < len(self.starts) else len(self.text)

    def end(self, line: int) -> int:
        """Offset just past the line's newline (or the end of the text)."""
        return self.starts[line] if line < len(self.starts) else len(self.text)

    def offset(self, line: int, column: int) -> int:
        """1-based line and column."""
        return self.start(line) + column - 1

    def indent(self, offset: int) -> str:
        start = self.start(self.line_of(offset))
        line = self.text[start:offset]
        return line[:len(line) - len(line.lstrip(" \t"))]

    def column(self, offset: int) -> int:
        """0-based."""
        return offset - self.start(self.line_of(offset))


def newline(text: str) -> str:
    """The file's own line ending (that of its first line): new lines are written with it."""
    i = text.find("\n")
    return "\r\n" if i > 0 and text[i - 1] == "\r" else "\n"


_LINE_REST = re.compile(r"\s*,?\s*(?:(?:#|//).*)?\s*")


def whole_lines(lines: Lines, start: int, end: int) -> tuple[int, int]:
    """Widen [start, end) to whole lines when only blanks (and a trailing comma, and a `#` or `//`
    comment) lie outside it."""
    ls = lines.start(lines.line_of(start))
    le_line = lines.line_of(max(start, end - 1))
    le = lines.end(le_line)
    before, after = lines.text[ls:start], lines.text[end:le]
    if before.strip() == "" and _LINE_REST.fullmatch(after):
        return ls, le
    return start, end


def apply_edits(text: str, edits: list[Edit]) -> str:
    out, pos = [], 0
    for e in sorted(edits, key=lambda e: e.start):
        if e.start < pos:
            raise ValueError(f"overlapping edits at offset {e.start}")
        out.append(text[pos:e.start])
        out.append(e.text)
        pos = e.end
    out.append(text[pos:])
    return "".join(out)


def unified_diff(file: str, old: str, new: str) -> str:
    out = []
    for line in difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                     f"a/{file}", f"b/{file}"):
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def hunks(file: str, text: str, edits: list[Edit]) -> list[Hunk]:
    """One hunk per statement: the whole original lines its edits touch, and their replacement."""
    lines = Lines(text)
    by_stmt: dict[Location, list[Edit]] = {}
    for e in edits:
        by_stmt.setdefault(e.statement, []).append(e)
    out = []
    for loc, group in by_stmt.items():
        first = lines.line_of(min(e.start for e in group))
        last_offset = max(max(e.end, e.start + 1) - 1 for e in group)
        last = lines.line_of(min(last_offset, len(text) - 1)) if text else 1
        lo, hi = lines.start(first), lines.end(last)
        shifted = [Edit(e.start - lo, e.end - lo, e.text, e.statement) for e in group]
        old = text[lo:hi]
        out.append(Hunk(file, first, last, old, apply_edits(old, shifted), loc))
    return sorted(out, key=lambda h: h.first)


def check_items(found: list[str] | None, fix: StatementFix) -> None:
    """The text must hold exactly the actions the analysis read, or a rewrite would change something else."""
    if found is None:
        raise StatementNotFound("its action list is computed (a variable, function or reference); edit it by hand")
    if [a.strip() for a in found] != [a.strip() for a in fix.original_actions]:
        raise StatementNotFound("its action list in the file differs from the analysed one (generated or "
                                "computed); edit it by hand")


def not_found(fix: StatementFix, why: str) -> Problem:
    return Problem(fix.location, f"statement not rewritten: {why}", fix.principals[0] if fix.principals else None)


def file_edits(parse, fixes: list[StatementFix], errors: tuple) -> tuple[list[Edit], list[Problem]]:
    """Parse the file once (`parse()`), then each statement's edits; a statement that cannot be found
    or rewritten becomes a located problem and the others go on."""
    try:
        parsed = parse()
    except errors as e:
        why = getattr(e, "message", None) or str(e)
        return [], [not_found(f, f"the file cannot be parsed: {why}") for f in fixes]
    out, problems = [], []
    for fix in fixes:
        try:
            out += parsed.edits(fix)
        except StatementNotFound as e:
            problems.append(not_found(fix, str(e)))
    return out, problems
