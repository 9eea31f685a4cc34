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
        return "nothing was judged and require-usage-data is set" if report.nothing_judged else \
            report.usage_required_reason()
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


# -- deployments (issue 21): every format says where each principal was judged ---------------------------

def judged_in(r) -> str:
    """`judged in staging (111111111111) and prod (222222222222)`, or "" for a principal deployed once
    (its baseline line says where)."""
    from ..usage.deployments import describe
    deps = getattr(r, "deployments", ())
    if len(deps) < 2 and all(d.baseline is not None for d in deps):
        return ""
    return describe(deps)


def matched(d) -> str:
    """One deployment: `staging (111111111111): arn:… matched by name`."""
    where = f"{d.name} ({d.account})" if d.account and d.account != d.name else d.name
    if d.baseline is None:
        return f"{where}: {d.matched_by or 'no baseline'}"
    return f"{where}: {d.baseline.principal_arn} matched by {d.matched_by or 'the config'}" + \
        (" (its own grant)" if d.principal is not None else "")


def partly_used(r) -> list[tuple[tuple[str, ...], list[str]]]:
    """(deployments, actions) for used actions seen in only some of the deployments that judged them."""
    everywhere = {d.name for d in getattr(r, "judged_in", ())}
    if len(everywhere) < 2:
        return []
    from ..reference.catalog import sort_actions
    return [(names, sort_actions(acts)) for names, acts in sorted(getattr(r, "used_in", {}).items())
            if set(names) != everywhere and acts]


def grant_differs(report, pid: str) -> list[str]:
    """`prod: template.yaml:12: sqs:DeleteMessage` for what only some deployments grant."""
    return [f"{name}: {what}" for name, items in report.grant_differs.get(pid, ()) for what in items]


def deployment_notes(report) -> list[str]:
    """Report-wide: baselines that fit two principals or several in an account, named deployments without one."""
    notes = list(report.matching_notes)
    missing: dict[tuple, list[str]] = {}
    for pid, name, account in report.missing_deployments:
        missing.setdefault((name, account), []).append(pid)
    for (name, account), pids in missing.items():
        notes.append(f"deployment {name}{f' ({account})' if account else ''} has no baseline for "
                     f"{plural(len(pids), 'principal')}: {', '.join(pids[:5])}{' …' if len(pids) > 5 else ''}")
    return notes
