"""GitHub's size limits: no comment or suggestion over 65,536 characters is sent; an oversized
suggestion goes into the comment's fix details, the rest are still posted, and the note says which."""
from __future__ import annotations

import json
import re
import shutil

from iamgate.formats import comment
from iamgate.formats.comment import MAX_BODY_BYTES, MAX_BODY_CHARS, summary_body
from iamgate.config import load as load_config
from iamgate.pipeline import analyse

from fixtures.github.fake_api import FakeGitHub
from test_action_entrypoint import many_principals, run_action
from test_diff import git

ARN = "arn:aws:iam::111122223333:role/svc"


def huge_template(n_resources: int) -> str:
    """A generated (one-line) template: its one statement's suggestion is the whole line."""
    resources = [f"arn:aws:dynamodb:eu-west-1:111122223333:table/generated-table-{i:06d}" for i in range(n_resources)]
    return json.dumps({"AWSTemplateFormatVersion": "2010-09-09", "Resources": {"Huge": {
        "Type": "AWS::IAM::Role", "Properties": {
            "RoleName": "huge", "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": []},
            "Policies": [{"PolicyName": "p", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Sid": "Tables", "Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:DeleteTable"],
                 "Resource": resources}]}}]}}}}, separators=(",", ":")) + "\n"


def test_250_roles_and_one_oversized_suggestion(tmp_path):
    repo = tmp_path / "repo"
    many_principals(repo, 250)
    (repo / "iamgate.yml").write_text((repo / "iamgate.yml").read_text() + f"  Huge: {ARN}\n")
    shutil.move(repo / "infra" / "many.json", tmp_path / "many.json")
    (repo / "infra" / "README").write_text("templates\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "base")
    base = git(repo, "rev-parse", "HEAD").strip()
    shutil.move(tmp_path / "many.json", repo / "infra" / "many.json")
    (repo / "infra" / "huge.json").write_text(huge_template(8600))
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "pr: 251 roles")
    head = git(repo, "rev-parse", "HEAD").strip()
    with FakeGitHub() as api:
        run = run_action(tmp_path, repo, api, base_sha=base, head_sha=head, baselines="baselines",
                         config="iamgate.yml", **{"diff-only": "true"})
        refused = [p for m, p in api.requests if m == "POST" and "/pulls/" in p]
    assert run.code == 1, run.stderr
    assert "Traceback" not in run.stderr and "could not be posted" not in run.stdout + run.summary
    posted = api.review_comments
    assert len(posted) == 500 and len(refused) == 500  # 2 statements x 250 roles; the huge one never sent
    assert all(len(c["body"]) <= MAX_BODY_CHARS for c in posted)
    assert {c["path"] for c in posted} == {"infra/many.json"}
    body = api.comments[0]["body"]
    assert len(body) <= MAX_BODY_CHARS and len(body.encode()) <= MAX_BODY_BYTES
    note = next(line for line in body.splitlines() if "moved into the comment's fix details" in line)
    size = int(re.search(r"infra/huge\.json:1 \\?\(([\d,]+) characters", note).group(1).replace(",", ""))
    assert size > 600_000, note  # the 610,140-character suggestion
    assert "1 fix suggestion moved" in note
    assert "<summary><b>Least-privilege fix</b>" in body and "--- a/infra/huge.json" in body
    (warning,) = [a for a in run.annotations("warning") if "moved into" in a]
    assert "infra/huge.json:1 (" in warning and "\\" not in warning  # annotations are plain text


def test_the_fake_api_refuses_bodies_over_the_limit_as_github_does(tmp_path):
    from iamgate.action.github_client import GitHubClient, GitHubError
    with FakeGitHub() as api:
        client = GitHubClient(api.url, "test-token", sleep=lambda s: None)
        try:
            client.request("POST", "repos/acme/infra/pulls/7/comments",
                           {"body": "x" * (MAX_BODY_CHARS + 1), "commit_id": "c", "path": "p", "line": 1})
        except GitHubError as e:
            assert e.status == 422 and "too long" in e.message
        else:
            raise AssertionError("accepted")
        try:
            client.upsert_comment("acme/infra", 7, "<!-- m -->", "<!-- m -->\n" + "x" * MAX_BODY_CHARS)
        except GitHubError as e:
            assert "over GitHub's 65536" in str(e)
        assert not [p for m, p in api.requests if "/issues/" in p]  # checked before it is sent


def test_the_summary_names_the_full_report_when_it_leaves_sections_out(tmp_path, monkeypatch):
    ws = tmp_path / "ws"
    many_principals(ws, 60)
    monkeypatch.chdir(ws)
    report = analyse(["infra"], ["baselines"], load_config("iamgate.yml"))
    whole = summary_body(report, "iamgate", full_report="/runner/temp/iamgate-report-x.json")
    assert "report-json" not in whole  # nothing left out, nothing to point at
    monkeypatch.setattr(comment, "SUMMARY_MAX_BYTES", len(whole.encode()) // 2)
    cut = summary_body(report, "iamgate", full_report="/runner/temp/iamgate-report-x.json")
    assert "left out to fit" in cut
    assert "The full report is the `report-json` output: `/runner/temp/iamgate-report-x.json`" in cut


def test_the_comment_fits_when_the_notes_and_sections_leave_no_room(tmp_path):
    """The PR controls the length of the weakenings section (allowlist entries, file names): the
    body must still fit, or GitHub refuses it and the previous run's comment stays up."""
    (tmp_path / "t.json").write_text(huge_template(3))
    report = analyse([str(tmp_path / "t.json")], [], load_config(None))
    sections = "".join(f"- allowlist entry added: `{'x' * 180}{i}`\n" for i in range(400))  # ~75,000 characters
    body = comment.comment_body(report, "<!-- iamgate:comment 0 -->", "iamgate", sections=sections,
                                fix_details="<details>" + "y" * 30000 + "</details>", full_report="r.json")
    assert comment.fits(body) and body.startswith("<!-- iamgate:comment 0 -->\n")
    assert body.rstrip().endswith("the `report-json` output: r.json._")
    body = comment.comment_body(report, "<!-- m -->", "iamgate", sections="- a\n" * 10,
                                fix_details="<details>" + "y" * 30000 + "</details>")
    assert comment.fits(body) and "y" * 30000 in body and "Cut to fit" not in body  # room: nothing cut


def test_a_comment_cut_to_its_table_keeps_the_grant_changes(tmp_path):
    """Cutting the table's rows used to drop the "Removing grants in use" section without a word."""
    from iamgate.formats.markdown import MarkdownReport
    (tmp_path / "t.json").write_text(json.dumps({"Resources": {f"Role{i}": {
        "Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}, "Policies": [{
            "PolicyName": "p", "PolicyDocument": {"Statement": [
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}}]}} for i in range(200)}}))
    report = analyse([str(tmp_path / "t.json")], [], load_config(None))
    md = MarkdownReport(report, summary_link="https://x/run")
    md.changes = lambda: ["⚠️ **Removing grants in use.** RoleX: `s3:GetObject`", ""]
    text = md.render(max_chars=6000)
    assert len(text) <= 6000 and "Removing grants in use" in text and "more principals in the [job summary]" in text
    md.changes = lambda: ["⚠️ **Removing grants in use.** " + "RoleX: `s3:GetObject`, " * 200, ""]
    text = md.render(max_chars=2000)  # no room for them: said so
    assert len(text) <= 2000 and "Removing grants in use" not in text and "grant changes were left out" in text
