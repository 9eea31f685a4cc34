"""A work budget per file for expansions the scanned code asks for (Terraform `count`, `for_each`,
`for` expressions, dynamic blocks and functions that build collections or text; CloudFormation
`Fn::ForEach`).

The author of a pull request controls these files, and three nested loops over 1,000 items ask for
a billion elements. Every element an expansion produces is charged to the file whose expression
produced it; a file over its budget stops being evaluated, and is an error naming the file and the
line, within seconds and with memory bounded by the budget.

Why 100,000 elements: CloudFormation allows 500 resources per template and IAM 5,000 roles or users
per account (and 10 managed policies per role, 6,144 characters per inline policy document), so
no real configuration expands to anything near 100,000 elements in one file; the budget is 200 times
the largest template CloudFormation accepts. Text is charged one element per 100 characters built,
so 10 MB of strings per file (doubling a string in a chain of locals is text, not elements).
"""
from __future__ import annotations

import contextvars
from contextlib import contextmanager

ELEMENTS = 100_000
CHARS_PER_ELEMENT = 100


class BudgetExceeded(Exception):
    """Not an evaluation error: nothing may catch it and carry on (not `try()`, not `can()`)."""

    def __init__(self, file: str, line: int | None, what: str):
        super().__init__(f"expansions in this file ({what}) exceed iamgate's work budget of {ELEMENTS:,} "
                         "elements per file; the file is not evaluated (see iamgate/sources/budget.py)")
        self.file, self.line = file, line


class Budget:
    def __init__(self, limit: int = ELEMENTS):
        self.limit = limit
        self.used: dict[str, int] = {}

    def charge(self, file: str | None, n: int, what: str, line: int | None = None) -> None:
        key = file or "?"
        total = self.used.get(key, 0) + max(int(n), 0)
        self.used[key] = total
        if total > self.limit:
            raise BudgetExceeded(key, line, what)


_CURRENT: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("iamgate_budget", default=None)


@contextmanager
def budget(limit: int = ELEMENTS):
    """Evaluation inside this block is charged to a fresh budget."""
    token = _CURRENT.set(Budget(limit))
    try:
        yield _CURRENT.get()
    finally:
        _CURRENT.reset(token)


def charge(file: str | None, n: int, what: str, line: int | None = None) -> None:
    """Charge `n` elements to `file` in the current budget (none outside a scan: unlimited)."""
    current = _CURRENT.get()
    if current is not None:
        current.charge(file, n, what, line)


def charge_text(file: str | None, text: str, what: str, line: int | None = None) -> None:
    if len(text) >= CHARS_PER_ELEMENT:
        charge(file, len(text) // CHARS_PER_ELEMENT, what, line)
