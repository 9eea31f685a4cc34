"""`iamgate fix --write` on shapes reviewers found broken: flow mappings, long-form Fn::If, commented
Terraform lists, CRLF files and unwritable directories. Each test writes, then re-reads the result."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from iamgate import cli
from iamgate.fix.files import FileFix, write

BASELINE = {"schema": "iamgate.baseline/v1", "principal_arn": "arn:aws:iam::111122223333:role/r1",
            "window": {"start": "2026-08-24T00:00:00Z", "end": "2026-11-22T00:00:00Z"},
            "sources": [{"kind": "cloudtrail", "events": 10, "files": 1}],
            "used": {"s3:getobject": {"count": 1, "signals": ["cloudtrail"]},
                     "sqs:sendmessage": {"count": 1, "signals": ["cloudtrail"]}},
            "data_events_observed": ["s3", "sqs"]}

ROLE_YAML = """\
Resources:
  R1:
    Type: AWS::IAM::Role
    Properties:
      RoleName: r1
      AssumeRolePolicyDocument: {}
      Policies:
        - PolicyName: p
          PolicyDocument:
            Statement:
"""


class Tagged(yaml.SafeLoader):
    """Reads CloudFormation short-form tags as plain values."""


Tagged.add_multi_constructor("!", lambda loader, suffix, node: {suffix: (
    loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else
    loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode) else loader.construct_mapping(node))})


def setup(root: Path, name: str, text: str, newline: str = "\n", observed=("s3", "sqs")) -> Path:
    """The file and r1's baseline; sqs actions are kept as unobservable unless sqs data events were observed."""
    (root / "infra").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "b" / "r1.json").write_text(json.dumps({**BASELINE, "data_events_observed": list(observed)}))
    path = root / "infra" / name
    path.write_bytes(text.replace("\n", newline).encode())
    return path


def fix(capsys, *extra) -> tuple[int, str]:
    code = cli.main(["fix", "infra", "--baselines", "b", *extra])
    return code, capsys.readouterr().err


def check_errors(capsys) -> list:
    cli.main(["check", "infra", "--baselines", "b", "--format", "json"])
    return json.loads(capsys.readouterr().out)["errors"]


def statements(path: Path) -> list:
    doc = yaml.load(path.read_text(), Loader=Tagged)
    return doc["Resources"]["R1"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]


@pytest.mark.parametrize("statement, want", [
    # a wildcard in a flow mapping keeps many (unobservable) sqs actions: too long for one line
    ('- {Effect: Allow, Action: [s3:GetObject, "sqs:*"], Resource: "*"}', None),
    ('- {Effect: Allow, Action: "sqs:*", Resource: "*"}', None),
    ('- {Effect: Allow, NotAction: [iam:*, organizations:*, sts:*, "kms:*"], Resource: "*"}', None),
    # short: stays one flow list inside the braces
    ('- {Effect: Allow, Action: [s3:GetObject, s3:DeleteObject], Resource: "*"}', ["s3:GetObject"]),
])
def test_a_flow_mapping_statement_gets_a_flow_list(tmp_path, monkeypatch, capsys, statement, want):
    path = setup(tmp_path, "t.yaml", ROLE_YAML + "              " + statement + "\n", observed=["s3"])
    monkeypatch.chdir(tmp_path)
    code, err = fix(capsys, "--write")
    assert code == 0, err
    (st,) = statements(path)  # valid YAML, one statement still
    assert "NotAction" not in st and st["Resource"] == "*"
    actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
    assert want is None or actions == want
    assert want is not None or len(path.read_text().splitlines()) > len(ROLE_YAML.splitlines()) + 1  # wrapped
    assert "s3:GetObject" in actions or "sqs:SendMessage" in actions
    assert check_errors(capsys) == []


def test_a_long_form_fn_if_branch_becomes_no_value_in_yaml(tmp_path, monkeypatch, capsys):
    path = setup(tmp_path, "t.yaml", "Conditions:\n  IsProd: !Equals [prod, prod]\n" + ROLE_YAML + """\
              - Effect: Allow
                Action: s3:GetObject
                Resource: "*"
              - Fn::If:
                  - IsProd
                  - Effect: Allow
                    Action: sqs:DeleteQueue
                    Resource: "*"
                  - !Ref AWS::NoValue
""")
    monkeypatch.chdir(tmp_path)
    code, err = fix(capsys, "--write")
    assert code == 0, err
    sts = statements(path)
    assert sts[1] == {"Fn::If": ["IsProd", {"Ref": "AWS::NoValue"}, {"Ref": "AWS::NoValue"}]}
    assert check_errors(capsys) == []


