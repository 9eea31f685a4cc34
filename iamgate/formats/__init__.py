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


def deployment_label(d) -> str:
    """`staging (111111111111)`: a deployment's name, with its account where the name is not the account."""
    return d.name + (f" ({d.account})" if d.account and d.account != d.name else "")


def judged_in(r) -> str | None:
    """`judged in staging (111111111111) and prod (222222222222)` where the principal has several deployments
    or a named one without a baseline; None for the usual single matched baseline."""
    deps = r.deployments
    if len(deps) < 2 and all(d.baseline is not None for d in deps):
        return None
    judged = [deployment_label(d) for d in deps if d.baseline is not None]
    missing = [d.name for d in deps if d.baseline is None]
    out = ("judged in " + _and(judged)) if judged else "judged in no deployment"
    return out + (f"; no baseline for {_and(missing)}" if missing else "")


def _and(items: list[str]) -> str:
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else (items[0] if items else "")


def verdict_lines(r, names=lambda acts: list(acts), limit: int = 12) -> list[str]:
    """What every format says beside the findings about the time and deployment verdicts of one principal:
    where it was judged, what is too recent to judge (and from when), where partly used actions were used.
    `names` renders a list of actions (sorted, in AWS's case)."""
    from ..reference.catalog import sort_actions

    def shown(acts) -> str:
        acts = sort_actions(acts)
        return ", ".join(names(acts[:limit])) + (f" and {len(acts) - limit} more" if len(acts) > limit else "")
    lines = []
    where = judged_in(r)
    if where:
        lines.append(where)
    for reason, acts in sorted(r.groups.get("too_recent", {}).items()):
        lines.append(f"{plural(len(acts), 'action')} too recent to judge ({reason}): {shown(acts)}")
    for deps, acts in partly_used(r):
        lines.append(f"used only in {_and(list(deps))}: {shown(acts)}")
    return lines


def partly_used(r) -> list[tuple[tuple[str, ...], frozenset]]:
    """(deployments, actions) for the used actions seen in only some of the deployments that judged them."""
    everywhere = tuple(d.name for d in r.judged_in)
    return [(deps, acts) for deps, acts in sorted(r.used_in.items()) if len(everywhere) > 1 and deps != everywhere]


# -- deployments (issue 21): how each was matched, where grants differ, what the report says about matching --

def matched(d) -> str:
    """One deployment: `staging (111111111111): arn:… matched by name`."""
    if d.baseline is None:
        return f"{deployment_label(d)}: {d.matched_by or 'no baseline'}"
    return f"{deployment_label(d)}: {d.baseline.principal_arn} matched by {d.matched_by or 'the config'}" + \
        (" (judged with its own grant)" if d.principal is not None else "")


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


def history_note(r) -> str | None:
    """The principal's note that its grant ages are unknown (no history: a shallow clone, no git), else None."""
    h = r.history
    if h is None or h.known:
        return None
    from ..judge.evidence import HISTORY_NOTE
    return h.note or HISTORY_NOTE
