"""Suggestions posted as pull-request review comments: ours by marker and author, created, updated,
moved or deleted so that exactly the planned ones remain."""
from __future__ import annotations

from ..fix.suggestions import MARKER, Suggestion
from .github_client import GitHubError, PermissionDenied, is_author


def _ours(comment: dict, group: str, author: str) -> str | None:
    m = MARKER.match(comment.get("body") or "")
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
