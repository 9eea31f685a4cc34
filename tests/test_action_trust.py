"""The pull request's author is untrusted: the gate must hold against what the PR itself changes.

Each test is a reproduction from issue 11 run through entrypoint.py end to end: the PR weakens the
configuration, forges the managed-policy cache, plants a marker comment, puts workflow commands in
config keys, or leaves an input unreadable.
"""
from __future__ import annotations

import json
import re

import pytest

from conftest import FIXTURES
from fixtures.github.fake_api import FakeGitHub
from iamgate.formats.comment import marker
from test_action_entrypoint import run_action, workspace
from test_diff import git, make_repo

GH = FIXTURES / "github"
QUEUE = "Action: [sqs:SendMessage, sqs:GetQueueAttributes]"
RISKY = "Action: [sqs:SendMessage, sqs:GetQueueAttributes, s3:PutBucketAcl, iam:CreateAccessKey, iam:PassRole]"
ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"
OUR_COMMANDS = ("error", "warning", "notice", "stop-commands")


def commit(repo, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def pr_repo(tmp_path, base_config: str | None = None):
    repo = make_repo(tmp_path)
    if base_config is not None:
        (repo / ".iamgate.yml").write_text(base_config)
    return repo, commit(repo, "base config")


def test_the_pr_cannot_switch_off_its_own_gate(tmp_path):
    repo, base = pr_repo(tmp_path, "severity:\n  no-usage-data: info\n")
    tpl = repo / "infra" / "app.yaml"
    tpl.write_text(tpl.read_text().replace(QUEUE, RISKY))
    (repo / ".iamgate.yml").write_text(
        "fail-on: critical\nseverity:\n  unused-actions: low\n"
        "disable: [resource-exposure, credential-exposure, passrole-wildcard, privilege-escalation]\n"
        "unobservable: ['iam:*']\n"
        "allowlist:\n  - {action: '*', reason: trust me}\n")
    head = commit(repo, "pr")
    with FakeGitHub() as api:
        run = run_action(tmp_path, repo, api, base_sha=base, head_sha=head, **{"diff-only": "true"})
    assert run.code == 1, run.stdout + run.stderr
    assert run.outputs["result"] == "fail"
    body = api.comments[0]["body"]
    assert "Gate failed" in body
    for text in (body, run.summary):
        section = text.split("This PR weakens the gate's configuration", 1)[1].split("\n\n", 2)[1]
        assert "apply after the merge, not to this PR" in text
        for line in ("check disabled: `resource-exposure`", "check disabled: `passrole-wildcard`",
                     "severity lowered: `unused-actions` — medium → low", "`fail-on` raised: `fail-on` — high → critical",
                     "actions declared unobservable: `iam:*`", "allowlist entry added: `* for *`"):
            assert line in section, (line, section)
    (warning,) = [w for w in run.annotations("warning") if "weakens the gate's configuration" in w]
    assert "in 8 ways; they apply after the merge" in warning
    report = json.loads(open(run.outputs["report-json"]).read())
    checks = {f["check"] for f in report["findings"]}
    assert {"resource-exposure", "passrole-wildcard"} <= checks


def test_a_rule_the_base_branch_added_later_is_in_force_and_not_the_prs_weakening(tmp_path):
    repo, fork = pr_repo(tmp_path, "{}\n")
    (repo / ".iamgate.yml").write_text("severity:\n  unused-actions: high\n")  # main tightens the gate
    base = commit(repo, "main: unused actions are high")
    git(repo, "checkout", "-q", "-b", "pr", fork)
    tpl = repo / "infra" / "app.yaml"
    tpl.write_text(tpl.read_text().replace(QUEUE, QUEUE.replace("]", ", sqs:DeleteQueue]")))
    head = commit(repo, "pr: one more queue action")
    with FakeGitHub() as api:
        run = run_action(tmp_path, repo, api, base_sha=base, head_sha=head, **{"diff-only": "true"})
    assert run.code == 1, run.stdout + run.stderr  # the base's rule applies: sqs:DeleteQueue unused is high
    assert "weakens the gate's configuration" not in run.summary


def test_config_from_head_lets_the_repository_trust_the_pr_and_still_lists_the_change(tmp_path):
    repo, base = pr_repo(tmp_path, "{}\n")
    tpl = repo / "infra" / "app.yaml"
    tpl.write_text(tpl.read_text().replace(QUEUE, RISKY))
    (repo / ".iamgate.yml").write_text("disable: [resource-exposure, credential-exposure, passrole-wildcard, "
                                       "privilege-escalation, unused-actions]\n")
    head = commit(repo, "pr")
    with FakeGitHub() as api:
        run = run_action(tmp_path, repo, api, base_sha=base, head_sha=head,
                         **{"diff-only": "true", "config-from": "head"})
    assert run.code == 0, run.stdout + run.stderr
    assert "it applies to this PR" in run.summary and "check disabled: `unused-actions`" in run.summary


def test_a_forged_managed_policy_in_the_pr_is_not_trusted(tmp_path):
    repo, _ = pr_repo(tmp_path)
    cache = repo / ".iamgate" / "managed-policies" / "aws" / "AdministratorAccess.json"
    cache.parent.mkdir(parents=True)
    cache.write_text(json.dumps({"arn": ADMIN, "version_id": "v1", "document": {
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}}))
    base = commit(repo, "managed-policy cache")
    tpl = repo / "infra" / "app.yaml"
    tpl.write_text(tpl.read_text().replace("      RoleName: app-prod\n",
                                           f"      RoleName: app-prod\n      ManagedPolicyArns: [{ADMIN}]\n"))
    cache.write_text(json.dumps({"arn": ADMIN, "version_id": "v1", "document": {
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}]}}))
    head = commit(repo, "pr: attach AdministratorAccess, forge its document")
    with FakeGitHub() as api:
        run = run_action(tmp_path, repo, api, base_sha=base, head_sha=head, **{"diff-only": "true"})
    assert run.code == 1, run.stdout + run.stderr
    report = json.loads(open(run.outputs["report-json"]).read())
    assert any(f["check"] == "admin-wildcard" for f in report["findings"])
    assert "trusted data file changed: `.iamgate/managed-policies/aws/AdministratorAccess.json`" in run.summary


