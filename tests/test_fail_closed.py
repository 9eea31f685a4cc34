"""Fail closed: where the gate cannot vouch for a grant it says so in every format, and never "pass"
for what it did not judge."""
from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
from conftest import FIXTURES, cli_in_process, role_template
from iamgate.formats.json import expanded

GH = FIXTURES / "github"
ALL = ["text", "json", "markdown", "sarif", "github"]
ROLE = role_template('{Effect: Allow, Action: "s3:GetObject", Resource: "*"}')


def check(cwd: Path, *args: str, fmt: str = "text"):
    return cli_in_process("check", *args, "--format", fmt, "--color", "never", cwd=cwd)


# -- exit 2 is "could not decide" -----------------------------------------------------------------

def test_an_unreadable_input_is_could_not_decide_in_every_format_never_pass(tmp_path):
    (tmp_path / "app.yaml").write_text(ROLE)
    (tmp_path / "broken.yaml").write_text("AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  R: [\n")
    (tmp_path / "broken2.json").write_text('{"AWSTemplateFormatVersion": "2010-09-09", "Resources": {"R": }}')
    out = {}
    for fmt in ALL:
        r = check(tmp_path, ".", fmt=fmt)
        assert r.returncode == 2, (fmt, r.stderr)
        out[fmt] = r.stdout
    assert "could not decide: 2 inputs unreadable" in out["text"] and "PASS" not in out["text"]
    assert "Could not decide: 2 inputs unreadable" in out["markdown"] and "passed" not in out["markdown"]
    gate = json.loads(out["json"])["gate"]
    assert gate["result"] == "error" and gate["decided"] is False and gate["unreadable"] == 2
    assert "could not decide" in gate["summary"]
    run = json.loads(out["sarif"])["runs"][0]
    assert run["properties"]["result"] == "error" and run["invocations"][0]["executionSuccessful"] is False
    assert "could not decide: 2 inputs unreadable" in out["github"]


# -- nothing judged -------------------------------------------------------------------------------

def test_no_usage_baseline_for_any_principal_is_said_in_every_format(tmp_path):
    (tmp_path / "app.yaml").write_text(ROLE)
    for fmt in ALL:
        r = check(tmp_path, ".", fmt=fmt)
        assert r.returncode == 0, r.stderr
        assert "nothing was judged: no usage baseline matched any principal" in r.stdout.lower(), fmt
    gate = json.loads(check(tmp_path, ".", fmt="json").stdout)["gate"]
    assert gate["nothing_judged"] is True and "nothing was judged" in gate["summary"]
    # the verdict line a CI log ends with says it too, not a bare PASS
    last = check(tmp_path, ".").stdout.strip().splitlines()[-1]
    assert last.startswith("PASS: no finding at or above high, but nothing was judged"), last


def test_require_usage_data_fails_the_gate_from_the_flag_and_the_config(tmp_path):
    (tmp_path / "app.yaml").write_text(ROLE)
    r = check(tmp_path, "app.yaml", "--require-usage-data")
    assert r.returncode == 1, r.stderr
    assert "FAIL: nothing was judged and require-usage-data is set" in r.stdout
    (tmp_path / ".iamgate.yml").write_text("require-usage-data: true\n")
    r = check(tmp_path, "app.yaml", fmt="markdown")
    assert r.returncode == 1 and "Gate failed" in r.stdout
    gate = json.loads(check(tmp_path, "app.yaml", fmt="json").stdout)["gate"]
    assert gate["result"] == "fail" and gate["require_usage_data"] is True


def test_require_usage_data_passes_once_a_principal_is_judged(tmp_path):
    r = check(GH, "infra", "--baselines", "baselines", "--require-usage-data", "--fail-on", "never")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "nothing was judged" not in r.stdout


# -- unresolved grants ----------------------------------------------------------------------------

B64 = textwrap.dedent("""\
    resource "aws_iam_role" "app" {
      name               = "app"
      assume_role_policy = "{}"
    }

    resource "aws_iam_role_policy" "p" {
      role = aws_iam_role.app.id
      policy = jsonencode({
        Version = "2012-10-17"
        Statement = [{
          Effect   = "Allow"
          Action   = base64decode("Kg==")
          Resource = "*"
        }]
      })
    }
    """)


