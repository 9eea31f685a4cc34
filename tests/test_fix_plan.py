"""The remediation plan: compact wildcards, shared statements, and what has to be fixed by hand."""
from __future__ import annotations

import json
import textwrap

import pytest

from iamgate.config import Config
from iamgate.fix.files import fix_files
from iamgate.pipeline import analyse
from iamgate.fix.plan import compact, plan

BASELINE = {"schema": "iamgate.baseline/v1", "principal_arn": "arn:aws:iam::111122223333:role/{name}",
            "window": {"start": "2026-08-24T00:00:00Z", "end": "2026-11-22T00:00:00Z"},
            "sources": [{"kind": "cloudtrail", "events": 10, "files": 1}],
            "used": {"sqs:sendmessage": {"count": 1, "signals": ["cloudtrail"]}}, "data_events_observed": ["sqs"]}


@pytest.mark.parametrize("kept", [
    {"sqs:sendmessage", "sqs:receivemessage"},
    {"s3:getobject", "s3:getobjectacl", "s3:getobjecttagging", "kms:decrypt"},
    set(),
])
def test_compact_grants_exactly_the_kept_set(catalog, kept):
    kept = set(kept) | {a for a in catalog.all_actions if a.startswith("rds-data:")}
    patterns, wild = compact(kept, catalog)
    assert catalog.expand_all(patterns).actions == frozenset(kept)
    assert wild and "rds-data:*" in patterns
    assert not any(p.endswith("*") and len(catalog.expand(p).actions) == 1 for p in patterns)


def write(tmp_path, files: dict, names=("orders-a", "orders-b")):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    for n in names:
        (tmp_path / "b").mkdir(exist_ok=True)
        (tmp_path / "b" / f"{n}.json").write_text(json.dumps(BASELINE).replace("{name}", n))


def run_plan(tmp_path, monkeypatch, paths=("infra",), baselines=True):
    monkeypatch.chdir(tmp_path)
    report = analyse(list(paths), ["b"] if baselines else [], Config())
    from iamgate.reference.catalog import load_catalog
    remediation = plan(report.results, load_catalog(), Config())
    files, problems = fix_files(remediation)
    return remediation, files, list(remediation.problems) + problems


SHARED = """\
    Resources:
      A:
        Type: AWS::IAM::Role
        Properties: {RoleName: orders-a, AssumeRolePolicyDocument: {Statement: []}}
      B:
        Type: AWS::IAM::Role
        Properties: {RoleName: orders-b, AssumeRolePolicyDocument: {Statement: []}}
      C:
        Type: AWS::IAM::Role
        Properties: {RoleName: orders-c, AssumeRolePolicyDocument: {Statement: []}}
      Shared:
        Type: AWS::IAM::ManagedPolicy
        Properties:
          Roles: [!Ref A, !Ref B, {CC}]
          PolicyDocument:
            Statement:
              - Effect: Allow
                Action: [sqs:SendMessage, sqs:DeleteQueue]
                Resource: "*"
      Only:
        Type: AWS::IAM::Policy
        Properties:
          PolicyName: only
          Roles: [!Ref A]
          PolicyDocument:
            Statement:
              - Effect: Allow
                Action: sqs:PurgeQueue
                Resource: "*"
    """


def test_a_shared_statement_keeps_the_union_and_one_without_data_keeps_everything(tmp_path, monkeypatch):
    write(tmp_path, {"infra/t.yaml": SHARED.replace("{CC}", "!Ref C")})
    remediation, files, problems = run_plan(tmp_path, monkeypatch)
    assert remediation.statements == ()  # C has no baseline: the shared statement cannot be narrowed
    assert any("policy only: every action it grants is unused" in str(p) for p in problems)  # not emptied


def test_a_shared_statement_is_narrowed_for_all_its_principals(tmp_path, monkeypatch):
    write(tmp_path, {"infra/t.yaml": SHARED.replace(", {CC}", "")})
    remediation, files, problems = run_plan(tmp_path, monkeypatch)
    (fix,) = remediation.statements
    assert fix.actions == ("sqs:SendMessage",) and set(fix.principals) == {"A", "B"}
    assert "Action: [sqs:SendMessage]" in files[0].new


@pytest.mark.parametrize("files, reason", [
    ({"infra/serverless.yml": """\
        service: orders
        custom: {actions: [sqs:SendMessage, sqs:DeleteQueue]}
        provider:
          name: aws
          iam:
            role:
              name: orders-a
              statements:
                - Effect: Allow
                  Action: ${self:custom.actions}
                  Resource: "*"
        functions: {f: {handler: h.f}}
        """}, "edit it by hand"),
    ({"infra/main.tf": """\
        variable "actions" { default = ["sqs:SendMessage", "sqs:DeleteQueue"] }
        resource "aws_iam_role" "a" {
          name               = "orders-a"
          assume_role_policy = "{}"
        }
        resource "aws_iam_role_policy" "p" {
          role   = aws_iam_role.a.id
          policy = jsonencode({Statement = [{Effect = "Allow", Action = var.actions, Resource = "*"}]})
        }
        """}, "computed"),
])
def test_computed_action_lists_are_left_for_a_person_with_the_location(tmp_path, monkeypatch, files, reason):
    write(tmp_path, files)
    remediation, out, problems = run_plan(tmp_path, monkeypatch)
    assert out == []
    msgs = [str(p) for p in problems if "not rewritten" in str(p)]
    assert msgs and reason in msgs[0] and msgs[0].startswith("infra/")
