"""The GitHub Action: GitHub's environment in, one `iamgate check` call, GitHub's outputs out.

Inputs arrive as INPUT_* variables (see action.yml, `inputs.py`); the pull request comes from the
event file. On a pull request the gate's configuration comes from the base commit (`trusted.py`).
The check runs through `iamgate.cli.main`, exactly as on a terminal; then the report goes to the
job summary, the sticky PR comment, fix suggestions, annotations, SARIF and step outputs. The step
log is fenced against workflow commands (`log.py`). Without GitHub's variables it still runs, and
just prints the report.
"""
from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path

from .. import cli
from ..escape import clip, md, terminal
from ..fix.suggestions import SuggestionPlan, details_section, plan_suggestions
from ..formats import FORMATS, Format, unreadable
from ..formats.comment import comment_body, comment_key, marker, summary_body, title
from ..formats.github import Annotation, annotations, render_annotations
from . import config_changes
from .github_client import GitHubClient
from .inputs import InputError, Inputs, PullRequest
from .log import WorkflowLog
from .outputs import append_file, result, step_outputs, write_outputs
from .posting import Poster
from .trusted import Trusted, base_available, resolve

__all__ = ["main", "Action", "InputError"]


class _Capture(Format):
    """Hands the Report from the CLI run back to the Action; prints the text report meanwhile."""
    name = "github-action"
    reports: list = []

    def render(self, report) -> str:
        _Capture.reports.append(report)
        return FORMATS.get("text")(color=False).render(report)


FORMATS.register(_Capture)