def test_an_action_that_cannot_be_resolved_is_a_high_unresolved_grant(tmp_path):
    (tmp_path / "main.tf").write_text(B64)
    r = check(tmp_path, ".", fmt="json")
    assert r.returncode == 1, r.stderr
    rep = expanded(json.loads(r.stdout))
    [f] = [f for f in rep["findings"] if f["check"] == "unresolved-grant"]
    assert f["severity"] == "high" and f["line"] == 12 and f["principal"] == "aws_iam_role.app"
    assert "base64decode" in f["message"]
    assert not [f for f in rep["findings"] if f["check"] == "unresolved-policy"]  # reported once
    (tmp_path / ".iamgate.yml").write_text("severity:\n  unresolved-grant: low\n")
    assert check(tmp_path, ".").returncode == 0  # config can lower it


@pytest.mark.parametrize("statement, grant", [
    ('{Effect: !Ref Mode, Action: "s3:GetObject", Resource: "*"}', True),
    ('{Effect: Allow, NotAction: [!ImportValue Excluded], Resource: "*"}', True),
    ('{Effect: Allow, Action: [!ImportValue Extra, "s3:GetObject"], Resource: "*"}', True),
    ('{Effect: Deny, Action: [!ImportValue Extra], Resource: "*"}', False),  # can only deny less
    ('{Effect: Allow, Action: "s3:GetObject", Resource: !ImportValue Bucket}', False),
])
def test_which_unknown_parts_could_grant_anything(tmp_path, statement, grant):
    (tmp_path / "t.yaml").write_text(ROLE.replace('{Effect: Allow, Action: "s3:GetObject", Resource: "*"}', statement)
                                     .replace("Resources:", "Parameters:\n  Mode: {Type: String}\nResources:"))
    rep = expanded(json.loads(check(tmp_path, ".", fmt="json").stdout))
    assert any(f["check"] == "unresolved-grant" for f in rep["findings"]) is grant


GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def test_in_diff_mode_an_unresolved_grant_fails_only_where_the_pr_adds_it(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "main.tf").write_text(B64)

    def git(*args):
        subprocess.run(["git", *args], cwd=repo, env={**os.environ, **GIT_ENV}, check=True, capture_output=True)
    git("init", "-q", "-b", "main")
    git("add", ".")
    git("commit", "-q", "-m", "base")
    (repo / "main.tf").write_text("# a line on top\n" + B64)
    assert check(repo, ".", "--diff-base", "main").returncode == 0  # already on the base: not new
    (repo / "main.tf").write_text(B64 + B64.replace('"app"', '"other"').replace('"p"', '"q"')
                                  .replace("aws_iam_role.app", "aws_iam_role.other"))
    r = check(repo, ".", "--diff-base", "main", fmt="json")
    assert r.returncode == 1
    failing = [f for f in expanded(json.loads(r.stdout))["findings"] if f["check"] == "unresolved-grant" and f["new"]]
    assert [f["principal"] for f in failing] == ["aws_iam_role.other"]


# -- config typos ---------------------------------------------------------------------------------

@pytest.mark.parametrize("config, key", [
    ("disable: [resource-exposure, credential-exposur]\n", "disable.1"),
    ("severity:\n  no-usage-dat: high\n", "severity['no-usage-dat']"),
])
def test_an_unknown_check_id_in_the_config_is_an_error_naming_the_key(tmp_path, config, key):
    (tmp_path / "app.yaml").write_text(ROLE)
    (tmp_path / ".iamgate.yml").write_text(config)
    r = check(tmp_path, ".")
    assert r.returncode == 2 and r.stdout == ""
    assert f".iamgate.yml: {key}: unknown check id" in r.stderr and "did you mean" in r.stderr


