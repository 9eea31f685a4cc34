"""Markdown for PR comments and job summaries. Every repository string is escaped."""
from __future__ import annotations

from collections import defaultdict

from ..escape import clip, code, html_text, md
from ..judge.verdicts import failed_source_notes
from ..model import severity_rank
from ..reference.catalog import action_names
from . import (
    FORMATS,
    Format,
    deployment_notes,
    grant_differs,
    history_note,
    judged_in,
    matched,
    plural,
    skipped_heading,
    usage_warning,
    verdict_lines,
)

BAR_WIDTH = 20
MAX_CHANGE_ROWS = 25
MAX_LISTED = 50  # errors and skipped files
SOURCE_NAMES = {"access-analyzer": "IAM Access Analyzer policy generation",
                "unused-access": "IAM Access Analyzer unused access", "cloudtrail": "CloudTrail",
                "athena": "CloudTrail (Athena)", "last-accessed": "IAM last accessed"}
SEVERITY_ICON = {"critical": "🟣", "high": "🔴", "medium": "🟠", "low": "🟡", "info": "⚪"}


def describe_source(src) -> tuple[str, str]:
    """(a usage source's name, its detail): for unused access, the tracking period and the analysis day."""
    kind = str(src.get("kind", ""))
    detail = ""
    if kind == "unused-access" and src.get("tracking_period_days"):
        analysed = f", analysed {str(src['analyzed_at'])[:10]}" if src.get("analyzed_at") else ""
        detail = f"{src['tracking_period_days']}-day tracking period{analysed}"
    if src.get("error"):
        detail = "failed"
    return SOURCE_NAMES.get(kind, kind), detail


def bar(used: int, unused: int, unobservable: int, width: int = BAR_WIDTH) -> str:
    """A proportional bar, always `width` cells: █ used, ▓ unobservable, ░ unused."""
    parts = (used, unobservable, unused)
    total = sum(parts)
    if total == 0:
        return ""
    exact = [width * n / total for n in parts]
    cells = [int(x) for x in exact]
    for i in sorted(range(3), key=lambda i: exact[i] - cells[i], reverse=True)[:width - sum(cells)]:
        cells[i] += 1  # largest remainders first
    for i, n in enumerate(parts):
        if n and not cells[i]:  # never hide a non-zero part
            cells[i] = 1
            cells[cells.index(max(cells))] -= 1
    return "█" * cells[0] + "▓" * cells[1] + "░" * cells[2]


def action_list(actions, limit: int = 40) -> str:
    items = [code(a) for a in action_names(list(actions)[:limit])]
    more = len(actions) - limit
    return ", ".join(items) + (f" … and {more} more" if more > 0 else "")


