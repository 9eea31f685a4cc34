"""Grant history from real git repositories (issue 20): when each granted action appeared on the first-parent
line, what the diff base lacks, and "history unknown" where git cannot tell (shallow, no git, no commits,
files from outside the repository)."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

import pytest

from iamgate.history import evaluator, grant_histories
from iamgate.judge import grants as grants_mod
from iamgate.reference.catalog import load_catalog
from iamgate.sources import ScanOptions, Workspace, scan

END = dt.date(2026, 11, 22)  # the baselines' window end
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
OLD, MID, RECENT = "ec2:DescribeInstances", "iam:GetRole", "kms:Decrypt"  # management events: observable
PR = ("ssm:GetParameter", "secretsmanager:GetSecretValue")


def git(repo: Path, *args: str, when: dt.date | None = None) -> str:
    env = {**os.environ, **GIT_ENV}
    if when is not None:
        stamp = f"{when.isoformat()}T12:00:00+00:00"
        env.update(GIT_AUTHOR_DATE=stamp, GIT_COMMITTER_DATE=stamp)
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout


def commit(repo: Path, when: dt.date, message: str = "change") -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message, when=when)


def cfn(*actions: str, role: str = "IngestRole") -> str:
    listed = "".join(f"                  - {a}\n" for a in actions)
    return ("Resources:\n"
            f"  {role}:\n    Type: AWS::IAM::Role\n    Properties:\n      RoleName: ingest\n"
            "      Policies:\n        - PolicyName: p\n          PolicyDocument:\n            Statement:\n"
            "              - Effect: Allow\n                Resource: '*'\n                Action:\n" + listed)


def tf(*actions: str) -> str:
    listed = ", ".join(f'"{a}"' for a in actions)
    return ('resource "aws_iam_role" "ingest" {\n  name = "ingest"\n  assume_role_policy = "{}"\n}\n'
            'resource "aws_iam_role_policy" "p" {\n  role = aws_iam_role.ingest.id\n'
            f'  policy = jsonencode({{Statement = [{{Effect = "Allow", Resource = "*", Action = [{listed}]}}]}})\n}}\n')


def day(n: int) -> dt.date:
    return END - dt.timedelta(days=n)


def histories(cwd: Path, paths=(".",), **kw):
    catalog = load_catalog()
    options = kw.pop("options", ScanOptions())
    before = os.getcwd()
    os.chdir(cwd)
    try:
        got = scan(Workspace(list(paths), options))
        granted = {p.id: grants_mod.compute(p, catalog).actions for p in got.principals}
        return grant_histories(got.principals, granted, evaluator(options, catalog), list(paths), **kw)
    finally:
        os.chdir(before)


def since(h) -> dict[str, str]:
    """action -> the day it is granted continuously since."""
    return {a: d for d, acts in h.since for a in acts}


def build(repo: Path, kind: str) -> Path:
    """History: OLD 200 days before END, MID 70, RECENT 4; then a PR branch adding the two PR actions."""
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write, name = (cfn, "infra/app.yaml") if kind == "cfn" else (tf, "infra/main.tf")
    path = repo / name
    path.parent.mkdir(parents=True)
    (repo / "README").write_text("x\n")
    commit(repo, day(300), "unrelated start")
    path.write_text(write(OLD))
    commit(repo, day(200))
    (repo / "README").write_text("y\n")
    commit(repo, day(150), "unrelated")
    path.write_text(write(OLD, MID))
    commit(repo, day(70))
    path.write_text(write(OLD, MID, RECENT))
    commit(repo, day(4))
    git(repo, "checkout", "-q", "-b", "pr")
    path.write_text(write(OLD, MID, RECENT, *PR))
    commit(repo, day(-1), "PR")
    return repo


@pytest.mark.parametrize("kind", ["cfn", "tf"])
def test_grant_days_and_the_pr_actions_are_new(tmp_path, kind):
    repo = build(tmp_path / "repo", kind)
    got = histories(repo, diff_base="main")
    (h,) = got.values()
    assert h.known and not h.note
    assert h.new == {a.lower() for a in PR}
    assert since(h) == {OLD.lower(): day(200).isoformat(), MID.lower(): day(70).isoformat(),
                        RECENT.lower(): day(4).isoformat(), **{a.lower(): day(-1).isoformat() for a in PR}}
    assert h.granted_since(RECENT.lower()) == day(4).isoformat()


def test_without_a_diff_base_nothing_is_new_but_the_days_stand(tmp_path):
    repo = build(tmp_path / "repo", "cfn")
    (h,) = histories(repo).values()
    assert h.known and h.new == frozenset()
    assert since(h)[PR[0].lower()] == day(-1).isoformat()


def test_deploy_lag_shifts_every_day(tmp_path):
    repo = build(tmp_path / "repo", "cfn")
    (h,) = histories(repo, deploy_lag_days=3).values()
    assert since(h)[OLD.lower()] == day(197).isoformat() and since(h)[RECENT.lower()] == day(1).isoformat()


def test_uncommitted_changes_are_granted_today(tmp_path):
    repo = build(tmp_path / "repo", "cfn")
    (repo / "infra/app.yaml").write_text(cfn(OLD, MID, RECENT, *PR, "sns:Publish"))
    now = dt.datetime(2026, 12, 1, 9, tzinfo=dt.timezone.utc)
    (h,) = histories(repo, now=now).values()
    assert since(h)["sns:publish"] == "2026-12-01" and since(h)[MID.lower()] == day(70).isoformat()


def test_a_floor_dates_older_grants_at_least_since_the_last_commit_before_it(tmp_path):
    """Before the first day that matters the exact day does not: one evaluation dates all of it."""
    repo = build(tmp_path / "repo", "cfn")
    floor = day(90)
    (h,) = histories(repo, floors={"IngestRole": floor}).values()
    got = since(h)
    assert got[OLD.lower()] == day(150).isoformat()  # the last commit before the floor: "at least since"
    assert dt.date.fromisoformat(got[OLD.lower()]) <= floor
    assert got[MID.lower()] == day(70).isoformat() and got[RECENT.lower()] == day(4).isoformat()


def test_renames_and_moves_keep_the_age(tmp_path):
    repo = build(tmp_path / "repo", "cfn")
    git(repo, "checkout", "-q", "main")
    (repo / "stacks").mkdir()
    git(repo, "mv", "infra/app.yaml", "stacks/ingest.yaml")
    commit(repo, day(3), "move")
    git(repo, "mv", "stacks/ingest.yaml", "stacks/ingest-role.yaml")
    commit(repo, day(2), "rename")
    (h,) = histories(repo).values()
    assert since(h) == {OLD.lower(): day(200).isoformat(), MID.lower(): day(70).isoformat(),
                        RECENT.lower(): day(4).isoformat()}


def test_a_policy_document_renamed_keeps_its_age(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    doc = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": %s, "Resource": "*"}]}\n'
    (repo / "ingest.json").write_text(doc % '["s3:GetObject"]')
    commit(repo, day(100))
    git(repo, "mv", "ingest.json", "ingest-policy.json")
    commit(repo, day(10))
    (h,) = histories(repo).values()
    assert h.known and since(h) == {"s3:getobject": day(100).isoformat()}


def test_removed_and_re_added_restarts_the_age(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    path = repo / "app.yaml"
    history = [(200, (OLD, MID)), (120, (OLD, MID, "sns:Publish")), (100, (OLD,)), (90, (OLD, "sns:Publish")),
               (40, (OLD, MID)), (30, (OLD, MID, "sns:Publish")), (20, (OLD, MID, "sns:Publish", RECENT))]
    for n, actions in history:
        path.write_text(cfn(*actions))
        commit(repo, day(n))
    (h,) = histories(repo, exact_since={"IngestRole": day(365)}).values()
    assert since(h) == {OLD.lower(): day(200).isoformat(), MID.lower(): day(40).isoformat(),
                        "sns:publish": day(30).isoformat(), RECENT.lower(): day(20).isoformat()}
    # Without an exact region, probes gallop (1, 2, 4 changes back) and bisect: a gap a probe lands in restarts
    # the age (MID, absent at the third change back); one that falls between two probes is bisection's limit.
    (h,) = histories(repo).values()
    assert {a: since(h)[a] for a in (OLD.lower(), MID.lower(), RECENT.lower())} == {
        OLD.lower(): day(200).isoformat(), MID.lower(): day(40).isoformat(), RECENT.lower(): day(20).isoformat()}


def test_a_merge_commit_dates_the_grant_when_it_landed(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "app.yaml").write_text(cfn(OLD))
    commit(repo, day(200))
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "app.yaml").write_text(cfn(OLD, MID))
    commit(repo, day(60), "written long ago on a branch")
    git(repo, "checkout", "-q", "main")
    (repo / "other.txt").write_text("x\n")
    commit(repo, day(50))
    git(repo, "merge", "-q", "--no-ff", "-m", "merge", "feature", when=day(10))
    (h,) = histories(repo).values()
    assert since(h) == {OLD.lower(): day(200).isoformat(), MID.lower(): day(10).isoformat()}


def test_a_grant_behind_a_condition_follows_its_parameter(tmp_path):
    """`Fn::If` on a parameter (CloudFormation) and `count` on a variable (Terraform): the grant appears when
    the default that selects it changes, not when the text holding it was written."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    template = ("Parameters:\n  Extra:\n    Type: String\n    Default: '{flag}'\nConditions:\n"
                "  WithExtra: !Equals [!Ref Extra, 'yes']\nResources:\n  IngestRole:\n    Type: AWS::IAM::Role\n"
                "    Properties:\n      Policies:\n        - PolicyName: p\n          PolicyDocument:\n"
                "            Statement:\n              - Effect: Allow\n                Resource: '*'\n"
                "                Action: !If [WithExtra, ['s3:GetObject', 'kms:Decrypt'], ['s3:GetObject']]\n")
    tf_text = ('variable "extra" {{\n  default = {flag}\n}}\n'
               'resource "aws_iam_role" "ingest" {{\n  name = "ingest"\n  assume_role_policy = "{{}}"\n}}\n'
               'resource "aws_iam_role_policy" "base" {{\n  role = aws_iam_role.ingest.id\n'
               '  policy = jsonencode({{Statement = [{{Effect = "Allow", Resource = "*",\n'
               '                        Action = "s3:GetObject"}}]}})\n}}\n'
               'resource "aws_iam_role_policy" "extra" {{\n  count = var.extra ? 1 : 0\n'
               '  role = aws_iam_role.ingest.id\n'
               '  policy = jsonencode({{Statement = [{{Effect = "Allow", Resource = "*",\n'
               '                        Action = "kms:Decrypt"}}]}})\n}}\n')
    (repo / "cfn").mkdir()
    (repo / "tf").mkdir()
    (repo / "cfn/app.yaml").write_text(template.format(flag="no"))
    (repo / "tf/main.tf").write_text(tf_text.format(flag="false"))
    commit(repo, day(100))
    (repo / "cfn/app.yaml").write_text(template.format(flag="yes"))
    (repo / "tf/main.tf").write_text(tf_text.format(flag="true"))
    commit(repo, day(8))
    got = histories(repo, paths=("cfn", "tf"))
    assert len(got) == 2
    # Terraform's variable default is its value; a CloudFormation parameter's default is a deploy-time choice
    # (issue 19): an undecided Fn::If grants both branches, so kms:Decrypt may have been granted since day 100
    assert sorted(since(h)["kms:decrypt"] for h in got.values()) == [day(100).isoformat(), day(8).isoformat()]
    for h in got.values():
        assert since(h)["s3:getobject"] == day(100).isoformat()


