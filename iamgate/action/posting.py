"""Everything the Action sends to GitHub: the sticky comment, fix suggestions, the SARIF upload.

Each failure becomes a note (shown once in the summary, the comment and a warning) instead of
failing the step: a 403 is a read-only token (a fork's pull request), anything else is reported.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass, field

from ..escape import md
from ..fix.suggestions import SuggestionPlan
from .github_client import GitHubClient, GitHubError, PermissionDenied
from .inputs import PullRequest
from .suggestion_comments import post_suggestions

READ_ONLY_NOTE = ("The token cannot write to this pull request ({what}){origin}: a fork's pull request gets a "
                  "read-only token. The report is in the job summary and the annotations only.")


@dataclass
class Poster:
    client: GitHubClient
    repo: str
    pr: PullRequest | None
    notes: list[str] = field(default_factory=list)

    def read_only(self, what: str) -> None:
        pr = self.pr
        fork = pr.head_repo if pr and pr.head_repo and pr.head_repo != self.repo else None
        note = READ_ONLY_NOTE.format(what=what, origin=f"; it comes from the fork {md(fork)}" if fork else "")
        if not any(n.startswith("The token cannot write") for n in self.notes):
            self.notes.append(note)

    def upload_sarif(self, text: str, sha: str | None, ref: str | None) -> None:
        if not (sha and ref):
            return
        try:
            self.client.upload_sarif(self.repo, sha, ref, text)
        except PermissionDenied:
            self.read_only("SARIF upload to code scanning")
        except GitHubError as e:
            self.notes.append(f"The SARIF upload failed: {md(str(e))}")

    def comment(self, body: str, create: bool) -> None:
        try:
            result = self.client.upsert_comment(self.repo, self.pr.number, body.split("\n", 1)[0], body, create=create)
            print(f"iamgate: PR comment {result.action}" + (f": {result.url}" if result.url else ""))
        except PermissionDenied:
            self.read_only("PR comment")
        except GitHubError as e:
            self.notes.append(f"The PR comment could not be updated: {md(str(e))}")

    def suggest(self, fixes: SuggestionPlan, commit: str | None, group: str) -> list:
        """Post the suggestions; returns those GitHub refused, as (suggestion, error)."""
        if not commit:
            return []
        checked_out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        if checked_out != commit:
            # Lines of a merge commit are not the head's lines: a suggestion there could replace the wrong line.
            self.notes.append("Fix suggestions need the PR head checked out (`ref: ${{ github.event.pull_request"
                              ".head.sha }}`); the fixes are in the comment's details instead.")
            return []
        failed: list = []
        try:
            counts = post_suggestions(self.client, self.repo, self.pr.number, commit, group, fixes.suggestions, failed)
            if any(counts.values()):
                print("iamgate: fix suggestions " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
        except PermissionDenied:
            self.read_only("review suggestions")
        except GitHubError as e:
            self.notes.append(f"The fix suggestions could not be posted: {md(str(e))}")
        return failed