class Action:
    def __init__(self, env, log: WorkflowLog):
        self.env = env
        self.log = log
        self.inputs = Inputs.from_env(env)
        self.pr = PullRequest.from_event(env.get("GITHUB_EVENT_PATH"))
        self.repo = env.get("GITHUB_REPOSITORY")
        self.notes: list[str] = []  # shown once, in the summary, the comment and one warning
        self.key = comment_key(self.inputs.config, list(self.inputs.paths))
        self.heading = title(self.inputs.config, list(self.inputs.paths))
        self.out_dir = Path(env.get("RUNNER_TEMP") or tempfile.gettempdir())
        self.trusted: Trusted = Trusted("head")
        self.weakenings = 0

    def argv(self) -> list[str]:
        i = self.inputs
        self.trusted = resolve(i, self.pr, str(self.out_dir))
        args = ["check", *i.paths, "--format", _Capture.name, *self.trusted.args]
        if i.fail_on:  # else the configuration's, as on the command line
            args += ["--fail-on", i.fail_on]
        if i.config and "--config" not in self.trusted.args and self.trusted.source == "head":
            args += ["--config", i.config]
        if i.data_dir and "--data-dir" not in self.trusted.args:  # no pull request, or config-from: head
            args += ["--data-dir", i.data_dir]
        if "--baselines" not in self.trusted.args:
            for b in i.baselines:
                args += ["--baselines", b]
        if i.require_usage_data:
            args.append("--require-all-deployments" if i.require_usage_data == "all-deployments"
                        else "--require-usage-data")
        for flag, value in (("--min-observation", i.min_observation), ("--max-idle", i.max_idle),
                            ("--deploy-lag", i.deploy_lag)):
            if value:
                args += [flag, value]
        confine = self.env.get("GITHUB_WORKSPACE") or (os.getcwd() if self.env.get("GITHUB_ACTIONS") == "true"
                                                        else None)
        if confine:  # a path in the inputs that leads out of the workspace (a symlink, `..`) is never read
            args += ["--confine-to", confine]
        if i.diff_only and self.pr and self.pr.base_sha:
            from ..repo import repo_root
            if base_available(repo_root(), self.pr.base_sha):
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

    def config_section(self) -> str:
        """The PR's weakenings of the configuration, for the comment and the summary."""
        t = self.trusted
        if t.base_config is None and not t.changed_data:
            return ""
        changes = []
        if t.base_config is not None and t.head_config is not None:
            from ..reference.catalog import load_catalog
            changes = config_changes.compare(t.base_config, t.head_config, load_catalog())
        changes += config_changes.data_changes(list(t.changed_data))
        problem = (f"The pull request's configuration does not load: {md(clip(t.head_problem))}"
                   if t.head_problem else "")
        for line in config_changes.log_lines(changes):
            print(f"iamgate: configuration change: {line}")
        self.weakenings = len(changes)
        return config_changes.markdown(changes, t.source, problem)

    def fix_plan(self, report, exclude: dict | None = None) -> SuggestionPlan | None:
        """The least-privilege fix: suggestions on lines the PR changed, a diff for the rest."""
        if not any(r.actions("unused") for r in report.results) and not any(
                f.check == "resource-scope" for f in report.findings):  # nothing to drop, nothing to narrow
            return None
        from ..config import load as load_config
        from ..fix.files import fix_files
        from ..fix.plan import plan
        from ..reference.catalog import load_catalog
        from ..repo import repo_relative
        remediation = plan(report.results, load_catalog(), load_config(self.trusted.config_path))
        files, _ = fix_files(remediation)
        changed: dict = {}
        for c in report.comparison.changed if report.comparison is not None else ():
            changed.setdefault(repo_relative(c.file), []).append((c.start, c.end))
        return plan_suggestions(remediation, files, changed, self.key, repo_relative, exclude)

    def suggest(self, poster: Poster, report, fixes: SuggestionPlan | None) -> SuggestionPlan | None:
        """Post the suggestions; those GitHub refuses join the ones too large, in the comment's details."""
        commit = (self.pr.head_sha if self.pr else None) or self.env.get("GITHUB_SHA")
        failed = poster.suggest(fixes or SuggestionPlan(), commit, self.key)
        if failed:
            fixes = self.fix_plan(report, {s.key: f"GitHub refused it: {e.message}" for s, e in failed})
        if fixes and fixes.moved:
            n = len(fixes.moved)
            self.notes.append(f"{n} fix suggestion{'s' if n != 1 else ''} moved into the comment's fix details "
                              f"instead of a review comment: " + "; ".join(md(m) for m in fixes.moved[:10])
                              + (f"; and {n - 10} more" if n > 10 else "") + ".")
        return fixes

    def run(self) -> int:
        _Capture.reports.clear()
        try:
            code = cli.main(self.argv())
        except SystemExit as e:  # argparse's own usage errors
            code = e.code if isinstance(e.code, int) else 2
        report = _Capture.reports[-1] if _Capture.reports else None
        if report is None:
            return self.could_not_run(code or 2)

        report_json = self.out_dir / f"iamgate-report-{self.key}.json"
        report_json.write_text(FORMATS.get("json")(version=self.inputs.report_json_version).render(report),
                               encoding="utf-8")
        client = self.client()
        poster = Poster(client, self.repo, self.pr, self.notes) if client else None
        if self.inputs.sarif_file:
            self.write_sarif(report, poster)
        section = self.config_section()
        fixes = self.fix_plan(report)
        posting = self.inputs.comment == "update" and poster is not None and self.pr is not None
        if posting and report.comparison is not None:  # suggestions need the PR's changed lines (diff-only mode)
            fixes = self.suggest(poster, report, fixes)
        body = comment_body(report, marker(self.inputs.config, list(self.inputs.paths)), self.heading,
                            self.summary_link(), self.notes,
                            fix_details=details_section(fixes.details_diff) if fixes else "", sections=section,
                            full_report=str(report_json))
        comment_file = self.out_dir / f"iamgate-comment-{self.key}.md"
        comment_file.write_text(body, encoding="utf-8")
        if posting:
            comp = report.comparison
            worth = bool(report.findings or report.errors or section or not report.passed
                         or (comp and (comp.new_grants or comp.removed_used)))
            poster.comment(body, create=worth)
        append_file(self.env.get("GITHUB_STEP_SUMMARY"),
                    summary_body(report, self.heading, self.notes, section, str(report_json)))
        self.annotate(report)
        write_outputs(self.env.get("GITHUB_OUTPUT"), step_outputs(report, code, str(report_json),
                                                                  self.inputs.sarif_file, str(comment_file)))
        outcome = result(report, code)
        if outcome == "error":
            why = unreadable(report) if report.result == "error" else "could not decide: the run ended in error"
            print(f"iamgate: {why}", file=sys.stderr)
            return 2
        if outcome == "fail" and self.inputs.soft_fail:
            print("iamgate: the gate failed, but soft-fail is set: the step passes")
            return 0
        return 1 if outcome == "fail" else 0

    def write_sarif(self, report, poster: Poster | None) -> None:
        from ..formats.sarif import sarif_log
        text = json.dumps(sarif_log(report), indent=2) + "\n"
        path = Path(self.inputs.sarif_file)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as e:
            raise InputError(f"input sarif-file: cannot write {self.inputs.sarif_file}: {e.strerror}") from None
        if poster:
            sha = self.env.get("GITHUB_SHA") or (self.pr.head_sha if self.pr else None)
            ref = self.env.get("GITHUB_REF") or (f"refs/pull/{self.pr.number}/head" if self.pr else None)
            poster.upload_sarif(text, sha, ref)

    def annotate(self, report) -> None:
        if self.inputs.annotations:
            extra = [Annotation("warning", plain(n), "iamgate", rank=100) for n in self.notes]
            if self.weakenings:
                when = "after the merge" if self.trusted.source == "base" else "to this pull request (config-from: head)"
                extra.append(Annotation("warning", f"This pull request weakens the gate's configuration in "
                                                   f"{self.weakenings} way{'s' if self.weakenings != 1 else ''}; "
                                                   f"they apply {when}. See the job summary.",
                                        "iamgate: configuration weakened", rank=101))
            for line in render_annotations(extra + annotations(report)).splitlines():
                self.log.command(line)
        elif self.notes:
            print("\n".join(f"iamgate: {n}" for n in self.notes))

    def could_not_run(self, code: int) -> int:
        could_not_run(self.env, self.log, self.log.errors(), self.heading)
        return code


