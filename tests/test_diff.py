"""Diff-only mode against a real git repository: new findings, added and removed grants, changed lines."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path


from iamgate import cli
from iamgate.config import Config
from iamgate.diff import changed_ranges, compare_with_base, materialise
from iamgate.repo import repo_relative
from iamgate.pipeline import analyse

from conftest import FIXTURES
from iamgate.formats.json import expanded

GH = FIXTURES / "github"
# The commits predate the baselines' window (2026-08-24 to 2026-11-22), as code does that a baseline watched:
# grant history is read from git, and a commit dated today would make every grant too recent to judge.
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_DATE": "2026-06-01T12:00:00+00:00", "GIT_COMMITTER_DATE": "2026-06-01T12:00:00+00:00"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, env={**os.environ, **GIT_ENV}, check=True,
                          capture_output=True, text=True).stdout


def make_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(GH / "infra", repo / "infra")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    return repo


def pr_change(repo: Path) -> None:
    """Lines move (a comment on top), PutItem (used) goes, iam:PutRolePolicy (never used) comes."""
    tpl = repo / "infra" / "app.yaml"
    text = tpl.read_text()
    text = "# moved down by two lines\n#\n" + text
    text = text.replace("                  - dynamodb:PutItem\n", "")
    text = text.replace("[sqs:SendMessage, sqs:GetQueueAttributes]",
                        "[sqs:SendMessage, sqs:GetQueueAttributes, iam:PutRolePolicy]")
    tpl.write_text(text)


def check_json(tmp_path: Path, *args: str) -> tuple[int, dict]:
    out = tmp_path / "report.json"
    code = cli.main(["check", *args, "--baselines", str(GH / "baselines"), "--format", "json", "-o", str(out)])
    return code, expanded(json.loads(out.read_text())) if out.exists() else {}


def test_only_new_findings_fail_and_lines_moving_changes_nothing(tmp_path, monkeypatch, history_on):
    repo = make_repo(tmp_path)
    pr_change(repo)
    monkeypatch.chdir(repo)
    code, full = check_json(tmp_path, "infra", "--no-history")
    assert code == 1  # without diff mode (and without grant history) the new high finding fails too
    code, timed = check_json(tmp_path, "infra")  # with history, the uncommitted grant is today's: too recent
    (role,) = [p for p in timed["principals"] if "iam:putrolepolicy" in p["actions"]["granted"]]
    assert "iam:putrolepolicy" in role["actions"]["too_recent"] and "iam:putrolepolicy" not in role["actions"]["unused"]
    assert "dynamodb:describetable" in role["actions"]["unused"]  # committed before the window: judged
    code, rep = check_json(tmp_path, "infra", "--diff-base", "main")
    assert code == 1 and rep["gate"]["diff_only"] is True
    new = {(f["check"], tuple(f["actions"])) for f in rep["findings"] if f["new"]}
    old = {(f["check"], tuple(f["actions"])) for f in rep["findings"] if not f["new"]}
    assert ("privilege-escalation", ("iam:putrolepolicy",)) in new
    assert ("unused-actions", ("dynamodb:describetable",)) in old  # moved two lines down: same key


def test_comparison_lists_new_grants_removed_used_grants_and_changed_lines(tmp_path, monkeypatch):
    repo = make_repo(tmp_path)
    pr_change(repo)
    monkeypatch.chdir(repo / "infra")  # a sub-folder: paths must still line up with the base's

    def run_on(paths, base=None):
        return analyse(paths, [str(GH / "baselines")], Config(), base=base)

    report = compare_with_base(run_on(["."]), "main", ["."], run_on)
    assert not report.passed
    comp = report.comparison
    assert [(g.principal, g.actions, g.severity) for g in comp.new_grants] == [
        ("AppRole", ("iam:putrolepolicy",), "critical")]  # as its finding ranks it: it completes an escalation
    assert [(g.principal, g.actions) for g in comp.removed_used] == [("AppRole", ("dynamodb:putitem",))]
    assert comp.removed_used[0].base_location.file == "app.yaml"
    assert comp.new_principals == ()
    changed = {str(c) for c in comp.changed}
    assert "app.yaml:29" in changed  # the Queue statement's action line, given to AppRole
    assert all(c.principal == "AppRole" for c in comp.changed if c.start > 2)


def test_a_new_principal_is_new_everywhere_and_no_git_state_changes(tmp_path, monkeypatch):
    repo = make_repo(tmp_path)
    (repo / "more").mkdir()
    (repo / "more" / "extra.yaml").write_text((GH / "infra" / "app.yaml").read_text().replace(
        "AppRole", "ExtraRole").replace("MentionRole", "OtherRole").replace(
        "app-prod", "extra-prod").replace("ops@octocat", "other"))
    before = git(repo, "status", "--porcelain"), git(repo, "worktree", "list")
    monkeypatch.chdir(repo)
    code, rep = check_json(tmp_path, "infra", "more", "--diff-base", "HEAD")
    assert code == 0
    new_principals = {f["principal"] for f in rep["findings"] if f["new"]}
    assert new_principals == {"ExtraRole", "OtherRole"}
    assert (git(repo, "status", "--porcelain"), git(repo, "worktree", "list")) == before


def test_unknown_base_is_a_usage_error(tmp_path, monkeypatch, capsys):
    repo = make_repo(tmp_path)
    monkeypatch.chdir(repo)
    assert cli.main(["check", "infra", "--diff-base", "0123456789abcdef0123456789abcdef01234567"]) == 2
    err = capsys.readouterr().err
    assert "no such commit" in err and "fetch-depth: 0" in err and "Traceback" not in err


def test_not_a_repository_is_a_usage_error(tmp_path, monkeypatch, capsys):
    shutil.copytree(GH / "infra", tmp_path / "infra")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert cli.main(["check", "infra", "--diff-base", "HEAD"]) == 2
    assert "git repository" in capsys.readouterr().err


def test_materialise_writes_only_regular_files_and_changed_ranges_are_exact(tmp_path):
    repo = make_repo(tmp_path)
    (repo / "link.yaml").symlink_to("/etc/passwd")
    git(repo, "add", "."), git(repo, "commit", "-q", "-m", "link")
    dest = tmp_path / "out"
    assert materialise(repo, git(repo, "rev-parse", "HEAD").strip(), ["."], dest) == 1
    assert (dest / "infra" / "app.yaml").read_text() == (repo / "infra" / "app.yaml").read_text()
    assert not (dest / "link.yaml").exists()
    pr_change(repo)
    ranges = changed_ranges(repo, "HEAD", ["infra"])
    assert ranges == {"infra/app.yaml": [(1, 2), (29, 29)]}


def test_repo_relative(tmp_path, monkeypatch):
    repo = make_repo(tmp_path)
    monkeypatch.chdir(repo / "infra")
    assert repo_relative("app.yaml") == "infra/app.yaml"
    assert repo_relative(str(repo / "infra" / "app.yaml")) == "infra/app.yaml"
    assert repo_relative("/elsewhere/x.yaml") == "/elsewhere/x.yaml"


def test_a_second_template_with_the_same_logical_id_leaves_the_first_ones_findings_old(tmp_path):
    from iamgate.config import Config
    from iamgate.diff import compare_reports
    from iamgate.pipeline import analyse
    role = ("Resources:\n  LambdaRole:\n    Type: AWS::IAM::Role\n    Properties:\n      Policies:\n"
            "        - PolicyName: p\n          PolicyDocument: {Statement: [{Effect: Allow, Action: '*', "
            "Resource: '*'}]}\n")
    for tree in ("base", "head"):
        (tmp_path / tree).mkdir()
        (tmp_path / tree / "a.yaml").write_text(role)
    (tmp_path / "head" / "b.yaml").write_text(role)
    base = analyse([str(tmp_path / "base")], [], Config(), base=str(tmp_path / "base"))
    head = analyse([str(tmp_path / "head")], [], Config(), base=str(tmp_path / "head"))
    comp = compare_reports(head, base, "main", "abc", {})
    new = {f.principal for f in head.findings for k in f.keys() if k in comp.new_keys}
    assert "a.yaml#LambdaRole" not in new and "b.yaml#LambdaRole" in new


def test_changed_lines_of_paths_with_spaces_and_non_ascii_names(tmp_path):
    repo = tmp_path / "repo"
    (repo / "my infra").mkdir(parents=True)
    f = repo / "my infra" / "ré le.yaml"
    f.write_text("a: 1\nb: 2\n")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "base")
    base = git(repo, "rev-parse", "HEAD").strip()
    f.write_text("a: 1\nb: 3\nc: 4\n")
    assert changed_ranges(repo, base, ["."]) == {"my infra/ré le.yaml": [(2, 3)]}
