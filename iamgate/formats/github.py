"""GitHub Actions annotations (`::error file=…,line=…::…`) on the statement's file and line.

GitHub shows at most 10 annotations of each level per step, so the worst are written first,
and whatever does not fit is counted in one closing notice.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..escape import plain, workflow_data, workflow_property
from ..model import severity_rank
from ..reference.catalog import action_names
from ..repo import repo_relative, repo_root
from . import FORMATS, Format, deployment_notes, grant_differs, history_note, judged_in, unreadable, usage_warning, verdict_lines

LEVELS = ("error", "warning", "notice")
PER_LEVEL = 10  # GitHub's display limit per level and step
MAX_ACTIONS = 10


@dataclass(frozen=True)
class Annotation:
    level: str  # error | warning | notice
    message: str
    title: str = ""
    file: str | None = None  # relative to the repository root
    line: int | None = None
    rank: int = 0  # higher is shown first within its level

    def command(self) -> str:
        """One workflow command line; the repo's text is plain (no Markdown backslashes), on one line,
        with control characters visible, then encoded for the runner."""
        props = []
        if self.file:
            props.append(f"file={workflow_property(plain(self.file))}")
            if self.line:
                props.append(f"line={self.line}")
        if self.title:
            props.append(f"title={workflow_property(plain(self.title))}")
        return f"::{self.level}{' ' + ','.join(props) if props else ''}::{workflow_data(plain(self.message))}"


def _actions(actions) -> str:
    shown = ", ".join(action_names(actions[:MAX_ACTIONS]))
    return shown + (f" and {len(actions) - MAX_ACTIONS} more" if len(actions) > MAX_ACTIONS else "")


def annotations(report) -> list[Annotation]:
    root = repo_root()
    failing = set(id(f) for f in report.failing)
    where = {r.principal.id: judged_in(r) for r in report.results}
    out = []
    for f in report.findings:
        if id(f) in failing:
            lvl = "error"
        else:
            lvl = "notice" if f.severity == "info" else "warning"
        new = report.new_keys is not None and report.is_new(f)
        msg = f"{f.principal}: {f.message}" + (f": {_actions(f.actions)}" if f.actions else "") + \
            (f" ({where[f.principal]})" if where.get(f.principal) else "")
        out.append(Annotation(lvl, msg, f"iamgate {f.check} ({f.severity}{', new' if new else ''})",
                              repo_relative(f.location.file, root) if f.location else None,
                              f.location.line if f.location else None,
                              severity_rank(f.severity) * 2 + (1 if new else 0)))
    comparison = getattr(report, "comparison", None)
    for g in comparison.removed_used if comparison else ():
        out.append(Annotation(
            "warning", f"{g.principal}: this change removes {_actions(g.actions)}, which the usage baseline shows "
                       "in use; removing it would break the principal",
            "iamgate: removes a used grant", repo_relative(g.location.file, root) if g.location else None,
            g.location.line if g.location else None, 20))
    for r in report.results:  # beside the findings: grant age unknown, too recent to judge, where judged
        loc = r.principal.location
        file, line = (repo_relative(loc.file, root), loc.line) if loc else (None, None)
        note = history_note(r)
        if note:
            out.append(Annotation("warning", f"{r.principal.id}: {note}", "iamgate: grant history unknown",
                                  file, line, 6))
        for text in verdict_lines(r, action_names) + [f"the grant differs: {d}" for d in grant_differs(report, r.principal.id)]:
            out.append(Annotation("notice", f"{r.principal.id}: {text}", "iamgate: not judged yet" if
                                  "too recent" in text else "iamgate: deployments", file, line, 1))
    for e in report.errors:
        out.append(Annotation("error", e.message, "iamgate: cannot read this input",
                              repo_relative(e.file, root), e.line, 5))
    for s in report.skipped:
        out.append(Annotation("warning", s.reason, "iamgate: not read", repo_relative(s.file, root), None, 4))
    out += [Annotation("warning", n, "iamgate: grant history", rank=25) for n in getattr(report, "history_notes", ())]
    warning = usage_warning(report)
    if warning:
        out.append(Annotation("warning", warning, "iamgate: nothing was judged", rank=30))
    for note in deployment_notes(report):
        out.append(Annotation("warning", note, "iamgate: deployments", rank=25))
    if report.result == "error":
        out.append(Annotation("error", unreadable(report), "iamgate: could not decide", rank=30))
    return out


def render_annotations(items: list[Annotation], per_level: int = PER_LEVEL) -> str:
    """The worst `per_level` of each level, then one notice counting the rest."""
    by_level = {lvl: sorted((a for a in items if a.level == lvl), key=lambda a: -a.rank) for lvl in LEVELS}
    hidden = {lvl: max(0, len(v) - per_level) for lvl, v in by_level.items()}
    if any(hidden.values()):
        hidden["notice"] = max(0, len(by_level["notice"]) - (per_level - 1))
        by_level["notice"] = by_level["notice"][:per_level - 1]
    shown = [a for lvl in LEVELS for a in by_level[lvl][:per_level]]
    lines = [a.command() for a in shown]
    if any(hidden.values()):
        parts = [f"{n} {lvl}{'s' if n != 1 else ''}" for lvl, n in hidden.items() if n]
        total = sum(hidden.values())
        lines.append(Annotation("notice", f"{total} more iamgate annotation{'s' if total != 1 else ''} not shown "
                                          f"({', '.join(parts)}); see the job summary for the full report",
                                "iamgate: more findings").command())
    return "\n".join(lines) + ("\n" if lines else "")


@FORMATS.register
class GitHubFormat(Format):
    name = "github"
    description = "GitHub Actions annotations on the statement's file and line"

    def render(self, report) -> str:
        return render_annotations(annotations(report))
