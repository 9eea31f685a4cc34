"""Stage 5: a Report -> text, json, markdown, sarif, github. One module per format; `comment` fits
the Markdown report into GitHub's limits for the sticky pull-request comment and the job summary."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from ..registry import Registry
from ..words import plural


class Format(ABC):
    name: ClassVar[str]
    description: ClassVar[str] = ""

    def __init__(self, color: bool = False):
        self.color = color

    @abstractmethod
    def render(self, report) -> str:
        """The report as text in this format."""


FORMATS: Registry[Format] = Registry(__name__)

NOTHING_JUDGED = "nothing was judged: no usage baseline matched any principal"


def unreadable(report) -> str:
    """Why the gate could not decide, in words (no text from the repository in it)."""
    return f"could not decide: {plural(report.unreadable, 'input')} unreadable"


def verdict(report) -> str:
    """The gate's result in words, without the pass/fail word (the formats add their own)."""
    n = len(report.failing)
    if n:
        return f"{plural(n, 'finding')} at or above {report.fail_on}"
    if report.result == "error":
        return f"{unreadable(report)}; not a pass"
    if report.usage_required_unmet:
        return "nothing was judged and require-usage-data is set"
    passed = "fail-on never" if report.fail_on == "never" else f"no finding at or above {report.fail_on}"
    return f"{passed}, but {NOTHING_JUDGED}" if report.nothing_judged else passed


RESULT_WORD = {"pass": "PASS", "fail": "FAIL", "error": "ERROR"}


def usage_warning(report) -> str | None:
    """The prominent line for a run in which no principal had usage data, else None."""
    if not report.nothing_judged:
        return None
    then = ("require-usage-data is set, so the gate fails" if report.require_usage_data else
            "every grant passes unjudged; set require-usage-data to fail the gate")
    return f"{NOTHING_JUDGED} ({plural(len(report.results), 'principal')}); {then}"


def skipped_heading(report) -> str:
    return f"{plural(len(report.skipped), 'file')} under the scanned paths not read"