class MarkdownReport:
    """Builds the report in parts, so a size budget can drop detail rows, never cut mid-row."""

    def __init__(self, report, title: str = "iamgate least-privilege report", summary_link: str | None = None,
                 full_report: str | None = None):
        self.report = report
        self.title = title
        self.summary_link = summary_link
        self.full_report = full_report  # where the whole report is (the Action's `report-json`), named when cut

    def verdict(self) -> str:
        r = self.report
        n = len(r.failing)
        if r.result == "error":  # never "passed" for what could not be read
            return (f"⚠️ **Could not decide: {plural(r.unreadable, 'input')} unreadable** "
                    "(listed below). The gate does not pass what it could not read.")
        if r.result == "fail":
            if n:
                return f"❌ **Gate failed**: {plural(n, 'finding')} at or above **{r.fail_on}**."
            return "❌ **Gate failed**: no principal has usage data, and usage data is required."
        if r.nothing_judged:
            return "✅ **Gate passed**, but nothing was judged (see below)."
        if not r.findings:
            return "✅ **Gate passed**: no findings. Every granted action is used or cannot be judged."
        return f"✅ **Gate passed**: no finding at or above **{r.fail_on}**."

    def header(self) -> list[str]:
        cat = self.report.catalog
        warning = usage_warning(self.report)
        banner = ["> [!WARNING]", f"> **{md(warning[0].upper() + warning[1:])}.**", ""] if warning else []
        return [f"### {self.title}", "", self.verdict(), ""] + banner + [
                f"<sub>Action catalog: {md(cat['source'])} {md(cat['version'])} ({md(cat['updated'][:10])}). "
                f"{self.sources()}{self.windows()}{self.base()}Bar: █ used ▓ unobservable ░ unused.</sub>",
                *(f"<sub>{md(line)}.</sub>" for line in self.report.provenance()), ""]

    def sources(self) -> str:
        """The usage sources of the baselines; for unused access, its tracking periods and analysis days."""
        details: dict[str, set[str]] = {}
        for r in self.report.results:
            for src in r.baseline.sources if r.baseline else ():
                name, detail = describe_source(src)
                details.setdefault(name, set()).update([detail] if detail else [])
        if not details:
            return ""
        parts = [md(name) + (f" ({md('; '.join(sorted(extra)))})" if extra else "")
                 for name, extra in sorted(details.items())]
        return f"Usage: {', '.join(parts)}. "

    def windows(self) -> str:
        """The span of the usage baselines' windows."""
        starts = sorted(r.baseline.window_start[:10] for r in self.report.results
                        if r.baseline and r.baseline.window_start)
        ends = sorted(r.baseline.window_end[:10] for r in self.report.results if r.baseline and r.baseline.window_end)
        if not starts or not ends:
            return ""
        return f"Baseline window: {md(starts[0])} → {md(ends[-1])}. "

    def base(self) -> str:
        r = self.report
        if r.new_keys is None:
            return ""
        new = sum(1 for f in r.findings if r.is_new(f))
        comp = r.comparison
        rev = f" {code(comp.commit[:12])}" if comp is not None else ""
        total = len(r.findings)
        return f"Compared with the base{rev}: {new} of {total} finding{'s' if total != 1 else ''} new. "

    def table(self) -> list[str]:
        rows = ["| Principal | Granted | Used | Unused | Unobservable | No data | Worst | Usage |",
                "|---|---:|---:|---:|---:|---:|---|---|"]
        worst = self._worst()
        for res in self._ordered():
            p = res.principal
            c = {k: len(res.actions(k)) for k in ("used", "unused", "unobservable", "no-usage-data", "unknown")}
            granted = len(res.granted)  # new and too_recent too: the summary line below counts them
            w = worst.get(p.id)
            name = md(p.id) + (f" ({md(p.display_name)})" if p.name and p.name != p.id else "")
            name += f"<br><sub>{md(res.judged.text())}</sub>"
            name += "".join(f"<br><sub>⚠️ {md(clip(n))}</sub>" for n in failed_source_notes(res.baseline))
            name += "".join(f"<br><sub>⚠️ {md(clip(n))}</sub>" for n in filter(None, [history_note(res)]))
            name += "".join(f"<br><sub>{md(clip(n))}</sub>" for n in verdict_lines(res, action_names, limit=5))
            rows.append(f"| {name} | {granted} | {c['used']} | {c['unused']} | {c['unobservable']} | "
                        f"{c['no-usage-data']} | {SEVERITY_ICON[w] + ' ' + w if w else '—'} | "
                        f"{code(bar(c['used'], c['unused'], c['unobservable'])) or '—'} |")
        return rows + [""]

    def _worst(self) -> dict:
        worst: dict[str, str] = {}
        for f in self.report.findings:
            if f.principal not in worst or severity_rank(f.severity) > severity_rank(worst[f.principal]):
                worst[f.principal] = f.severity
        return worst

    def _ordered(self):
        worst = self._worst()
        return sorted(self.report.results, key=lambda r: (-severity_rank(worst.get(r.principal.id, "info"))
                                                          if r.principal.id in worst else 1, r.principal.id))

    def details(self) -> list[list[str]]:
        """One block per principal with findings; each block is kept or dropped whole."""
        by_principal = defaultdict(list)
        for f in self.report.findings:
            by_principal[f.principal].append(f)
        blocks = []
        for res in self._ordered():
            p = res.principal
            fs = by_principal.get(p.id)
            if not fs:
                continue
            b = res.baseline
            lines = [f"<details><summary><b>{html_text(p.id)}</b> — {len(fs)} finding{'s' if len(fs) != 1 else ''}"
                     "</summary>", ""]
            if b:
                lines.append(f"Baseline {code(b.principal_arn)}, window {md((b.window_start or '?')[:10])} → "
                             f"{md((b.window_end or '?')[:10])}{'' if b.complete else ' (reported incomplete)'}.")
            else:
                lines.append("No usage baseline matched this principal.")
            if judged_in(res):
                lines += ["", md(judged_in(res).capitalize()) + ":", ""]
                lines += [f"- {md(matched(d))}" for d in res.deployments]
            differs = grant_differs(self.report, p.id)
            if differs:
                lines += ["", "The grant differs per deployment:", ""] + [f"- {md(d)}" for d in differs]
            changed = self._changed().get(p.id)
            if changed:
                lines += ["", "Lines changed by this PR: " + action_list(changed, MAX_CHANGE_ROWS)]
            lines += ["", "| Severity | Check | Where | Actions | |", "|---|---|---|---|---|"]
            for f in fs:
                where = code(str(f.location)) if f.location else ""
                new = "new" if self.report.new_keys is not None and self.report.is_new(f) else ""
                check = code(f.check) + (f"<br><sub>{md(f.reason)}</sub>" if f.reason else "")
                lines.append(f"| {SEVERITY_ICON[f.severity]} {f.severity} | {check} | {where} | "
                             f"{md(f.message)}{': ' + action_list(f.actions) if f.actions else ''} | {new} |")
            lines += ["", "</details>", ""]
            blocks.append(lines)
        return blocks

    def _changed(self) -> dict:
        comp = self.report.comparison
        out = defaultdict(list)
        for c in comp.changed if comp is not None else ():
            out[c.principal].append(str(c))
        return out

    def changes(self) -> list[str]:
        """In diff mode: grants the PR adds that were never observed, and used grants it removes."""
        comp = self.report.comparison
        if comp is None or not (comp.new_grants or comp.removed_used):
            return []
        lines = []
        if comp.removed_used:
            lines += ["⚠️ **Removing grants in use.** The usage baseline shows these actions in use; "
                      "removing them would break the principal:", ""]
            for g in comp.removed_used[:MAX_CHANGE_ROWS]:
                where = f" (was {code(str(g.base_location))})" if g.base_location else ""
                lines.append(f"- **{md(g.principal)}**{where}: {action_list(g.actions)}")
            if len(comp.removed_used) > MAX_CHANGE_ROWS:
                lines.append(f"- … and {len(comp.removed_used) - MAX_CHANGE_ROWS} more")
            lines.append("")
        if comp.new_grants:
            lines += ["**New grants, not yet observable.** This PR grants actions that no usage baseline can "
                      "have seen yet; each fails the gate only if its risk reaches "
                      f"**{md(self.report.fail_on)}**:", "",
                      "| Principal | Where | Risk | Actions |", "|---|---|---|---|"]
            for g in comp.new_grants[:MAX_CHANGE_ROWS]:
                where = code(str(g.location)) if g.location else ""
                why = ""
                if g.justified:
                    why = (f" — justified by {g.denied_calls} denied call{'s' if g.denied_calls != 1 else ''} "
                           f"({action_list(g.justified, 5)})")
                lines.append(f"| {md(g.principal)} | {where} | {SEVERITY_ICON[g.severity]} {g.severity} | "
                             f"{action_list(g.actions)}{why} |")
            if len(comp.new_grants) > MAX_CHANGE_ROWS:
                lines.append(f"| … and {len(comp.new_grants) - MAX_CHANGE_ROWS} more | | | |")
            lines.append("")
        return lines

    def footer(self) -> list[str]:
        r = self.report
        lines = []
        warnings = [n for n in r.notes if n.startswith("warning: ")]  # from the usage sources
        deployments = deployment_notes(r)
        if deployments:
            lines += ["**Deployments:**", ""] + [f"- {md(n)}" for n in deployments[:MAX_LISTED]]
            lines.append("")
        if warnings:
            lines += ["**Usage warnings:**", ""] + [f"- {md(n[len('warning: '):])}" for n in warnings[:MAX_LISTED]]
            lines.append("")
        if r.skipped:
            lines += [f"**{skipped_heading(r)}:**", ""]
            lines += [f"- {code(s.file)}: {md(s.reason)}" for s in r.skipped[:MAX_LISTED]]
            if len(r.skipped) > MAX_LISTED:
                lines.append(f"- … and {len(r.skipped) - MAX_LISTED} more")
            lines.append("")
        if r.errors:
            lines += [f"**{plural(len(r.errors), 'error')}** while reading the code or usage:", ""]
            lines += [f"- {code(e.file + (':' + str(e.line) if e.line else ''))}: {md(e.message)}"
                      for e in r.errors[:MAX_LISTED]]
            if len(r.errors) > MAX_LISTED:
                lines.append(f"- … and {len(r.errors) - MAX_LISTED} more")
            lines.append("")
        return lines

    def render(self, max_chars: int | None = None, max_bytes: int | None = None) -> str:
        head, table, foot = self.header(), self.table(), self.footer()
        changes = self.changes()
        blocks = self.details()

        def assemble(n_blocks: int, note: list[str]) -> str:
            parts = head + table + changes + [line for b in blocks[:n_blocks] for line in b] + note + foot
            return "\n".join(parts) + "\n"

        text = assemble(len(blocks), [])
        if max_chars is None and max_bytes is None:
            return text

        def fits(t: str) -> bool:
            return (max_chars is None or len(t) <= max_chars) and (
                max_bytes is None or len(t.encode()) <= max_bytes)

        full = (f" The full report is the `report-json` output: {code(self.full_report)}."
                if self.full_report else "")
        n = len(blocks)
        while n > 0 and not fits(text):
            n -= 1
            dropped = len(blocks) - n
            link = (f" See the [job summary]({self.summary_link})." if self.summary_link else "") + full
            text = assemble(n, [f"_{plural(dropped, 'principal detail section')} left out to fit.{link}_", ""])
        if not fits(text):  # even the table is too long: drop table rows whole, keep the grant changes
            link = f" in the [job summary]({self.summary_link})" if self.summary_link else ""
            for kept_changes in ([changes, []] if changes else [[]]):
                keep = len(table) - 1
                while keep > 2 and not fits(text):
                    keep -= 1
                    more = plural(len(table) - 1 - keep, "more principal")
                    cut = table[:keep] + [f"| … {more}{link} | | | | | | | |", ""]
                    cut += [f"_{full.strip()}_", ""] if full else []
                    if changes and not kept_changes:
                        cut += [f"_The grant changes were left out to fit; they are{link or ' in the job summary'}._", ""]
                    text = "\n".join(head + cut + kept_changes + foot) + "\n"
                if fits(text):
                    break
        return text


@FORMATS.register
class MarkdownFormat(Format):
    name = "markdown"
    description = "Markdown, as used for PR comments and job summaries"

    def render(self, report) -> str:
        return MarkdownReport(report).render()
