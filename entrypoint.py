"""The GitHub Action's entry point: GitHub's environment in, one `iamgate check` call, GitHub's outputs out.

Inputs arrive as INPUT_* variables (see action.yml); the pull request comes from the event
file. The check runs through `iamgate.cli.main`, exactly as on a terminal; then the report is
written to the job summary, the sticky PR comment, annotations, SARIF and step outputs. Without
GitHub's variables it still runs, and just prints the report.
"""
from __future__ import annotations

import json
import os
import secrets
import shlex
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from iamgate import cli
from iamgate.escape import md
from iamgate.comment import comment_body, comment_key, marker, summary_body, title
from iamgate.formats import FORMATS, Format
from iamgate.formats.github import Annotation, annotations, render_annotations
from iamgate.formats.sarif import sarif_log
from iamgate.github import GitHubClient, GitHubError, PermissionDenied
from iamgate.suggest import SuggestionPlan, details_section, plan_suggestions, post_suggestions

FAIL_ON = ("info", "low", "medium", "high", "critical", "never")
READ_ONLY_NOTE = ("The token cannot write to this pull request ({what}){origin}: a fork's pull request gets a "
                  "read-only token. The report is in the job summary and the annotations only.")


class InputError(Exception):
    pass


def parse_bool(name: str, value: str | None, default: bool) -> bool:
    if value is None or value.strip() == "":
        return default
    v = value.strip().lower()
    if v in ("true", "yes", "1", "on"):
        return True
    if v in ("false", "no", "0", "off"):
        return False
    raise InputError(f"input {name}: expected true or false, not {value!r}")


def parse_list(value: str | None) -> list[str]:
    """One item per line; a line may hold several, separated by spaces (quote paths with spaces)."""
    items: list[str] = []
    for line in (value or "").splitlines():
        try:
            items += shlex.split(line)
        except ValueError as e:
            raise InputError(f"cannot split {line!r}: {e}") from None
    return items


@dataclass(frozen=True)
class Inputs:
    paths: tuple[str, ...]
    baselines: tuple[str, ...]
    config: str | None
    fail_on: str
    soft_fail: bool
    diff_only: bool
    comment: str
    sarif_file: str | None
    annotations: bool
    token: str | None

    @classmethod
    def from_env(cls, env) -> "Inputs":
        fail_on = (env.get("INPUT_FAIL_ON") or "high").strip().lower()
        if fail_on not in FAIL_ON:
            raise InputError(f"input fail-on: {fail_on!r} is not one of {', '.join(FAIL_ON)}")
        comment = (env.get("INPUT_COMMENT") or "update").strip().lower()
        if comment not in ("update", "off"):
            raise InputError(f"input comment: {comment!r} is not update or off")
        return cls(paths=tuple(parse_list(env.get("INPUT_PATHS")) or ["."]),
                   baselines=tuple(parse_list(env.get("INPUT_BASELINES"))),
                   config=(env.get("INPUT_CONFIG") or "").strip() or None, fail_on=fail_on,
                   soft_fail=parse_bool("soft-fail", env.get("INPUT_SOFT_FAIL"), False),
                   diff_only=parse_bool("diff-only", env.get("INPUT_DIFF_ONLY"), True), comment=comment,
                   sarif_file=(env.get("INPUT_SARIF_FILE") or "").strip() or None,
                   annotations=parse_bool("annotations", env.get("INPUT_ANNOTATIONS"),
                                          env.get("GITHUB_ACTIONS") == "true"),
                   token=(env.get("INPUT_GITHUB_TOKEN") or "").strip() or None)


@dataclass(frozen=True)
class PullRequest:
    number: int
    head_sha: str | None
    base_sha: str | None
    base_ref: str | None
    head_repo: str | None

    @classmethod
    def from_event(cls, path: str | None) -> "PullRequest | None":
        if not path or not os.path.isfile(path):
            return None
        try:
            event = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise InputError(f"GITHUB_EVENT_PATH {path}: {e}") from None
        pr = event.get("pull_request") if isinstance(event, dict) else None
        if not isinstance(pr, dict) or not isinstance(pr.get("number"), int):
            return None
        head, base = pr.get("head") or {}, pr.get("base") or {}
        return cls(pr["number"], head.get("sha"), base.get("sha"), base.get("ref"),
                   (head.get("repo") or {}).get("full_name"))