TF_ROLE_OF_VAR = ('resource "aws_iam_role" "r" {\n  name = "r"\n  assume_role_policy = "{}"\n}\n'
                  'resource "aws_iam_role_policy" "p" {\n  role = aws_iam_role.r.id\n'
                  '  policy = jsonencode({Statement = [{Effect = "Allow", Resource = "*",\n'
                  '                        Action = var.actions}]})\n}\n')


def test_terraform_variables_in_another_file_count(tmp_path):
    repo = tmp_path / "repo"
    (repo / "tf").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "tf/main.tf").write_text(TF_ROLE_OF_VAR)
    (repo / "tf/variables.tf").write_text('variable "actions" {\n  default = ["s3:GetObject"]\n}\n')
    commit(repo, day(100))
    (repo / "tf/variables.tf").write_text('variable "actions" {\n  default = ["s3:GetObject", "sqs:SendMessage"]\n}\n')
    commit(repo, day(5))
    (h,) = histories(repo, paths=("tf",)).values()
    assert since(h) == {"s3:getobject": day(100).isoformat(), "sqs:sendmessage": day(5).isoformat()}


NOTE_WORDS = ("history", "fetch-depth: 0")


def assert_unknown(h, why: str) -> None:
    assert not h.known and why in h.note and all(w in h.note for w in NOTE_WORDS)
    assert h.new == frozenset() and h.since == ()