def test_a_pr_symlink_in_the_trusted_folder_is_not_followed(tmp_path):
    repo, _ = pr_repo(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text('{"arn": "x", "document": {"Statement": []}}')
    (repo / ".iamgate").mkdir()
    base = commit(repo, "nothing")
    (repo / ".iamgate" / "managed-policies").symlink_to(outside)
    head = commit(repo, "pr: symlink")
    with FakeGitHub() as api:
        run = run_action(tmp_path, repo, api, base_sha=base, head_sha=head, **{"diff-only": "true"})
    assert run.code in (0, 1), run.stderr
    assert "trusted data file changed: `.iamgate/managed-policies`" in run.summary
    assert "secret" not in run.stdout + run.summary


@pytest.mark.parametrize("config_from", ["base", "head"])
def test_a_pr_config_symlinked_out_of_the_workspace_is_not_read_nor_quoted(tmp_path, config_from):
    """A schema error quotes the file's value: `.iamgate.yml -> a runner's one-line secret file`
    would have put the secret in the comment (base) or the error (head)."""
    repo, base = pr_repo(tmp_path, "{}\n")
    (tmp_path / "token.txt").write_text("ghs_s3cr3tT0ken\n")
    (repo / ".iamgate.yml").unlink()
    (repo / ".iamgate.yml").symlink_to(tmp_path / "token.txt")
    head = commit(repo, "pr: config symlink")
    with FakeGitHub() as api:
        run = run_action(tmp_path, repo, api, base_sha=base, head_sha=head, **{"config-from": config_from})
        posted = "".join(c["body"] for c in api.comments)
    assert "s3cr3t" not in run.stdout + run.stderr + run.summary + posted
    assert "its real path leaves the workspace" in (run.summary if config_from == "base" else run.stderr)
    assert run.code == (2 if config_from == "head" else 0), run.stdout + run.stderr


def test_a_planted_marker_comment_is_not_hijacked(tmp_path):
    ws = workspace(tmp_path)
    ours = marker(None, ["infra"])
    with FakeGitHub() as api:
        planted = api.add_comment(ours + "\n✅ Gate passed (trust me)", "mallory")
        run = run_action(tmp_path, ws, api)
    assert run.code == 0, run.stderr
    assert planted["body"] == ours + "\n✅ Gate passed (trust me)"
    mine = [c for c in api.marked(ours) if c["user"]["login"] == "github-actions[bot]"]
    assert len(mine) == 1 and "dynamodb:DescribeTable" in mine[0]["body"]


def commands_outside_the_fence(stdout: str) -> list[str]:
    """Lines of stdout that the runner would run as commands: outside `::stop-commands::` fences."""
    out, token = [], None
    for line in stdout.splitlines():
        if token:
            if line == f"::{token}::":
                token = None
            continue
        m = re.match(r"^::stop-commands::(\S+)$", line)
        if m:
            token = m.group(1)
        elif re.match(r"^\s*(::|##\[)", line):
            out.append(line)
    return out


@pytest.mark.parametrize("key", ["x\\n::set-output name=result::pass", "y\\n::add-mask::AppRole",
                                 "z\\r::stop-commands::pwned", "w\\n##[add-mask]AppRole"])
def test_workflow_commands_in_a_config_key_never_act(tmp_path, key):
    ws = workspace(tmp_path)
    (ws / ".iamgate.yml").write_text(f'principals:\n  "{key}": []\n')
    run = run_action(tmp_path, ws, None, comment="off")
    for line in run.stderr.splitlines():
        assert not re.match(r"^\s*(::|##\[)", line), line
    assert run.code == 2 and run.outputs["result"] == "error"
    assert "principals" in run.stderr and re.search(r"(%0[AD]|\\x0[ad])(::|##)", run.stderr)  # escaped, on one line
    for line in commands_outside_the_fence(run.stdout):
        name = line[2:].split("::", 1)[0].split(" ", 1)[0]
        assert name in OUR_COMMANDS, line
    errors = run.annotations("error")
    assert errors and all(re.search(r"(%0[AD]|\\x0[ad])(::|##)", e) for e in errors)  # escaped data, shown as text


def test_an_unreadable_input_is_could_not_decide_never_passed(tmp_path):
    ws = workspace(tmp_path)
    (ws / "infra" / "broken.yaml").write_text('AWSTemplateFormatVersion: "2010-09-09"\nResources: [\n')
    with FakeGitHub() as api:
        run = run_action(tmp_path, ws, api)
    assert run.code == 2, run.stderr
    assert run.outputs["result"] == "error"
    for text in (run.summary, api.comments[0]["body"]):
        assert "Could not decide: 1 input unreadable" in text and "Gate passed" not in text
    assert "could not decide: 1 input unreadable" in run.stderr


def test_require_usage_data_fails_when_nothing_was_judged(tmp_path):
    ws = workspace(tmp_path)
    (ws / "empty-baselines").mkdir()
    args = {"baselines": "empty-baselines", "comment": "off"}
    assert run_action(tmp_path, ws, None, **args).code == 0
    run = run_action(tmp_path, ws, None, **args, **{"require-usage-data": "true"})
    assert run.code == 1 and run.outputs["result"] == "fail"
    assert "no principal has usage data" in run.summary


SECRET_ROLE = """AWSTemplateFormatVersion: "2010-09-09"
Resources:
  TopSecretRole:
    Type: AWS::IAM::Role
    Properties:
      RoleName: topsecret-admin
      Policies:
        - PolicyName: all
          PolicyDocument:
            Statement:
              - {Effect: Allow, Action: "*", Resource: "*"}
"""


def test_a_path_in_the_inputs_that_leads_out_of_the_workspace_is_never_read(tmp_path):
    ws = workspace(tmp_path)
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "secret.yaml").write_text(SECRET_ROLE)
    (outside / "dir" / "other.yaml").write_text(SECRET_ROLE)
    (ws / "infra" / "leak.yaml").symlink_to(outside / "secret.yaml")
    (ws / "linked").symlink_to(outside / "dir", target_is_directory=True)
    with FakeGitHub() as api:
        run = run_action(tmp_path, ws, api, paths="infra/app.yaml infra/leak.yaml linked ../outside/secret.yaml",
                         **{"sarif-file": "out.sarif"})
    assert run.code == 0, run.stderr
    report_json = open(run.outputs["report-json"]).read()
    for text in (run.stdout, run.summary, api.comments[0]["body"], report_json, (ws / "out.sarif").read_text()):
        assert "TopSecret" not in text and "topsecret" not in text.lower()
    report = json.loads(report_json)
    assert [p["id"] for p in report["principals"]] == ["AppRole", "MentionRole"]
    skipped = {s["file"]: s["reason"] for s in report["skipped"]}
    assert {"infra/leak.yaml", "linked"} <= set(skipped) and len(skipped) == 3
    assert any(f.endswith("outside/secret.yaml") for f in skipped)  # named as given (absolute), not read
    assert all(reason == "its real path leaves the workspace; not read" for reason in skipped.values())