def test_a_long_form_fn_if_branch_becomes_no_value_in_json(tmp_path, monkeypatch, capsys):
    doc = {"Conditions": {"IsProd": {"Fn::Equals": ["prod", "prod"]}},
           "Resources": {"R1": {"Type": "AWS::IAM::Role", "Properties": {
               "RoleName": "r1", "AssumeRolePolicyDocument": {}, "Policies": [{"PolicyName": "p", "PolicyDocument": {
                   "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
                                 {"Fn::If": ["IsProd", {"Effect": "Allow", "Action": "sqs:DeleteQueue", "Resource": "*"},
                                             {"Ref": "AWS::NoValue"}]}]}}]}}}}
    path = setup(tmp_path, "t.json", json.dumps(doc, indent=2))
    monkeypatch.chdir(tmp_path)
    code, err = fix(capsys, "--write")
    assert code == 0, err
    sts = json.loads(path.read_text())["Resources"]["R1"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert sts[1] == {"Fn::If": ["IsProd", {"Ref": "AWS::NoValue"}, {"Ref": "AWS::NoValue"}]}


TF = """\
resource "aws_iam_role" "r1" {
  name               = "r1"
  assume_role_policy = "{}"
}

data "aws_iam_policy_document" "d" {
  statement {
    actions = [
      "s3:GetObject", # reads
      "s3:DeleteObject", # deletes
      "sqs:SendMessage" // sends
    ]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "p" {
  role   = aws_iam_role.r1.id
  policy = data.aws_iam_policy_document.d.json
}
"""


def test_terraform_list_items_with_trailing_comments_keep_the_kept_lines(tmp_path, monkeypatch, capsys):
    from iamgate.sources import SOURCES
    if "terraform" not in SOURCES.all():
        pytest.skip("the Terraform source is not in this tree")
    path = setup(tmp_path, "main.tf", TF)
    monkeypatch.chdir(tmp_path)
    code, err = fix(capsys, "--write")
    assert code == 0, err
    assert path.read_text() == TF.replace('      "s3:DeleteObject", # deletes\n', "")


@pytest.mark.parametrize("name, text", [
    ("t.yaml", ROLE_YAML + """\
              - Effect: Allow
                Action: "sqs:*"
                Resource: "*"
              - Effect: Allow
                Action: [s3:GetObject, s3:DeleteObject, s3:PutObject, s3:ListBucket, s3:GetObjectAcl, s3:PutObjectAcl]
                Resource: "*"
"""),
    ("t.json", json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["sqs:*", "s3:GetObject", "s3:PutObject"], "Resource": "*"}]}, indent=2)),
    ("main.tf", TF.replace('"s3:GetObject", # reads', '"sqs:*", "s3:GetObject", # reads')),
])
def test_new_lines_use_the_files_crlf_line_endings(tmp_path, monkeypatch, capsys, name, text):
    if name == "t.json":  # a raw policy document is attached by a file name convention: use a role template
        text = json.dumps({"Resources": {"R1": {"Type": "AWS::IAM::Role", "Properties": {
            "RoleName": "r1", "AssumeRolePolicyDocument": {},
            "Policies": [{"PolicyName": "p", "PolicyDocument": json.loads(text)}]}}}}, indent=2)
    if name == "main.tf":
        from iamgate.sources import SOURCES
        if "terraform" not in SOURCES.all():
            pytest.skip("the Terraform source is not in this tree")
    out = {}
    for nl in ("\n", "\r\n"):
        root = tmp_path / repr(nl).strip("'\\")
        path = setup(root, name, text, newline=nl, observed=["s3"])
        monkeypatch.chdir(root)
        code, err = fix(capsys, "--write")
        assert code == 0, err
        out[nl] = path.read_bytes()
    lf = out["\n"].decode()
    assert set(lf.splitlines()) - set(text.splitlines()), "the fix writes new lines"
    assert b"\r\r" not in out["\r\n"] and out["\r\n"] == lf.replace("\n", "\r\n").encode()


def test_an_unwritable_directory_is_one_line_exit_2_and_leaves_no_temporary_file(tmp_path, monkeypatch, capsys):
    path = setup(tmp_path, "t.yaml", ROLE_YAML + """\
              - Effect: Allow
                Action: [s3:GetObject, s3:DeleteObject]
                Resource: "*"
""")
    before = path.read_bytes()
    monkeypatch.chdir(tmp_path)

    def refused(src, dst, *a, **kw):  # what a read-only directory does (root ignores chmod, so simulate it)
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(os, "replace", refused)
    code, err = fix(capsys, "--write")
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == f"iamgate: error: cannot write {Path('infra', 't.yaml')}: Permission denied"
    assert sorted(p.name for p in (tmp_path / "infra").iterdir()) == ["t.yaml"] and path.read_bytes() == before


def test_write_replaces_atomically_with_a_unique_temporary_and_cleans_up_on_failure(tmp_path):
    from iamgate.commands import UsageError
    good = tmp_path / "a.yaml"
    good.write_text("old\n")
    good.chmod(0o640)
    stale = tmp_path / ".a.yaml.iamgate-fix.tmp"  # a fixed temporary name from an earlier run is not reused
    stale.mkdir()
    write([FileFix("a.yaml", good, "old\n", "new\n", ())])
    assert good.read_text() == "new\n" and good.stat().st_mode & 0o777 == 0o640
    target = tmp_path / "d"
    (target / "x").mkdir(parents=True)  # a non-empty directory cannot be replaced by a file
    with pytest.raises(UsageError, match=r"^cannot write .*d: "):
        write([FileFix("d", target, "", "new\n", ())])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".a.yaml.iamgate-fix.tmp", "a.yaml", "d"])



def test_an_unreadable_input_is_exit_2_and_the_readable_files_are_still_fixed(tmp_path, monkeypatch, capsys):
    setup(tmp_path, "t.yaml", ROLE_YAML + '              - {Effect: Allow, Action: [s3:GetObject, s3:DeleteObject], '
                              'Resource: "*"}\n', observed=["s3"])
    (tmp_path / "infra" / "broken.yaml").write_text("AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  R: [\n")
    monkeypatch.chdir(tmp_path)
    code = cli.main(["fix", "infra", "--baselines", "b"])
    out, err = capsys.readouterr()
    assert code == 2, err  # was 0: an input left unread and unfixed is an error, as in `check`
    assert "iamgate: error: infra/broken.yaml:" in err and "+++ b/infra/t.yaml" in out and "Action: [s3:GetObject]," in out