def test_a_shallow_clone_has_no_history(tmp_path):
    origin = build(tmp_path / "origin", "cfn")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{origin}", str(clone))
    (h,) = histories(clone).values()
    assert_unknown(h, "shallow clone")


def test_outside_git_and_without_commits(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "app.yaml").write_text(cfn(OLD))
    (h,) = histories(plain).values()
    assert_unknown(h, "not inside a git repository")
    git(plain, "init", "-q", "-b", "main")
    (h,) = histories(plain).values()
    assert_unknown(h, "no commits")


def test_a_path_outside_the_repository_or_ignored_has_no_history(tmp_path):
    repo = build(tmp_path / "repo", "cfn")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "other.yaml").write_text(cfn(MID, role="OtherRole"))
    (repo / ".gitignore").write_text("vendor/\n")
    (repo / "vendor").mkdir()
    (repo / "vendor/mod.yaml").write_text(cfn(RECENT, role="VendoredRole"))
    commit(repo, day(-2))
    got = histories(repo, paths=("infra", str(elsewhere), "vendor"))
    assert got["IngestRole"].known
    assert_unknown(got["OtherRole"], "outside the repository")
    assert str(elsewhere / "other.yaml") in got["OtherRole"].note
    assert_unknown(got["VendoredRole"], "vendor/mod.yaml")


