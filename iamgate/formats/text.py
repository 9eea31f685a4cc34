"""For people at a terminal: grouped per principal, counts first, colour only on a TTY.

Every string from the scanned repository goes through `escape.terminal` (`t` below): a role name
with an escape sequence shows as `\\x1b[…`, never moves the cursor or recolours the screen.
"""
from __future__ import annotations

from collections import defaultdict

from ..escape import terminal as t
from ..model import severity_rank
from ..reference.catalog import action_names
from . import (
    FORMATS,
    RESULT_WORD,
    Format,
    deployment_label,
    deployment_notes,
    grant_differs,
    judged_in,
    plural,
    skipped_heading,
    usage_warning,
    verdict,
    verdict_lines,
)
from .markdown import describe_source

_COLORS = {"critical": "\033[1;35m", "high": "\033[1;31m", "medium": "\033[33m", "low": "\033[36m",
           "info": "\033[2m", "pass": "\033[1;32m", "fail": "\033[1;31m", "dim": "\033[2m", "bold": "\033[1m"}
_RESET = "\033[0m"
MAX_LISTED = 12
SEVERITY_WIDTH = 8  # the widest severity, CRITICAL


def short_list(actions, limit=MAX_LISTED, readable: bool = False) -> str:
    """The first `limit` actions and how many more; `readable`: in AWS's case, converting only those shown
    (a finding on a `NotAction` grant lists ~10,000 actions)."""
    actions = actions if isinstance(actions, (list, tuple)) else list(actions)  # a finding's: no copy of 10,000
    shown = action_names(actions[:limit]) if readable else actions[:limit]
    text = t(", ".join(map(str, shown)))  # escaped once: the separators hold no control character
    return text + (f", … and {len(actions) - limit} more" if len(actions) > limit else "")


@FORMATS.register
class TextFormat(Format):
    name = "text"
    description = "human-readable, grouped per principal"

    def c(self, key: str, text: str) -> str:
        return f"{_COLORS[key]}{text}{_RESET}" if self.color else text

    def severity(self, severity: str) -> str:
        """Padded before colouring, so columns line up with and without colour."""
        return self.c(severity, f"{severity.upper():<{SEVERITY_WIDTH}}")

    def render(self, report) -> str:
        cat = report.catalog
        lines = [self.c("bold", "iamgate") + f"  catalog {cat['source']} {cat['version']} ({cat['updated'][:10]})", ""]
        lines[1:1] = [self.c("dim", t(line)) for line in report.provenance()]
        warning = usage_warning(report)
        if warning:
            lines += [self.c("high", "WARNING: " + warning), ""]
        by_principal = defaultdict(list)
        for f in report.findings:
            by_principal[f.principal].append(f)
        for r in sorted(report.results, key=lambda r: (-max([severity_rank(f.severity) for f in
                                                              by_principal.get(r.principal.id, [])] or [-1]),
                                                        r.principal.id)):
            p = r.principal
            # the reasons of a verdict are disjoint: counted without building the sorted verdict lists
            counts = {k: sum(map(len, r.groups.get(k, {}).values()))
                      for k in ("used", "unused", "unobservable", "unknown", "no-usage-data", "new", "too_recent")}
            granted = sum(v for k, v in counts.items() if k != "unknown")
            name = f" ({t(p.display_name)}{'*' if p.name_is_prefix else ''})" if p.name and p.name != p.id else ""
            lines.append(self.c("bold", t(p.id)) + name + f"  {p.kind}  " + self.c("dim", t(p.location or "")))
            several = bool(judged_in(r))  # one baseline line per deployment, saying how it was matched
            for d in r.deployments if several else [None]:
                b = d.baseline if d is not None else r.baseline
                label = f" {t(deployment_label(d))}" if d is not None else ""
                if b is None:
                    lines.append(f"  baseline{label}: none" + (f" ({t(d.matched_by)})" if d and d.matched_by else ""))
                    continue
                window = f"{t((b.window_start or '?')[:10])} → {t((b.window_end or '?')[:10])}"
                via = "; ".join(n + (f" ({x})" if x else "") for n, x in map(describe_source, b.sources))
                how = f"  matched by {t(d.matched_by)}" if d is not None and d.matched_by else ""
                lines.append(f"  baseline{label} {t(b.principal_arn)}  {window}" + ("" if b.complete else
                             "  (incomplete)") + (f"  via {t(via)}" if via else "") + how)
            lines.append("  " + "  ".join([f"granted {granted}"] + [f"{k} {v}" for k, v in counts.items() if v]))
            lines.append("  " + r.judged.text())
            lines += ["  " + t(line) for line in verdict_lines(r, action_names)]
            differs = grant_differs(report, p.id)
            if differs:
                lines.append("  the grant differs per deployment:")
                lines += [f"    {t(d)}" for d in differs]
            for note in r.notes:
                lines.append("  " + self.c("dim", f"note: {t(note)}"))
            for f in by_principal.get(p.id, []):
                mark = "" if report.is_new(f) else self.c("dim", " (also on base)")
                why = self.c("dim", f"  ({t(f.reason)})") if f.reason else ""
                lines.append(f"  {self.severity(f.severity)} {f.check}  {t(f.location or '')}{why}{mark}")
                lines.append(f"           {t(f.message)}")
                if f.actions:
                    lines.append("           " + short_list(f.actions, readable=True))
            lines.append("")
        judged = {r.principal.id for r in report.results}
        orphans = [f for f in report.findings if f.principal not in judged]
        for f in orphans:
            lines.append(f"{self.severity(f.severity)} {f.check}  {t(f.location or '')}  {t(f.message)}")
        if report.unmatched_baselines:
            lines.append(f"{plural(len(report.unmatched_baselines), 'baseline')} matched no principal in the code: "
                         + short_list(report.unmatched_baselines, 5))
        for note in deployment_notes(report):
            lines.append(self.c("medium", f"note: {t(note)}"))
        for note in report.notes:
            lines.append(self.c("dim", f"note: {t(note)}"))
        if report.suppressed:
            lines.append(f"{plural(sum(len(f.actions) for f in report.suppressed), 'action')} allowlisted")
        if report.skipped:
            lines.append(self.c("medium", skipped_heading(report) + ":"))
            lines += [f"  {t(s.file)}: {t(s.reason)}" for s in report.skipped]
        if report.errors:
            lines.append(self.c("high", f"{plural(len(report.errors), 'error')}:"))
            for e in report.errors:
                lines.append(f"  {t(e.file)}{':' + str(e.line) if e.line else ''}: {t(e.message)}")
        lines.append(f"{self.verdict(report)}  ({plural(len(report.results), 'principal')}, "
                     f"{plural(len(report.findings), 'finding')})")
        return "\n".join(lines) + "\n"

    def verdict(self, report) -> str:
        return self.c("pass" if report.result == "pass" else "fail", RESULT_WORD[report.result]) + \
            f": {verdict(report)}"
