"""The sticky pull-request comment: a hidden marker line, then the Markdown report within GitHub's limits.

The marker is keyed by the config and the scanned paths, so matrix jobs each keep their own
comment. The body is cut to size by dropping whole detail sections and rows, never mid-row.
"""
from __future__ import annotations

import hashlib
import json

from ..escape import md
from .markdown import MarkdownReport

MAX_BODY_CHARS = 65536  # GitHub's limit for an issue or review comment body, in characters
MAX_BODY_BYTES = 262144  # and in bytes
SUMMARY_MAX_BYTES = 1024 * 1024  # a step's job summary
SAFETY_MARGIN = 256
MARKER_PREFIX = "<!-- iamgate:comment"


def comment_key(config: str | None, paths: list[str]) -> str:
    data = json.dumps({"config": config or "", "paths": sorted(paths)}, sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def marker(config: str | None, paths: list[str]) -> str:
    return f"{MARKER_PREFIX} {comment_key(config, paths)} -->"


def title(config: str | None, paths: list[str]) -> str:
    """The report's heading; names the paths and config when they are not the defaults."""
    base = "iamgate least-privilege report"
    shown = [p for p in paths if p not in (".", "./")]
    extra = ", ".join(md(p) for p in shown) + (f" (config {md(config)})" if config else "")
    return f"{base}: {extra}" if extra.strip() else base


def _notes(notes: list[str]) -> str:
    return "".join(f"> {n}\n" for n in notes) + ("\n" if notes else "")


def comment_body(report, marker_line: str, heading: str, summary_link: str | None = None,
                 notes: list[str] | None = None, fix_details: str = "", sections: str = "",
                 full_report: str | None = None) -> str:
    """The marker, any notes (already escaped Markdown), `sections` (such as the PR's configuration
    changes), the report fitted to the limits, then `fix_details` (the least-privilege diff not posted
    as suggestions; left out if it cannot fit)."""
    prefix = marker_line + "\n" + _notes(notes or []) + sections
    if fix_details and len(fix_details) > MAX_BODY_CHARS // 2:
        fix_details = ""
    report_md = MarkdownReport(report, heading, summary_link, full_report)

    def build(details: str) -> str:
        return prefix + report_md.render(
            max_chars=MAX_BODY_CHARS - len(prefix) - len(details) - SAFETY_MARGIN,
            max_bytes=MAX_BODY_BYTES - len(prefix.encode()) - len(details.encode()) - SAFETY_MARGIN
        ) + ("\n" + details if details else "")

    body = build(fix_details)
    if not fits(body) and fix_details:  # the notes and sections leave no room for the fix as well
        body = build("")
    return body if fits(body) else _cut(body, full_report)


def _cut(body: str, full_report: str | None) -> str:
    """Last resort, when even the smallest report does not fit beside the notes and sections (text
    the PR can make long): whole lines up to the limit, then a line saying so. A body GitHub refuses
    would leave the previous run's comment standing."""
    end = "\n\n_Cut to fit GitHub's comment limit; the full report is in the job summary" + (
        f" and the `report-json` output: {md(full_report)}" if full_report else "") + "._\n"
    budget_chars = MAX_BODY_CHARS - len(end) - SAFETY_MARGIN
    budget_bytes = MAX_BODY_BYTES - len(end.encode()) - SAFETY_MARGIN
    kept, chars, size = [], 0, 0
    for line in body.splitlines(keepends=True):
        chars, size = chars + len(line), size + len(line.encode())
        if chars > budget_chars or size > budget_bytes:
            break
        kept.append(line)
    return "".join(kept) + end


def summary_body(report, heading: str, notes: list[str] | None = None, sections: str = "",
                 full_report: str | None = None) -> str:
    """The full report for the job summary, kept under 1 MiB; where it leaves sections out it
    names `full_report` (the `report-json` output)."""
    prefix = _notes(notes or []) + sections
    return prefix + MarkdownReport(report, heading, full_report=full_report).render(
        max_bytes=SUMMARY_MAX_BYTES - len(prefix.encode()) - SAFETY_MARGIN)


def fits(body: str) -> bool:
    return len(body) <= MAX_BODY_CHARS and len(body.encode()) <= MAX_BODY_BYTES
