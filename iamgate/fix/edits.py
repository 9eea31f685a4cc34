"""Text edits shared by the `fix_*` modules: apply them, show them as a diff, cut them into line hunks.

An edit replaces characters [start, end) of a file. Everything outside the edits stays byte for
byte as it was; a hunk is the whole lines an edit touches, which is what a GitHub suggestion replaces.
"""
from __future__ import annotations

import difflib
import json
import re
from bisect import bisect_right
from dataclasses import dataclass
from typing import Callable

from ..model import Location
from .plan import Problem, StatementFix


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


@dataclass(frozen=True)
class Item:
    """One item of an action list in the file: its text's span, and where the comma after it ends (JSON)."""
    start: int
    end: int
    comma_end: int | None = None


def quoted(action: str, _index: int = 0) -> str:
    """A new item as a JSON (and HCL) string."""
    return json.dumps(action)


def new_texts(fix: StatementFix, items: list[Item], text: str, render: Callable[[str, int], str]) -> list[str]:
    """The new list's items as text. An item kept as written is its original text, byte for byte; a new
    one is `render(action, index of the item it replaces)`."""
    if not fix.items:
        return [render(a, 0) for a in fix.actions]
    out = []
    for i, (item, new) in enumerate(zip(items, fix.items)):
        if new is None:  # a YAML scalar folded over lines is written afresh, on one
            written = text[item.start:item.end]
            out.append(written if "\n" not in written else render(fix.original_actions[i], i))
        else:
            out += [render(a, i) for a in new]
    return out


def item_edits(lines: Lines, fix: StatementFix, items: list[Item], render: Callable[[str, int], str],
               dash: bool) -> list[Edit] | None:
    """Edits of a list laid out one item per line (`- item` when `dash`, else `item,`): an item kept as
    written is not touched, a removed one loses its line, a replaced one becomes its replacement, one
    per line. None when the list is laid out otherwise or is replaced as a whole."""
    if not fix.items or len(fix.items) != len(items):
        return None
    for item in items:
        line = lines.line_of(item.start)
        before = lines.text[lines.start(line):item.start].strip()
        if before != ("-" if dash else "") or lines.line_of(item.end) != line or \
                not _LINE_REST.fullmatch(lines.text[item.end:lines.end(line)]):
            return None
    nl = newline(lines.text)
    out = []
    for i, (item, new) in enumerate(zip(items, fix.items)):
        if new is None:
            continue
        if not new:
            line = lines.line_of(item.start)
            out.append(Edit(lines.start(line), lines.end(line), "", fix.location))
            continue
        joint = nl + lines.indent(item.start) + "- " if dash else "," + nl + lines.indent(item.start)
        out.append(Edit(item.start, item.end, joint.join(render(a, i) for a in new), fix.location))
    survivors = [i for i, new in enumerate(fix.items) if new != ()]
    last = items[survivors[-1]] if survivors else None
    if last is not None and last.comma_end is not None and items[-1].comma_end is None:
        out.append(Edit(last.end, last.comma_end, "", fix.location))  # JSON: no comma after the new last item
    return out


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
