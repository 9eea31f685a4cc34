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

from .escape import code, md
from .fix_edits import Hunk, apply_edits, unified_diff
from .github import MAX_BODY_BYTES, MAX_BODY_CHARS, GitHubError, PermissionDenied, is_author
from .remediate import Remediation, StatementFix

MARKER_PREFIX = "<!-- iamgate:suggestion"
_MARKER = re.compile(r"<!-- iamgate:suggestion (\S+) (\S+) -->")
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


def suggestion_body(group: str, key: str, fix: StatementFix, hunk: Hunk) -> str:
    new = hunk.new[:-1] if hunk.new.endswith("\n") else hunk.new
    f = fence(new)
    dropped = list(fix.dropped)
    shown = ", ".join(code(a) for a in dropped[:MAX_LISTED]) + (
        f" and {len(dropped) - MAX_LISTED} more" if len(dropped) > MAX_LISTED else "")
    what = "remove this statement" if fix.removes_statement else "narrow this statement"
    who = ", ".join(md(p) for p in fix.principals)
    return (f"{MARKER_PREFIX} {group} {key} -->\n"
            f"**iamgate**: {what} to what {who} uses: drops {len(dropped)} unused action(s): {shown}. "
            "Used, unobservable and allowlisted actions stay; resources and conditions are unchanged.\n\n"
            f"{f}suggestion\n" + (f"{new}\n" if new else "") + f"{f}\n")  # empty: delete the lines


def in_changed(path: str, first: int, last: int, changed: dict) -> bool:
    return any(s <= first and last <= e for s, e in changed.get(path, ()))


def plan_suggestions(remediation: Remediation, files, changed: dict, group: str, rel,
                     exclude: dict | None = None) -> SuggestionPlan:
    """`changed`: repo-relative path -> [(first, last)] lines the PR changed; `rel`: report path -> repo path.
    `exclude`: statement key -> why it cannot be a suggestion (GitHub refused it): it goes to the diff."""
    by_loc = {f.location: f for f in remediation.statements}
    suggestions, rest, moved = [], [], []
    for ff in files:
        path = rel(ff.file)
        suggested = set()
        for h in ff.hunks:
            fix = by_loc.get(h.statement)
            if fix is not None and in_changed(path, h.first, h.last, changed):
                key = statement_key(fix)
                body = suggestion_body(group, key, fix, h)
                where = f"{path}:{h.first}" + (f"-{h.last}" if h.last != h.first else "")
                if not fits_review_comment(body):  # GitHub refuses it (422): the diff carries it instead
                    moved.append(f"{where} ({len(body):,} characters, over GitHub's {MAX_BODY_CHARS:,} "
                                 "for a review comment)")
                    continue
                if exclude and key in exclude:
                    moved.append(f"{where} ({exclude[key]})")
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


# -- GitHub ------------------------------------------------------------------------------------

def _ours(comment: dict, group: str, author: str) -> str | None:
    m = _MARKER.match(comment.get("body") or "")
    return m.group(2) if m and m.group(1) == group and is_author(comment, author) else None


def post_suggestions(client, repo: str, number: int, commit: str, group: str,
                     suggestions: tuple[Suggestion, ...], failed: list | None = None) -> dict:
    """Create, update, move or delete our review comments (marker and author both ours) so that
    exactly `suggestions` remain. One that GitHub refuses (say, 422 for a line outside the diff) is
    added to `failed` as (suggestion, error) and the others still go out."""
    counts = {"created": 0, "updated": 0, "unchanged": 0, "deleted": 0, "failed": 0}
    author = client.identity()
    failed = [] if failed is None else failed

    def attempt(s: Suggestion, call) -> bool:
        try:
            call()
            return True
        except PermissionDenied:
            raise
        except GitHubError as e:
            failed.append((s, e))
            counts["failed"] += 1
            return False

    existing: dict[str, dict] = {}
    for c in client.paginate(f"repos/{repo}/pulls/{number}/comments"):
        key = _ours(c, group, author)
        if key is None:
            continue
        if key in existing:  # a duplicate from an interrupted run
            client.request("DELETE", f"repos/{repo}/pulls/comments/{c['id']}")
            counts["deleted"] += 1
            continue
        existing[key] = c
    wanted = {s.key: s for s in suggestions}
    for key, c in existing.items():
        s = wanted.get(key)
        moved = s is not None and (c.get("path") != s.path or c.get("line") != s.last
                                   or (c.get("start_line") or c.get("line")) != s.first)
        if s is None or moved:
            client.request("DELETE", f"repos/{repo}/pulls/comments/{c['id']}")
            if s is None:
                counts["deleted"] += 1
            elif attempt(s, lambda s=s: _create(client, repo, number, commit, s)):
                counts["updated"] += 1
        elif c.get("body") != s.body:
            if attempt(s, lambda c=c, s=s: client.request("PATCH", f"repos/{repo}/pulls/comments/{c['id']}",
                                                          {"body": s.body})):
                counts["updated"] += 1
        else:
            counts["unchanged"] += 1
    for key, s in wanted.items():
        if key not in existing and attempt(s, lambda s=s: _create(client, repo, number, commit, s)):
            counts["created"] += 1
    return counts


def _create(client, repo: str, number: int, commit: str, s: Suggestion) -> None:
    body = {"body": s.body, "commit_id": commit, "path": s.path, "line": s.last, "side": "RIGHT"}
    if s.first != s.last:
        body.update(start_line=s.first, start_side="RIGHT")
    client.request("POST", f"repos/{repo}/pulls/{number}/comments", body)
