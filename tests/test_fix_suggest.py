"""PR suggestions for the least-privilege fix: a ```suggestion review comment where the PR changed the
statement's lines, the diff in the sticky comment's <details> otherwise; re-runs update, never duplicate."""
from __future__ import annotations

import shutil

from iamgate.reference.catalog import load_catalog
from iamgate.config import load as load_config
from iamgate.fix.files import fix_files
from iamgate.action.github_client import GitHubClient
from iamgate.pipeline import analyse
from iamgate.fix.plan import plan
from iamgate.action.suggestion_comments import post_suggestions
from iamgate.fix.suggestions import MARKER_PREFIX, details_section, plan_suggestions

from conftest import FIXTURES
from fixtures.github.fake_api import FakeGitHub
from test_action_entrypoint import run_action
from test_diff import git, make_repo, pr_change


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def suggestions_for(root, changed_needles: list[str]):
    cfg = load_config(str(root / "iamgate.yml"))
    report = analyse(["infra"], ["baselines"], cfg, base=str(root))
    remediation = plan(report.results, load_catalog(), cfg)
    files, problems = fix_files(remediation, root)
    text = (root / "infra" / "app.yaml").read_text()
    changed = {"infra/app.yaml": [(line_of(text, n), line_of(text, n)) for n in changed_needles]}
    return plan_suggestions(remediation, files, changed, "k1", lambda f: f), files


def test_suggestion_on_changed_lines_and_the_rest_in_details(tmp_path, monkeypatch):
    root = tmp_path / "t"
    shutil.copytree(FIXTURES / "fix" / "cfn_yaml", root)
    monkeypatch.chdir(root)
    sp, files = suggestions_for(root, ["kms:Decrypt, kms:Encrypt, 'kms:DescribeKey'"])
    assert len(sp.suggestions) == 1
    s = sp.suggestions[0]
    text = (root / "infra" / "app.yaml").read_text()
    assert (s.path, s.first, s.last) == ("infra/app.yaml", line_of(text, "kms:DescribeKey"), line_of(text, "kms:DescribeKey"))
    assert s.body.startswith(MARKER_PREFIX + " k1 ")
    assert "```suggestion\n                Action: [kms:Decrypt, kms:Encrypt]\n```" in s.body
    assert "`kms:DescribeKey`" in s.body
    # applying the suggestion gives exactly the line `fix --write` writes
    assert "                Action: [kms:Decrypt, kms:Encrypt]\n" in files[0].new
    # everything else is in the details diff, not the suggested statement
    assert "-                  - dynamodb:DeleteTable" in sp.details_diff
    details = details_section(sp.details_diff)
    assert details.startswith("<details>") and "```diff\n--- a/infra/app.yaml" in details


def test_a_removed_statement_the_pr_wrote_is_never_a_suggestion_to_delete_it(tmp_path, monkeypatch):
    """Issue 20: a suggestion never proposes deleting lines the PR added; the fix details carry it instead."""
    root = tmp_path / "t"
    shutil.copytree(FIXTURES / "fix" / "cfn_yaml", root)
    monkeypatch.chdir(root)
    text = (root / "infra" / "app.yaml").read_text()
    first = line_of(text, "Sid: Unused")
    sp, _ = suggestions_for(root, [])
    assert sp.suggestions == ()
    cfg = load_config("iamgate.yml")
    report = analyse(["infra"], ["baselines"], cfg)
    remediation = plan(report.results, load_catalog(), cfg)
    files, _ = fix_files(remediation)
    changed = {"infra/app.yaml": [(first, first + 4)]}
    sp = plan_suggestions(remediation, files, changed, "k1", lambda f: f)
    assert sp.suggestions == ()
    assert [m.split(" (")[0] for m in sp.moved] == [f"infra/app.yaml:{first}-{first + 4}"]
    assert "deletes lines this pull request added" in sp.moved[0]
    assert "-              - Sid: Unused" in sp.details_diff or "Sid: Unused" in sp.details_diff