def plain(markdown: str) -> str:
    """A note (escaped Markdown) as annotation text, which GitHub shows as it is: no backslashes."""
    return re.sub(r"\\([\\`*_{}\[\]()#+!|~>])", r"\1", markdown).replace("&lt;", "<").replace(
        "&gt;", ">").replace("&amp;", "&")


def could_not_run(env, log: WorkflowLog, errors: list[str], heading: str = "iamgate") -> None:
    """No report: the summary, an error annotation and `result=error` say why."""
    shown = "".join(f"> {md(e)}\n" for e in errors[:20])
    append_file(env.get("GITHUB_STEP_SUMMARY"),
                f"### {heading}\n\n❌ **iamgate could not run**, so the gate could not decide (result `error`)."
                f"\n\n{shown or '> See the step log for the error.'}\n")
    write_outputs(env.get("GITHUB_OUTPUT"), {"result": "error"})
    if env.get("GITHUB_ACTIONS") == "true":
        for e in errors[:10] or ["iamgate could not run; see the step log"]:
            log.command(Annotation("error", e, "iamgate: could not run").command())


def main(env=None) -> int:
    env = dict(os.environ if env is None else env)
    with WorkflowLog() as log:
        try:
            return Action(env, log).run()
        except InputError as e:
            print(f"iamgate: error: {terminal(e)}", file=sys.stderr)  # may quote the PR's config
            could_not_run(env, log, log.errors())
            return 2
        except Exception as e:  # noqa: BLE001 - a bug: exit 2 ("could not decide"), and no raw traceback
            if env.get("IAMGATE_DEBUG"):  # in the log, a traceback's text would escape the fence
                import traceback
                traceback.print_exc()  # through the escaped stderr, still one line
            print(f"iamgate: internal error: {type(e).__name__}: {terminal(e)} (please report it; IAMGATE_DEBUG=1 shows "
                  "the traceback)", file=sys.stderr)
            could_not_run(env, log, log.errors())
            return 2