class _Capture(Format):
    """Hands the Report from the CLI run back to the entrypoint; prints the text report meanwhile."""
    name = "github-action"
    reports: list = []

    def render(self, report) -> str:
        _Capture.reports.append(report)
        # The log shows repository text: no line of it may act as a workflow command.
        token = secrets.token_hex(16)
        return f"::stop-commands::{token}\n{FORMATS.get('text')(color=False).render(report)}::{token}::\n"


FORMATS.register(_Capture)


def base_available(sha: str) -> bool:
    env = {**os.environ, "GIT_NO_LAZY_FETCH": "1", "GIT_TERMINAL_PROMPT": "0"}
    try:
        return subprocess.run(["git", "cat-file", "-e", f"{sha}^{{commit}}"], env=env,
                              capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


def write_outputs(path: str | None, values: dict) -> None:
    if not path:
        return
    with open(path, "a", encoding="utf-8") as f:
        for name, value in values.items():
            delim = f"ghadelimiter_{uuid.uuid4()}"
            f.write(f"{name}<<{delim}\n{value}\n{delim}\n")


def append_file(path: str | None, text: str) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)


class Action:
    def __init__(self, env):
        self.env = env
        self.inputs = Inputs.from_env(env)
        self.pr = PullRequest.from_event(env.get("GITHUB_EVENT_PATH"))
        self.repo = env.get("GITHUB_REPOSITORY")
        self.notes: list[str] = []  # shown once, in the summary, the comment and one warning
        self.key = comment_key(self.inputs.config, list(self.inputs.paths))
        self.heading = title(self.inputs.config, list(self.inputs.paths))

    def argv(self) -> list[str]:
        i = self.inputs
        args = ["check", *i.paths, "--format", _Capture.name, "--fail-on", i.fail_on]
        if i.config:
            args += ["--config", i.config]
        for b in i.baselines:
            args += ["--baselines", b]
        if i.diff_only and self.pr and self.pr.base_sha:
            if base_available(self.pr.base_sha):
                args += ["--diff-base", self.pr.base_sha]
            else:
                self.notes.append(f"The base commit {self.pr.base_sha[:12]} is not in this clone, so every "
                                  "finding counts, not only new ones. Check out with `fetch-depth: 0`.")
        return args

    def client(self) -> GitHubClient | None:
        if not (self.inputs.token and self.repo):
            return None
        return GitHubClient(self.env.get("GITHUB_API_URL") or "https://api.github.com", self.inputs.token)

    def summary_link(self) -> str | None:
        server, run = self.env.get("GITHUB_SERVER_URL"), self.env.get("GITHUB_RUN_ID")
        if not (server and self.repo and run):
            return None
        return f"{server.rstrip('/')}/{self.repo}/actions/runs/{run}"

    def read_only(self, what: str) -> None:
        fork = self.pr.head_repo if self.pr and self.pr.head_repo and self.pr.head_repo != self.repo else None
        note = READ_ONLY_NOTE.format(what=what, origin=f"; it comes from the fork {md(fork)}" if fork else "")
        if not any(n.startswith("The token cannot write") for n in self.notes):
            self.notes.append(note)

    def upload_sarif(self, client: GitHubClient, text: str) -> None:
        sha = self.env.get("GITHUB_SHA") or (self.pr.head_sha if self.pr else None)
        ref = self.env.get("GITHUB_REF") or (f"refs/pull/{self.pr.number}/head" if self.pr else None)
        if not (sha and ref):
            return
        try:
            client.upload_sarif(self.repo, sha, ref, text)
        except PermissionDenied:
            self.read_only("SARIF upload to code scanning")
        except GitHubError as e:
            self.notes.append(f"The SARIF upload failed: {md(str(e))}")

    def comment(self, client: GitHubClient, report, body: str) -> None:
        comp = report.comparison
        worth_posting = bool(report.findings or report.errors or (comp and (comp.new_grants or comp.removed_used)))
        try:
            result = client.upsert_comment(self.repo, self.pr.number, body.split("\n", 1)[0], body,
                                           create=worth_posting)
            print(f"iamgate: PR comment {result.action}" + (f": {result.url}" if result.url else ""))
        except PermissionDenied:
            self.read_only("PR comment")
        except GitHubError as e:
            self.notes.append(f"The PR comment could not be updated: {md(str(e))}")

    def fix_plan(self, report) -> SuggestionPlan | None:
        """The least-privilege fix: suggestions on lines the PR changed, a diff for the rest."""
        if not any(r.actions("unused") for r in report.results):
            return None
        from iamgate.catalog import load_catalog
        from iamgate.config import load as load_config
        from iamgate.diff import repo_relative
        from iamgate.fix_files import fix_files
        from iamgate.remediate import plan
        remediation = plan(report.results, load_catalog(), load_config(self.inputs.config))
        files, _ = fix_files(remediation)
        changed: dict = {}
        for c in report.comparison.changed if report.comparison is not None else ():
            changed.setdefault(repo_relative(c.file), []).append((c.start, c.end))
        return plan_suggestions(remediation, files, changed, self.key, repo_relative)

    def suggest(self, client: GitHubClient, fixes: SuggestionPlan) -> None:
        commit = (self.pr.head_sha if self.pr else None) or self.env.get("GITHUB_SHA")
        if not commit:
            return
        checked_out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        if checked_out != commit:
            # Lines of a merge commit are not the head's lines: a suggestion there could replace the wrong line.
            self.notes.append("Fix suggestions need the PR head checked out (`ref: ${{ github.event.pull_request"
                              ".head.sha }}`); the fixes are in the comment's details instead.")
            return
        try:
            counts = post_suggestions(client, self.repo, self.pr.number, commit, self.key, fixes.suggestions)
            if any(counts.values()):
                print("iamgate: fix suggestions " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
        except PermissionDenied:
            self.read_only("review suggestions")
        except GitHubError as e:
            self.notes.append(f"The fix suggestions could not be posted: {md(str(e))}")

    def run(self) -> int:
        _Capture.reports.clear()
        try:
            code = cli.main(self.argv())
        except SystemExit as e:  # argparse's own usage errors
            code = e.code if isinstance(e.code, int) else 2
        report = _Capture.reports[-1] if _Capture.reports else None
        if report is None:
            append_file(self.env.get("GITHUB_STEP_SUMMARY"),
                        "### iamgate\n\n❌ iamgate could not run; see the step log for the error.\n")
            write_outputs(self.env.get("GITHUB_OUTPUT"), {"result": "fail"})
            return code or 2

        out_dir = Path(self.env.get("RUNNER_TEMP") or tempfile.gettempdir())
        report_json = out_dir / f"iamgate-report-{self.key}.json"
        report_json.write_text(FORMATS.get("json")().render(report), encoding="utf-8")
        client = self.client()
        if self.inputs.sarif_file:
            sarif_text = json.dumps(sarif_log(report), indent=2) + "\n"
            try:
                Path(self.inputs.sarif_file).parent.mkdir(parents=True, exist_ok=True)
                Path(self.inputs.sarif_file).write_text(sarif_text, encoding="utf-8")
            except OSError as e:
                raise InputError(f"input sarif-file: cannot write {self.inputs.sarif_file}: {e.strerror}") from None
            if client:
                self.upload_sarif(client, sarif_text)
        fixes = self.fix_plan(report)
        body = comment_body(report, marker(self.inputs.config, list(self.inputs.paths)), self.heading,
                            self.summary_link(), self.notes,
                            fix_details=details_section(fixes.details_diff) if fixes else "")
        comment_file = out_dir / f"iamgate-comment-{self.key}.md"
        comment_file.write_text(body, encoding="utf-8")
        if self.inputs.comment == "update" and client and self.pr:
            self.comment(client, report, body)
            if report.comparison is not None:  # suggestions need the PR's changed lines (diff-only mode)
                self.suggest(client, fixes or SuggestionPlan())
        append_file(self.env.get("GITHUB_STEP_SUMMARY"), summary_body(report, self.heading, self.notes))
        if self.inputs.annotations:
            extra = [Annotation("warning", n, "iamgate", rank=100) for n in self.notes]
            sys.stdout.write(render_annotations(extra + annotations(report)))
        elif self.notes:
            print("\n".join(f"iamgate: {n}" for n in self.notes))

        new = [f for f in report.findings if report.is_new(f)]
        write_outputs(self.env.get("GITHUB_OUTPUT"), {
            "result": "pass" if report.passed else "fail", "findings": len(report.findings),
            "new-findings": len(new), "unused-actions": sum(len(r.actions("unused")) for r in report.results),
            "report-json": str(report_json), "sarif-file": self.inputs.sarif_file or "",
            "comment-file": str(comment_file)})
        if code == 1 and self.inputs.soft_fail:
            print("iamgate: the gate failed, but soft-fail is set: the step passes")
            return 0
        return code


def main(env=None) -> int:
    env = dict(os.environ if env is None else env)
    try:
        return Action(env).run()
    except InputError as e:
        print(f"iamgate: error: {e}", file=sys.stderr)
        write_outputs(env.get("GITHUB_OUTPUT"), {"result": "fail"})
        return 2


if __name__ == "__main__":
    sys.exit(main())