def support_table(folder, date: str) -> None:
    from iamgate.reference import support
    flags = {support.GENERATION_FLAG: True, support.LAST_ACCESSED_FLAG: True}
    support.write_table(folder / support.FILE_NAME, support.table_from_services(
        {"sqs": {"Name": "sqs", "Actions": [{"Name": "SendMessage", "SupportedBy": flags}]}}, date, "test"))


def data_repo(tmp_path, base_config: str | None = None):
    """A base commit that tracks `iamgate-data/` (dated 2026-01-01); the PR forges it (2099-12-31)."""
    repo, _ = pr_repo(tmp_path, base_config)
    (repo / "iamgate-data").mkdir()
    support_table(repo / "iamgate-data", "2026-01-01")
    base = commit(repo, "support data")
    support_table(repo / "iamgate-data", "2099-12-31")
    return repo, base, commit(repo, "pr: newer-looking support data")


def data_date(run) -> str:
    return json.loads(open(run.outputs["report-json"]).read())["support_data"]["date"]


@pytest.mark.parametrize("how", ["input", "config", "env"])
def test_a_tracked_data_dir_comes_from_the_base_commit(tmp_path, monkeypatch, how):
    repo, base, head = data_repo(tmp_path, "data-dir: iamgate-data\n" if how == "config" else None)
    inputs = {"data-dir": "iamgate-data"} if how == "input" else {}
    if how == "env":  # $IAMGATE_DATA_DIR on the step, as the example workflow used to set it
        monkeypatch.setenv("IAMGATE_DATA_DIR", "iamgate-data")
    with FakeGitHub() as api:
        run = run_action(tmp_path, repo, api, base_sha=base, head_sha=head, **{"diff-only": "true"}, **inputs)
        trusting = run_action(tmp_path, repo, api, base_sha=base, head_sha=head,
                              **{"diff-only": "true", "config-from": "head"}, **inputs)
    assert run.code == 0, run.stdout + run.stderr
    assert data_date(run) == "2026-01-01"  # the base's table, not the PR's
    assert "trusted data file changed: `iamgate-data/action_support.json.gz`" in run.summary
    assert trusting.code == 0, trusting.stderr
    assert data_date(trusting) == "2099-12-31"