def test_the_managed_policy_cache_is_outside_the_history(tmp_path):
    repo = build(tmp_path / "repo", "cfn")
    cache = repo / "cache"
    cache.mkdir()
    (cache / "p.json").write_text('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", '
                                  '"Resource": "*"}]}')
    commit(repo, day(-2))
    got = histories(repo, paths=("infra", "cache"), outside_dirs=["cache"])
    assert got["IngestRole"].known
    assert_unknown(got["cache/p.json"], "cache/p.json")


def test_a_diff_base_that_is_missing_is_no_history_not_a_crash(tmp_path):
    repo = build(tmp_path / "repo", "cfn")
    (h,) = histories(repo, diff_base="no-such-branch").values()
    assert not h.known and "history" in h.note and "no-such-branch" in h.note


def test_principals_of_one_file_share_the_evaluations(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    roles = 20

    def template(step: int) -> str:
        out = "Resources:\n"
        for r in range(roles):
            acts = [OLD] + ([MID] if step >= 1 else []) + ([RECENT] if step >= 2 and r % 2 else [])
            out += cfn(*acts, role=f"Role{r}").split("Resources:\n", 1)[1]
        return out
    for i, n in enumerate((300, 200, 10)):
        (repo / "app.yaml").write_text(template(i))
        commit(repo, day(n))
    for n in range(60):
        (repo / "noise.txt").write_text(str(n))
        commit(repo, day(9) + dt.timedelta(hours=n))
    from iamgate import history as history_mod
    calls = []
    real = history_mod.History.grant

    def counting(self, *a, **kw):
        calls.append(a[1])
        return real(self, *a, **kw)
    history_mod.History.grant = counting
    try:
        got = histories(repo)
    finally:
        history_mod.History.grant = real
    assert len(got) == roles
    assert since(got["Role1"]) == {OLD.lower(): day(300).isoformat(), MID.lower(): day(200).isoformat(),
                                   RECENT.lower(): day(10).isoformat()}
    assert len(set(calls)) <= 3  # each touching revision evaluated once, for all 20 roles


def test_a_gap_of_the_whole_repository_is_said_once_and_a_principals_own_gap_stays_with_it():
    from iamgate.history import NOT_GIT, OUTSIDE, hoist
    from iamgate.model import GrantHistory
    shallow = {"A": GrantHistory(False, NOT_GIT), "B": GrantHistory(False, NOT_GIT)}
    assert hoist(shallow) == ({}, (NOT_GIT,))
    mixed = {"A": GrantHistory(True, since=(("2026-01-01", frozenset({"s3:getobject"})),)),
             "B": GrantHistory(False, OUTSIDE.format(file="vendor/x.yaml"))}
    assert hoist(mixed) == (mixed, ())
    kept = {"A": GrantHistory(False, NOT_GIT, new=frozenset({"s3:getobject"})), "B": GrantHistory(False, NOT_GIT)}
    assert hoist(kept) == ({"A": kept["A"]}, (NOT_GIT,))  # what the diff base lacks is still handed on


def test_a_terraform_module_instance_follows_its_callers_values(tmp_path):
    repo = tmp_path / "repo"
    (repo / "tf/modules/role").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "tf/modules/role/main.tf").write_text('variable "actions" {}\n' + TF_ROLE_OF_VAR)
    caller = 'module "ingest" {{\n  source = "./modules/role"\n  actions = {actions}\n}}\n'
    (repo / "tf/main.tf").write_text(caller.format(actions='["s3:GetObject"]'))
    commit(repo, day(100))
    (repo / "tf/main.tf").write_text(caller.format(actions='["s3:GetObject", "sqs:SendMessage"]'))
    commit(repo, day(6))
    got = histories(repo, paths=("tf",))
    (h,) = got.values()
    assert since(h) == {"s3:getobject": day(100).isoformat(), "sqs:sendmessage": day(6).isoformat()}


def test_no_history_reads_nothing_from_git_not_even_the_diff_base(tmp_path):
    repo = build(tmp_path / "repo", "cfn")
    (h,) = histories(repo, diff_base="main", walk=False).values()
    assert not h.known and "not read" in h.note and h.new == frozenset() and h.since == ()
