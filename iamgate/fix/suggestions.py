"""Least-privilege fixes on a pull request: one-click suggestions where the PR changed the lines,
otherwise a unified diff for the sticky comment's `<details>`.

A suggestion is a pull-request review comment with a ```suggestion block over the statement's
lines. Each carries a hidden marker keyed by the statement (file, policy, Sid or original actions,
never the line), so a re-run edits its own comment instead of adding another, moves it when the
lines moved, and deletes it when the statement no longer needs a fix.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from ..escape import code, md
from ..formats.comment import MAX_BODY_BYTES, MAX_BODY_CHARS
from .edits import Hunk, apply_edits, unified_diff
from .plan import Remediation, StatementFix

MARKER_PREFIX = "<!-- iamgate:suggestion"
MARKER = re.compile(r"<!-- iamgate:suggestion (\S+) (\S+) -->")
MAX_LISTED = 12


@dataclass(frozen=True)
class Suggestion:
    key: str
    path: str  # repository-relative
    first: int
    last: int
    body: str


@dataclass(frozen=True)
class SuggestionPlan:
    suggestions: tuple[Suggestion, ...] = ()
    details_diff: str = ""  # unified diff of the fixes outside the PR's changed lines
    moved: tuple[str, ...] = ()  # "path:first-last" of fixes too large for a review comment, in the diff instead


def fits_review_comment(body: str) -> bool:
    return len(body) <= MAX_BODY_CHARS and len(body.encode()) <= MAX_BODY_BYTES


def statement_key(fix: StatementFix) -> str:
    st = fix.statement
    ident = st.sid or json.dumps(sorted(fix.original_actions))
    # the principals too: generated templates repeat one policy name and Sid in many roles
    data = json.dumps([fix.location.file, fix.policy, ident, bool(st.not_actions), sorted(fix.principals)])
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def narrowing_key(n) -> str:
    data = json.dumps([n.location.file, "resource", list(n.actions), sorted(n.principals)])
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def narrowing_text(n) -> str:
    """What a Resource narrowing does, for a suggestion (issue 23)."""
    arns = sorted(set(n.resources) | {a for _, group in n.groups for a in group})
    shown = ", ".join(code(a) for a in arns[:MAX_LISTED]) + (
        f" and {len(arns) - MAX_LISTED} more" if len(arns) > MAX_LISTED else "")
    split = " (split: the actions were used on different resources)" if n.groups else ""
    if n.rest:
        split = split[:-1] + f"; {', '.join(code(a) for a in n.rest)} keep the Resource as written)"
    was = ("`Resource: *`" if tuple(n.statement.resources) == ("*",) else
           "`Resource` " + ", ".join(code(r) for r in n.statement.resources))
    return (f"narrows {was} to the {len(arns)} resource(s) {', '.join(md(p) for p in n.principals)} "
            f"used{split}: {shown}. An absent resource is no proof it is not needed: CloudTrail does not log "
            "cache-served reads or data events that were not enabled.")


def suggestion_body(group: str, key: str, fix: StatementFix | None, hunk: Hunk, narrowing=None) -> str:
    new = hunk.new[:-1] if hunk.new.endswith("\n") else hunk.new
    f = fence(new)
    if fix is None:  # only the Resource changes
        return (f"{MARKER_PREFIX} {group} {key} -->\n**iamgate**: {narrowing_text(narrowing)}\n\n"
                f"{f}suggestion\n" + (f"{new}\n" if new else "") + f"{f}\n")
    dropped = list(fix.dropped)
    shown = ", ".join(code(a) for a in dropped[:MAX_LISTED]) + (
        f" and {len(dropped) - MAX_LISTED} more" if len(dropped) > MAX_LISTED else "")
    what = "remove this statement" if fix.removes_statement else "narrow this statement"
    who = ", ".join(md(p) for p in fix.principals)
    return (f"{MARKER_PREFIX} {group} {key} -->\n"
            f"**iamgate**: {what} to what {who} uses: drops {len(dropped)} unused action(s): {shown}. "
            "Used, unobservable, new, too recent and allowlisted actions stay; "
            + (f"the same edit {narrowing_text(narrowing)}" if narrowing is not None else
               "resources and conditions are unchanged.") + "\n\n"
            f"{f}suggestion\n" + (f"{new}\n" if new else "") + f"{f}\n")  # empty: delete the lines


def in_changed(path: str, first: int, last: int, changed: dict) -> bool:
    return any(s <= first and last <= e for s, e in changed.get(path, ()))


def plan_suggestions(remediation: Remediation, files, changed: dict, group: str, rel,
                     exclude: dict | None = None) -> SuggestionPlan:
    """`changed`: repo-relative path -> [(first, last)] lines the PR changed; `rel`: report path -> repo path.
    `exclude`: statement key -> why it cannot be a suggestion (GitHub refused it): it goes to the diff."""
    by_loc = {f.location: f for f in remediation.statements}
    narrowed = {n.location: n for n in remediation.narrowings}
    suggestions, rest, moved = [], [], []
    for ff in files:
        path = rel(ff.file)
        suggested = set()
        for h in ff.hunks:
            fix, narrowing = by_loc.get(h.statement), narrowed.get(h.statement)
            if (fix is not None or narrowing is not None) and in_changed(path, h.first, h.last, changed):
                key = statement_key(fix) if fix is not None else narrowing_key(narrowing)
                body = suggestion_body(group, key, fix, h, narrowing)
                where = f"{path}:{h.first}" + (f"-{h.last}" if h.last != h.first else "")
                if not fits_review_comment(body):  # GitHub refuses it (422): the diff carries it instead
                    moved.append(f"{where} ({len(body):,} characters, over GitHub's {MAX_BODY_CHARS:,} "
                                 "for a review comment)")
                    continue
                if exclude and key in exclude:
                    moved.append(f"{where} ({exclude[key]})")
                    continue
                if not h.new.strip():  # the PR wrote these lines for its change: never suggest deleting them
                    moved.append(f"{where} (deletes lines this pull request added; iamgate does not suggest that)")
                    continue
                suggestions.append(Suggestion(key, path, h.first, h.last, body))
                suggested.add(h.statement)
        outside = [e for e in ff.edits if e.statement not in suggested]
        if outside:
            rest.append(unified_diff(ff.file, ff.old, apply_edits(ff.old, outside)))
    return SuggestionPlan(tuple(suggestions), "".join(rest), tuple(moved))


def details_section(diff: str, limit: int = 30000) -> str:
    """The fixes not suggested inline, as a collapsed unified diff (cut at a line boundary)."""
    if not diff:
        return ""
    if len(diff) > limit:
        diff = diff[:diff.rfind("\n", 0, limit) + 1] + "… (cut; run `iamgate fix` locally for the whole diff)\n"
    f = fence(diff)
    return ("<details><summary><b>Least-privilege fix</b> (apply with <code>iamgate fix --write</code>)"
            f"</summary>\n\n{f}diff\n{diff}{f}\n\n</details>\n")
