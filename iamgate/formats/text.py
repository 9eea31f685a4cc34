"""For people at a terminal: grouped per principal, counts first, colour only on a TTY."""
from __future__ import annotations

from collections import defaultdict

from ..model import severity_rank
from . import FORMATS, Format
from .markdown import describe_source

_COLORS = {"critical": "\033[1;35m", "high": "\033[1;31m", "medium": "\033[33m", "low": "\033[36m",
           "info": "\033[2m", "pass": "\033[1;32m", "fail": "\033[1;31m", "dim": "\033[2m", "bold": "\033[1m"}
_RESET = "\033[0m"
MAX_LISTED = 12


def short_list(actions, limit=MAX_LISTED) -> str:
    actions = list(actions)
    text = ", ".join(actions[:limit])
    return text + (f", … and {len(actions) - limit} more" if len(actions) > limit else "")


@FORMATS.register
class TextFormat(Format):
    name = "text"
    description = "human-readable, grouped per principal"

    def c(self, key: str, text: str) -> str:
        return f"{_COLORS[key]}{text}{_RESET}" if self.color else text

    def render(self, report) -> str:
        cat = report.catalog
        lines = [self.c("bold", "iamgate") + f"  catalog {cat['source']} {cat['version']} ({cat['updated'][:10]})", ""]
        by_principal = defaultdict(list)
        for f in report.findings:
            by_principal[f.principal].append(f)
        for r in sorted(report.results, key=lambda r: (-max([severity_rank(f.severity) for f in
                                                              by_principal.get(r.principal.id, [])] or [-1]),
                                                        r.principal.id)):
            p = r.principal
            counts = {k: len(r.actions(k)) for k in ("used", "unused", "unobservable", "unknown", "no-usage-data")}
            granted = sum(v for k, v in counts.items() if k != "unknown")
            name = f" ({p.display_name}{'*' if p.name_is_prefix else ''})" if p.name and p.name != p.id else ""
            lines.append(self.c("bold", p.id) + name + f"  {p.kind}  " + self.c("dim", str(p.location or "")))
            if r.baseline:
                b = r.baseline
                window = f"{(b.window_start or '?')[:10]} → {(b.window_end or '?')[:10]}"
                via = "; ".join(n + (f" ({d})" if d else "") for n, d in map(describe_source, b.sources))
                lines.append(f"  baseline {b.principal_arn}  {window}" + ("" if b.complete else "  (incomplete)")
                             + (f"  via {via}" if via else ""))
            else:
                lines.append("  baseline: none")
            lines.append("  " + "  ".join([f"granted {granted}"] + [f"{k} {v}" for k, v in counts.items() if v]))
            for note in r.notes:
                lines.append("  " + self.c("dim", f"note: {note}"))
            for f in by_principal.get(p.id, []):
                mark = "" if report.is_new(f) else self.c("dim", " (also on base)")
                why = self.c("dim", f"  ({f.reason})") if f.reason else ""
                lines.append(f"  {self.c(f.severity, f.severity.upper()):<8} {f.check}  {f.location or ''}{why}{mark}")
                lines.append(f"           {f.message}")
                if f.actions:
                    lines.append("           " + short_list(f.actions))
            lines.append("")
        orphans = [f for f in report.findings if f.principal not in {r.principal.id for r in report.results}]
        for f in orphans:
            lines.append(f"{self.c(f.severity, f.severity.upper())} {f.check}  {f.location or ''}  {f.message}")
        if report.unmatched_baselines:
            lines.append(f"{len(report.unmatched_baselines)} baseline(s) matched no principal in the code: "
                         + short_list(report.unmatched_baselines, 5))
        for note in report.notes:
            lines.append(self.c("dim", f"note: {note}"))
        if report.suppressed:
            lines.append(f"{sum(len(f.actions) for f in report.suppressed)} action(s) allowlisted")
        if report.errors:
            lines.append(self.c("high", f"{len(report.errors)} error(s):"))
            for e in report.errors:
                lines.append(f"  {e.file}{':' + str(e.line) if e.line else ''}: {e.message}")
        n = len(report.failing)
        if report.fail_on == "never":
            verdict = self.c("pass", "PASS") + " (fail-on never)"
        elif n:
            verdict = self.c("fail", "FAIL") + f": {n} finding{'s' if n != 1 else ''} at or above {report.fail_on}"
        else:
            verdict = self.c("pass", "PASS") + f": no finding at or above {report.fail_on}"
        total = len(report.findings)
        lines.append(f"{verdict}  ({len(report.results)} principals, {total} findings)")
        return "\n".join(lines) + "\n"