def test_reruns_update_move_and_delete_their_own_comments_only(tmp_path, monkeypatch):
    root = tmp_path / "t"
    shutil.copytree(FIXTURES / "fix" / "cfn_yaml", root)
    monkeypatch.chdir(root)
    needles = ["kms:Decrypt, kms:Encrypt, 'kms:DescribeKey'", "Action: sqs:*"]
    sp, _ = suggestions_for(root, needles)
    assert len(sp.suggestions) == 2
    with FakeGitHub() as api:
        api.add_review_comment({"body": "a human's review comment", "path": "infra/app.yaml", "line": 3},
                               login="someone")
        for _ in range(120):  # our comments sit past the first page
            api.add_review_comment({"body": "nit", "path": "x", "line": 1}, login="someone")
        client = GitHubClient(api.url, "test-token", sleep=lambda s: None)
        assert post_suggestions(client, "acme/infra", 7, "abc", "k1", sp.suggestions)["created"] == 2
        assert post_suggestions(client, "acme/infra", 7, "abc", "k1", sp.suggestions)["unchanged"] == 2
        ours = [c for c in api.review_comments if c["body"].startswith(MARKER_PREFIX)]
        assert len(ours) == 2 and {c["start_line"] for c in ours} == {None}
        # the lines move down by two: the same comments are moved, not duplicated
        path = root / "infra" / "app.yaml"
        path.write_text("# two\n# lines\n" + path.read_text())
        moved, _ = suggestions_for(root, needles)
        counts = post_suggestions(client, "acme/infra", 7, "def", "k1", moved.suggestions)
        assert counts["updated"] == 2 and counts["created"] == 0
        ours = [c for c in api.review_comments if c["body"].startswith(MARKER_PREFIX)]
        assert sorted(c["line"] for c in ours) == sorted(s.last for s in moved.suggestions)
        # a matrix sibling (another group) and people's comments are left alone
        api.add_review_comment({"body": f"{MARKER_PREFIX} k2 abc -->\nsibling", "path": "x", "line": 1})
        assert post_suggestions(client, "acme/infra", 7, "def", "k1", ())["deleted"] == 2
        bodies = [c["body"] for c in api.review_comments]
        assert "a human's review comment" in bodies and any("sibling" in b for b in bodies)
        assert not [b for b in bodies if b.startswith(MARKER_PREFIX + " k1 ")]


def test_action_posts_a_suggestion_for_the_changed_statement_and_details_for_the_rest(tmp_path):
    repo = make_repo(tmp_path)
    base = git(repo, "rev-parse", "HEAD").strip()
    pr_change(repo)
    git(repo, "commit", "-qam", "pr")
    head = git(repo, "rev-parse", "HEAD").strip()
    with FakeGitHub() as api:
        first = run_action(tmp_path, repo, api, base_sha=base, head_sha=head, **{"diff-only": "true"})
        second = run_action(tmp_path, repo, api, base_sha=base, head_sha=head, **{"diff-only": "true"})
    assert first.code == second.code == 1, first.stderr
    (comment,) = api.review_comments  # updated in place on the second run, not duplicated
    text = (repo / "infra" / "app.yaml").read_text()
    assert comment["path"] == "infra/app.yaml" and comment["line"] == line_of(text, "iam:PutRolePolicy")
    assert "```suggestion\n                Action: [sqs:SendMessage, sqs:GetQueueAttributes]\n```" in comment["body"]
    assert "suggestions created 1" in first.stdout and "unchanged 1" in second.stdout
    sticky = api.comments[0]["body"]
    assert "<summary><b>Least-privilege fix</b>" in sticky
    assert "-                  - dynamodb:DescribeTable" in sticky  # not on a changed line: in the diff
    assert "iam:PutRolePolicy]" not in sticky.split("Least-privilege fix")[1]  # that one is a suggestion


def test_no_suggestions_when_the_checkout_is_not_the_pr_head(tmp_path):
    # actions/checkout checks out the merge commit by default: its lines are not the head's lines
    repo = make_repo(tmp_path)
    base = git(repo, "rev-parse", "HEAD").strip()
    pr_change(repo)
    git(repo, "commit", "-qam", "pr")
    with FakeGitHub() as api:
        run = run_action(tmp_path, repo, api, base_sha=base, head_sha="2" * 40, **{"diff-only": "true"})
    assert run.code == 1, run.stderr
    assert api.review_comments == []
    assert "PR head checked out" in api.comments[0]["body"] or "PR head checked out" in run.stdout