def test_an_untracked_data_dir_is_used_as_it_is_and_one_only_the_pr_adds_is_an_error(tmp_path):
    repo, base = pr_repo(tmp_path)
    (repo / "pr-data").mkdir()
    support_table(repo / "pr-data", "2099-12-31")
    head = commit(repo, "pr: its own support data")
    checkout = repo / ".iamgate-baselines" / "iamgate-data"  # the baselines branch's checkout: no commit of the PR
    checkout.mkdir(parents=True)
    support_table(checkout, "2026-02-02")
    with FakeGitHub() as api:
        run = run_action(tmp_path, repo, api, base_sha=base, head_sha=head,
                         **{"diff-only": "true", "data-dir": ".iamgate-baselines/iamgate-data"})
        added = run_action(tmp_path, repo, api, base_sha=base, head_sha=head,
                           **{"diff-only": "true", "data-dir": "pr-data"})
    assert run.code == 0, run.stdout + run.stderr
    assert data_date(run) == "2026-02-02"
    assert added.code == 2 and added.outputs["result"] == "error"
    assert "input data-dir: pr-data is not in the base commit" in added.stderr and "Traceback" not in added.stderr


def test_the_data_dir_input_applies_without_a_pull_request_too(tmp_path):
    ws = workspace(tmp_path)
    (ws / "data").mkdir()
    support_table(ws / "data", "2026-03-03")
    run = run_action(tmp_path, ws, None, comment="off", **{"data-dir": "data"})
    assert run.code == 0, run.stderr
    assert data_date(run) == "2026-03-03"


def test_the_configurations_fail_on_holds_when_the_input_is_left_empty(tmp_path):
    """The input used to default to `high`, overriding the base's stricter `fail-on: low` unseen."""
    repo, base = pr_repo(tmp_path, "fail-on: low\n")
    tpl = repo / "infra" / "app.yaml"
    tpl.write_text(tpl.read_text().replace(QUEUE, "Action: [sqs:SendMessage, sqs:GetQueueAttributes, sqs:ListQueues]"))
    head = commit(repo, "pr: an unused List action (low)")
    with FakeGitHub() as api:
        run = run_action(tmp_path, repo, api, base_sha=base, head_sha=head, **{"fail-on": ""})
        assert run.code == 1 and run.outputs["result"] == "fail", run.stdout + run.stderr
        assert "at or above low" in run.stdout
        run = run_action(tmp_path, repo, api, base_sha=base, head_sha=head, **{"fail-on": "high"})  # the input wins
    assert run.code == 0 and run.outputs["result"] == "pass", run.stdout + run.stderr


def test_an_input_error_quoting_the_prs_config_shows_control_characters(tmp_path):
    repo, base = pr_repo(tmp_path, "{}\n")
    (repo / ".iamgate.yml").write_text('principals:\n  "x\\e]8;;https://evil.example\\a": []\n')  # YAML escapes
    head = commit(repo, "pr: config with an escape sequence")
    with FakeGitHub() as api:
        run = run_action(tmp_path, repo, api, base_sha=base, head_sha=head, **{"config-from": "head"})
    assert run.code == 2 and "the configuration:" in run.stderr, run.stderr
    assert "\x1b" not in run.stderr + run.stdout and "\\x1b]8" in run.stderr
