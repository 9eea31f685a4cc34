"""Minimal fixes: a pattern that grants no unused action stays exactly as written; one that does becomes
a narrower wildcard where the catalog proves it safe, else its kept actions, one by one. The diff is as
short as the change, and `check` is clean afterwards."""
from __future__ import annotations

import json
import random
import textwrap

import pytest

from iamgate import cli
from iamgate.config import Config
from iamgate.model import Statement
from iamgate.fix.plan import _disjoint, rewrite_items
from iamgate.formats.json import expanded

ROLE = "orders-a"


def used_baseline(catalog, patterns) -> dict:
    """A CloudTrail baseline (every management event observable) that saw every action of `patterns`."""
    used = sorted(catalog.expand_all(patterns).actions)
    return {"schema": "iamgate.baseline/v1", "principal_arn": f"arn:aws:iam::111122223333:role/{ROLE}",
            "window": {"start": "2026-08-24T00:00:00Z", "end": "2026-11-22T00:00:00Z"},
            "sources": [{"kind": "cloudtrail", "events": 100, "files": 1}],
            "used": {a: {"count": 1, "signals": ["cloudtrail"]} for a in used},
            "data_events_observed": sorted({a.split(":")[0] for a in used})}


def setup(tmp_path, monkeypatch, catalog, name: str, text: str, used) -> None:
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra" / name).write_text(textwrap.dedent(text))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "a.json").write_text(json.dumps(used_baseline(catalog, used)))
    monkeypatch.chdir(tmp_path)


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def changed_lines(diff: str) -> list[str]:
    return [line for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def fix_then_check(capsys) -> tuple[str, dict, dict]:
    """The diff, then the JSON report before and after `fix --write`."""
    args = ["infra", "--baselines", "b"]
    before = expanded(json.loads(run(capsys, "check", *args, "--format", "json")[1]))
    code, diff, err = run(capsys, "fix", *args)
    assert code == 0, err
    code, _, err = run(capsys, "fix", *args, "--write")
    assert code == 0, err
    after = expanded(json.loads(run(capsys, "check", *args, "--format", "json")[1]))
    return diff, before, after


def assert_clean_and_narrower(before: dict, after: dict) -> None:
    (b,), (a,) = before["principals"], after["principals"]
    assert b["actions"]["unused"], "the test needs something to drop"
    assert not a["actions"].get("unused"), a["actions"].get("unused")
    assert set(a["actions"]["granted"]) <= set(b["actions"]["granted"])  # nothing widened
    assert set(b["actions"]["used"]) <= set(a["actions"]["granted"])  # nothing used lost
    assert after["errors"] == []


TERRAFORM = """\
    resource "aws_iam_role" "a" {
      name               = "orders-a"
      assume_role_policy = "{}"
    }

    data "aws_iam_policy_document" "p" {
      statement {
        actions   = ["athena:*", "glue:Get*"]
        resources = ["*"]
      }
    }

    resource "aws_iam_role_policy" "p" {
      role   = aws_iam_role.a.id
      policy = data.aws_iam_policy_document.p.json
    }
    """


def test_the_issue_example_keeps_the_untouched_pattern_and_narrows_the_other(tmp_path, monkeypatch, capsys,
                                                                              catalog):
    setup(tmp_path, monkeypatch, catalog, "main.tf", TERRAFORM, ["athena:Get*", "glue:Get*"])
    diff, before, after = fix_then_check(capsys)
    assert changed_lines(diff) == ['-    actions   = ["athena:*", "glue:Get*"]',
                                   '+    actions   = ["athena:Get*", "glue:Get*"]']
    assert_clean_and_narrower(before, after)
    unused = set(before["principals"][0]["actions"]["unused"])
    assert catalog.expand("athena:Get*").actions.isdisjoint(unused)
    assert catalog.expand("athena:Get*").actions <= catalog.expand("athena:*").actions


ROLE_YAML = """\
    Resources:
      A:
        Type: AWS::IAM::Role
        Properties:
          RoleName: orders-a
          AssumeRolePolicyDocument: {Statement: []}
          Policies:
            - PolicyName: p
              PolicyDocument:
                Statement:
"""  # then the statements
YAML = ROLE_YAML + """\
                  - Effect: Allow
                    Action:
                      - 'Glue:GET*'   # catalogue reads
                      - "athena:*"
                      - sqs:sendmessage
                    Resource: "*"
                  - Effect: Allow
                    Action: ['Glue:GET*', "athena:*", sqs:sendmessage]
                    Resource: "*"
    """


def test_unchanged_patterns_keep_their_case_quoting_and_comments(tmp_path, monkeypatch, capsys, catalog):
    setup(tmp_path, monkeypatch, catalog, "t.yaml", YAML, ["athena:Get*", "glue:Get*", "sqs:SendMessage"])
    diff, before, after = fix_then_check(capsys)
    assert changed_lines(diff) == [
        '-                  - "athena:*"',
        '+                  - "athena:Get*"',  # quoted like the item it replaces
        """-                Action: ['Glue:GET*', "athena:*", sqs:sendmessage]""",
        """+                Action: ['Glue:GET*', "athena:Get*", sqs:sendmessage]"""]
    assert "                  - 'Glue:GET*'   # catalogue reads\n" in (tmp_path / "infra" / "t.yaml").read_text()
    assert_clean_and_narrower(before, after)


JSON_POLICY = """\
    {
      "Resources": {
        "A": {
          "Type": "AWS::IAM::Role",
          "Properties": {
            "RoleName": "orders-a",
            "AssumeRolePolicyDocument": {"Statement": []},
            "Policies": [{"PolicyName": "p", "PolicyDocument": {"Statement": [
              {
                "Effect": "Allow",
                "Action": [
                  "sqs:SendMessage",
                  "athena:*",
                  "sqs:DeleteQueue"
                ],
                "Resource": "*"
              },
              {"Effect": "Allow", "Action": "cloudformation:Describe*", "Resource": "*"}
            ]}}]
          }
        }
      }
    }
    """


def test_json_items_are_edited_in_place_and_the_last_comma_goes(tmp_path, monkeypatch, capsys, catalog):
    setup(tmp_path, monkeypatch, catalog, "t.json", JSON_POLICY,
          ["athena:Get*", "sqs:SendMessage", "cloudformation:DescribeStacks", "cloudformation:DescribeStackEvents"])
    diff, before, after = fix_then_check(capsys)
    assert changed_lines(diff) == [
        '-              "athena:*",', '-              "sqs:DeleteQueue"', '+              "athena:Get*"',
        '-          {"Effect": "Allow", "Action": "cloudformation:Describe*", "Resource": "*"}',
        # no wildcard under cloudformation:Describe* grants only these two: listed one by one
        '+          {"Effect": "Allow", "Action": ["cloudformation:DescribeStackEvents", '
        '"cloudformation:DescribeStacks"], "Resource": "*"}']
    json.loads((tmp_path / "infra" / "t.json").read_text())
    assert_clean_and_narrower(before, after)


HCL_LINES = """\
    resource "aws_iam_role" "a" {
      name               = "orders-a"
      assume_role_policy = "{}"
    }

    resource "aws_iam_role_policy" "p" {
      role = aws_iam_role.a.id
      policy = jsonencode({
        Statement = [{
          Effect = "Allow"
          Action = [
            "glue:Get*", # catalogue
            "athena:*",  # queries
            "sqs:DeleteQueue"
          ]
          Resource = "*"
        }]
      })
    }
    """


def test_hcl_items_one_per_line_are_edited_in_place(tmp_path, monkeypatch, capsys, catalog):
    setup(tmp_path, monkeypatch, catalog, "main.tf", HCL_LINES, ["athena:Get*", "glue:Get*"])
    diff, before, after = fix_then_check(capsys)
    assert changed_lines(diff) == ['-        "athena:*",  # queries', '-        "sqs:DeleteQueue"',
                                   '+        "athena:Get*",  # queries']
    assert_clean_and_narrower(before, after)


def st(actions=(), not_actions=()) -> Statement:
    return Statement("Allow", tuple(actions), tuple(not_actions), ("*",))


def test_a_glob_that_is_not_a_prefix_is_replaced_by_its_kept_actions(catalog):
    granted = catalog.expand("s3:*Object*").actions
    kept = frozenset(catalog.expand("s3:DeleteObject*").actions | {"s3:getobject"})
    items, new, widens = rewrite_items(st(["s3:*Object*", "sqs:SendMessage"]), kept, granted - kept, catalog, False)
    assert items[1] is None and new[-1] == "sqs:SendMessage"
    assert not any("*" in a for a in new) and catalog.expand_all(new).actions == kept | {"sqs:sendmessage"}
    assert not widens
    # --compact may use a wildcard outside the glob it replaces, and says so
    items, new, widens = rewrite_items(st(["s3:*Object*"]), kept, granted - kept, catalog, True)
    assert "s3:DeleteObject*" in new and widens and catalog.expand_all(new).actions == kept


def test_not_action_wildcards_never_reach_a_listed_pattern(catalog):
    stmt = st(not_actions=["s3:Delete*", "iam:*"])
    granted = catalog.expand_not_actions(stmt.not_actions).actions
    kept = frozenset(a for a in granted if a.startswith(("s3:get", "rds-data:", "sqs:")))
    items, new, _ = rewrite_items(stmt, kept, granted - kept, catalog, False)
    assert items == () and "rds-data:*" in new and "sqs:*" in new
    assert catalog.expand_all(new).actions == kept
    listed = catalog.expand_all(stmt.not_actions).actions
    assert all(catalog.expand(p).actions.isdisjoint(listed) for p in new)


@pytest.mark.parametrize("svc, prefix, pattern, disjoint", [
    ("s3", "get", "s3:Delete*", True), ("sqs", "", "s3:*", True), ("s3", "get", "S3:GetObject", False),
    ("s3", "", "s3:Get*", False), ("s3", "getobject", "s3:Get*", False), ("s3", "get", "s3:*Object", False),
    ("s3", "", "*", False), ("s3", "get", "s3:Getx", False), ("s3", "put", "s3:GetObject", True),
    ("s3", "get", "s3:Get*Acl", False), ("s3", "getobject", "iam*:*", True), ("iam", "", "iam*:*", False),
])
def test_disjoint_is_exact_for_prefixes_and_conservative_otherwise(svc, prefix, pattern, disjoint):
    assert _disjoint(svc, prefix, pattern) is disjoint


def test_every_wildcard_in_the_fixture_plans_grants_nothing_dropped(catalog, monkeypatch):
    from iamgate.pipeline import analyse
    from iamgate.fix.plan import plan

    from conftest import FIXTURES
    for fixture in sorted((FIXTURES / "fix").iterdir()):
        monkeypatch.chdir(fixture)
        report = analyse(["infra"], ["baselines"], Config())
        for fix in plan(report.results, catalog).statements:
            dropped = {a.lower() for a in fix.dropped}
            for original, new in zip(fix.original_actions, fix.items):
                for p in new or ():
                    assert catalog.expand(p).actions.isdisjoint(dropped), (fixture.name, p)
                    assert catalog.expand(p).actions <= catalog.expand(original).actions, (fixture.name, p)
            for p in fix.actions:
                assert catalog.expand(p).actions.isdisjoint(dropped) or p in fix.original_actions


def test_a_suggestion_covers_only_the_lines_that_change(tmp_path, monkeypatch, catalog):
    from iamgate.fix.files import fix_files
    from iamgate.pipeline import analyse
    from iamgate.fix.plan import plan
    from iamgate.fix.suggestions import plan_suggestions

    setup(tmp_path, monkeypatch, catalog, "t.yaml", YAML, ["athena:Get*", "glue:Get*", "sqs:SendMessage"])
    remediation = plan(analyse(["infra"], ["b"], Config()).results, catalog)
    files, problems = fix_files(remediation)
    assert problems == []
    line = (tmp_path / "infra" / "t.yaml").read_text().splitlines().index('                  - "athena:*"') + 1
    suggestions = plan_suggestions(remediation, files, {"infra/t.yaml": [(1, 100)]}, "g", lambda f: f).suggestions
    block = next(s for s in suggestions if s.first == line)
    assert block.last == line and '```suggestion\n                  - "athena:Get*"\n```' in block.body


PATTERNS = ["s3:*", "s3:Get*", "ec2:Describe*", "athena:*", "glue:Get*", "iam:*", "sqs:*", "s3:*Object*",
            "kms:Decrypt", "dynamodb:*Item", "lambda:List*", "cloud*:Describe*", "madeup:*"]
STEMS = ["s3:get", "ec2:describe", "athena:get", "glue:get", "sqs:s", "iam:list", "lambda:listf"]


@pytest.mark.parametrize("seed", range(16))
def test_a_rewrite_keeps_every_kept_action_and_grants_nothing_dropped_or_new(catalog, seed):
    """Random statements, Denies and kept sets: the new list grants every kept action, no dropped one,
    and (without --compact) nothing the statement did not grant."""
    rnd = random.Random(seed)
    patterns = rnd.sample(PATTERNS, rnd.randint(1, 4))
    not_action = rnd.random() < 0.3
    stmt = st(not_actions=patterns) if not_action else st(patterns)
    before = (catalog.expand_not_actions if not_action else catalog.expand_all)(patterns).actions
    denied = catalog.expand(rnd.choice(["s3:Delete*", "iam:Create*", "ec2:Run*", "sqs:Purge*"])).actions
    granted = before - denied if rnd.random() < 0.4 else before
    share, stems = rnd.random(), tuple(rnd.sample(STEMS, 2))
    kept = frozenset(a for a in granted if a.startswith(stems) or rnd.random() < share)
    for use_compact in (False, True):
        items, new, widens = rewrite_items(stmt, kept, granted - kept, catalog, use_compact)
        after = catalog.expand_all(new).actions
        assert kept <= after and after.isdisjoint(granted - kept)
        if not use_compact:
            assert after <= before and not widens
        if not not_action:
            assert [p for p, i in zip(patterns, items) if i is None] == [
                p for p in patterns if catalog.expand(p).actions.isdisjoint(granted - kept)]


def test_compact_warns_only_when_a_wildcard_reaches_beyond_the_pattern_it_replaces(tmp_path, monkeypatch, capsys,
                                                                                  catalog):
    setup(tmp_path, monkeypatch, catalog, "t.yaml", ROLE_YAML + """\
                  - Effect: Allow
                    Action: s3:*Object*
                    Resource: "*"
    """, ["s3:DeleteObject*", "s3:GetObject"])
    code, diff, err = run(capsys, "fix", "infra", "--baselines", "b")
    assert code == 0 and "+                  - s3:DeleteObjectTagging\n" in diff and "widens" not in err
    code, diff, err = run(capsys, "fix", "infra", "--baselines", "b", "--compact")
    assert code == 0 and "+                  - s3:DeleteObject*\n" in diff and "widens as AWS adds actions" in err