def test_fail_on_is_case_insensitive(tmp_path):
    (tmp_path / "app.yaml").write_text(ROLE)
    r = check(tmp_path, ".", "--fail-on", "INFO")
    assert r.returncode == 1, r.stderr
    assert "at or above info" in r.stdout
    (tmp_path / ".iamgate.yml").write_text("fail-on: Info\n")
    assert check(tmp_path, ".").returncode == 1


# -- skipped files --------------------------------------------------------------------------------

def test_files_that_do_not_parse_and_are_not_iac_are_listed_with_a_count_in_every_format(tmp_path):
    (tmp_path / "app.yaml").write_text(ROLE)
    (tmp_path / "notes.yaml").write_text("key: [unclosed\n")
    (tmp_path / "data.json").write_text("{'single': 'quotes'}\n")
    for fmt in ALL:
        r = check(tmp_path, ".", fmt=fmt)
        assert r.returncode == 0, r.stderr
        assert "notes.yaml" in r.stdout and "data.json" in r.stdout, fmt
        if fmt != "json":
            assert "2 files under the scanned paths not read" in r.stdout or fmt in ("sarif", "github"), fmt
    skipped = json.loads(check(tmp_path, ".", fmt="json").stdout)["skipped"]
    assert sorted(s["file"] for s in skipped) == ["data.json", "notes.yaml"]
    assert all("does not parse" in s["reason"] for s in skipped)


def test_a_policy_given_as_a_sub_json_string_is_unresolved_only_where_it_is(tmp_path):
    doc = ('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["ec2:DescribeTags", "${Extra}"], '
           '"Resource": "arn:aws:ec2:${AWS::Region}:${AWS::AccountId}:security-group/*"}]}')
    (tmp_path / "t.yaml").write_text(
        "Parameters:\n  Extra: {Type: String}\nResources:\n  AppRole:\n    Type: AWS::IAM::Role\n    Properties:\n"
        f"      RoleName: app\n      Policies:\n        - PolicyName: p\n          PolicyDocument: !Sub '{doc}'\n")
    rep = expanded(json.loads(check(tmp_path, ".", fmt="json").stdout))
    [p] = rep["principals"]
    assert p["actions"]["granted"] == ["ec2:describetags"]  # the document is read, not dropped whole
    [f] = [f for f in rep["findings"] if f["check"] == "unresolved-grant"]
    assert "Action cannot be resolved" in f["message"]


def test_an_unreadable_baseline_is_could_not_decide_even_when_usage_data_is_required(tmp_path):
    (tmp_path / "app.yaml").write_text(ROLE)
    (tmp_path / "baselines").mkdir()
    (tmp_path / "baselines" / "app.json").write_text('{"schema": "iamgate.baseline/v1", ')
    r = check(tmp_path, "app.yaml", "--baselines", "baselines", "--require-usage-data", fmt="json")
    assert r.returncode == 2, r.stdout
    gate = json.loads(r.stdout)["gate"]
    assert gate["result"] == "error" and gate["nothing_judged"] is True  # the usage may be what was unreadable


def test_a_baseline_that_judged_none_of_the_grant_is_nothing_judged(tmp_path):
    """An unused-access analyzer that has not analysed the principal leaves its whole grant without usage
    data: that is not a judged principal, so require-usage-data still fails the gate."""
    (tmp_path / "app.yaml").write_text(ROLE)
    (tmp_path / "baselines").mkdir()
    (tmp_path / "baselines" / "app.json").write_text(json.dumps({
        "schema": "iamgate.baseline/v2", "principal_arn": "arn:aws:iam::111122223333:role/app",
        "sources": [{"kind": "unused-access"}], "used": {},
        "unused_access": {"analyzer": "arn:aws:access-analyzer:us-east-1:111122223333:analyzer/unused",
                          "tracking_period_days": 90, "analyzed_at": None, "not_analysed": "no analysis yet"}}))
    r = check(tmp_path, "app.yaml", "--baselines", "baselines", "--require-usage-data", fmt="json")
    gate = json.loads(r.stdout)["gate"]
    assert (r.returncode, gate["result"], gate["judged"], gate["nothing_judged"]) == (1, "fail", 0, True), r.stdout
