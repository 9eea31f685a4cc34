"""`iamgate usage unused-access` then `iamgate check`, over real HTTP and never the internet.

Access Analyzer's unused-access API comes from a local stand-in (tests/fixtures/aws/fake_unused_access.py)
via AWS_ENDPOINT_URL_ACCESSANALYZER; the deployed grants (GetAccountAuthorizationDetails) from a moto
server via AWS_ENDPOINT_URL. botocore serialises, signs, sends and parses every request.
"""
from __future__ import annotations

import datetime as dt
import json

from iamgate.formats.json import expanded

import boto3
import pytest

from fixtures.aws.fake_unused_access import FakeUnusedAccess
from fixtures.aws.helpers import ACCOUNT, aws_env, moto_server
from iamgate.usage.aws_clients import Clients
from iamgate.cli import main
from iamgate.usage import unused_access as ua

ANALYZER = f"arn:aws:access-analyzer:us-east-1:{ACCOUNT}:analyzer/unused"
ANALYSED = "2026-11-21T06:00:00Z"
OLD, FRESH = dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc), dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)


def arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


# What is deployed (moto) ...
DEPLOYED = {
    "orders": ["s3:GetObject", "s3:CreateBucket", "s3:DeleteBucket", "ec2:RunInstances", "ec2:DescribeInstances",
               "kms:Decrypt", "sns:Publish"],
    "batch": ["dynamodb:CreateTable", "dynamodb:GetItem"],
    "api": ["lambda:CreateFunction", "lambda:InvokeFunction"],
    "fresh": ["sqs:CreateQueue"],
}
# ... and what the PR grants: orders also gets kms:CreateKey, which is not deployed (a new grant)
PR_GRANTS = dict(DEPLOYED, orders=DEPLOYED["orders"] + ["kms:CreateKey"])


def template() -> str:
    lines = ['AWSTemplateFormatVersion: "2010-09-09"', "Resources:"]
    for name, actions in PR_GRANTS.items():
        lines += [f"  {name.title()}Role:", "    Type: AWS::IAM::Role", "    Properties:", f"      RoleName: {name}",
                  "      AssumeRolePolicyDocument: {Version: '2012-10-17', Statement: [{Effect: Allow, "
                  "Principal: {Service: lambda.amazonaws.com}, Action: 'sts:AssumeRole'}]}",
                  "      Policies:", f"        - PolicyName: {name}-inline",
                  "          PolicyDocument:", "            Version: '2012-10-17'", "            Statement:",
                  f"              - {{Effect: Allow, Action: [{', '.join(actions)}], Resource: '*'}}"]
    return "\n".join(lines) + "\n"


def finding(fid: str, role: str, kind: str, details: list, status: str = "ACTIVE") -> dict:
    return {"id": fid, "resource": arn(role), "resourceType": "AWS::IAM::Role", "resourceOwnerAccount": ACCOUNT,
            "findingType": kind, "status": status, "analyzedAt": ANALYSED, "createdAt": "2026-06-01T00:00:00Z",
            "updatedAt": ANALYSED, "findingDetails": details}


FINDINGS = [
    finding("f-orders", "orders", "UnusedPermission", [
        {"unusedPermissionDetails": {"serviceNamespace": "s3", "lastAccessed": "2026-10-01T00:00:00Z", "actions": [
            {"action": "s3:DeleteBucket", "lastAccessed": "2026-02-01T00:00:00Z"}]}},
        {"unusedPermissionDetails": {"serviceNamespace": "ec2", "lastAccessed": "2026-03-01T00:00:00Z"}}]),
    finding("f-batch", "batch", "UnusedIAMRole", [{"unusedIamRoleDetails": {"lastAccessed": "2026-04-01T00:00:00Z"}}]),
    finding("f-api-old", "api", "UnusedIAMRole", [{"unusedIamRoleDetails": {}}], status="RESOLVED"),
]
RECOMMENDED = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:CreateBucket", "kms:Decrypt"], "Resource": "*"}]}
ANALYZERS = [
    {"arn": f"arn:aws:access-analyzer:us-east-1:{ACCOUNT}:analyzer/external", "name": "external", "type": "ACCOUNT",
     "createdAt": "2025-01-01T00:00:00Z", "status": "ACTIVE"},
    {"arn": ANALYZER, "name": "unused", "type": "ACCOUNT_UNUSED_ACCESS", "createdAt": "2025-01-01T00:00:00Z",
     "lastResourceAnalyzed": arn("orders"), "lastResourceAnalyzedAt": ANALYSED, "status": "ACTIVE",
     "configuration": {"unusedAccess": {"unusedAccessAge": 90}}},
]


@pytest.fixture(scope="module")
def moto():
    from moto.iam.models import iam_backends
    with moto_server() as url:
        iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                           aws_secret_access_key="testing")
        trust = json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
        for name, actions in DEPLOYED.items():
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)
            iam.put_role_policy(RoleName=name, PolicyName=f"{name}-inline", PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}))
            # moto stamps "now"; the analysis judges only principals older than its tracking period
            iam_backends[ACCOUNT]["global"].get_role(name).create_date = FRESH if name == "fresh" else OLD
        yield url


@pytest.fixture
def fake(moto, monkeypatch):
    aws_env(monkeypatch, moto)
    monkeypatch.setenv("IAMGATE_DELAY_SCALE", "0.005")  # every wait (a recommendation's 2 s) in milliseconds
    with FakeUnusedAccess(ANALYZERS, FINDINGS, {"f-orders": [{"unusedPermissionsRecommendedStep": {
            "recommendedAction": "CREATE_POLICY", "existingPolicyId": "orders-inline",
            "recommendedPolicy": json.dumps(RECOMMENDED)}}]}, throttle={"ListFindingsV2": 2}) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_ACCESSANALYZER", server.url)
        yield server


def test_usage_then_check_gives_the_verdicts(fake, tmp_path, monkeypatch, capsys):
    out = tmp_path / "baselines"
    clients = Clients("us-east-1")
    from iamgate.cli import build_parser
    args = build_parser(["usage"]).parse_args(["usage", "unused-access", "--analyzer", ANALYZER, "--out", str(out)])
    from iamgate.commands._unused_access import run_unused_access
    assert run_unused_access(args, clients=clients) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "4 baseline(s) written" in err and "(1 not analysed yet)" in err

    # every call the command made is in API_CALLS, which --print-policy grants
    assert clients.calls <= set(ua.API_CALLS)
    assert {op for _, op in clients.calls} >= {"GetAnalyzer", "ListFindingsV2", "GetFindingV2",
                                               "GenerateFindingRecommendation", "GetFindingRecommendation",
                                               "GetAccountAuthorizationDetails"}
    lists = [r for r in fake.requests if r.path == "/findingv2"]
    assert [r.error for r in lists][:2] == ["ThrottlingException"] * 2  # retried (by botocore, then by iamgate)
    assert lists[-1].body["filter"] == {"findingType": {"eq": list(ua.ACTION_FINDINGS + ua.CREDENTIAL_FINDINGS)},
                                        "status": {"eq": ["ACTIVE", "ARCHIVED"]}}
    # findingDetails come one per page: orders' finding needs two GetFindingV2 pages
    assert [r.query.get("nextToken") for r in fake.requests if r.path == "/findingv2/f-orders"] == [None, ["1"]]

    orders = json.loads((out / f"{ACCOUNT}_role_orders.json").read_text())
    assert orders["schema"] == "iamgate.baseline/v3"  # with history: the tracking period it covered
    assert orders["coverage"] == {"unused-access": [{"start": "2026-08-23T06:00:00Z", "end": ANALYSED}]}
    assert orders["window"] == {"start": "2026-08-23T06:00:00Z", "end": ANALYSED}
    section = orders["unused_access"]
    assert section["unused_actions"] == {"s3:deletebucket": {"last_accessed": "2026-02-01T00:00:00Z"}}
    assert section["unused_services"] == {"ec2": {"last_accessed": "2026-03-01T00:00:00Z"}}
    assert section["recommendation"]["steps"][0]["policy"] == RECOMMENDED
    [policy] = section["deployed_grant"]["policies"]
    assert policy["document"]["Statement"][0]["Action"] == DEPLOYED["orders"]
    assert orders["sources"][0]["tracking_period_days"] == 90
    fresh = json.loads((out / f"{ACCOUNT}_role_fresh.json").read_text())
    assert fresh["unused_access"]["analyzed_at"] is None and "tracking period" in fresh["unused_access"]["not_analysed"]

    (tmp_path / "template.yaml").write_text(template())
    capsys.readouterr()
    code = main(["check", str(tmp_path / "template.yaml"), "--baselines", str(out), "--format", "json"])
    captured = capsys.readouterr()
    assert captured.out, captured.err
    report = json.loads(captured.out)
    import jsonschema
    from importlib import resources
    jsonschema.validate(report, json.loads(resources.files("iamgate").joinpath(
        "data/schemas/report.schema.json").read_text()))  # the machine contract holds for this source too
    report = expanded(report)
    assert code == 0, (report["errors"], report["findings"], [p["actions"] for p in report["principals"]])
    got = {p["name"]: p["actions"] for p in report["principals"]}
    assert got["orders"]["unused"] == ["ec2:describeinstances", "ec2:runinstances", "s3:deletebucket"]
    assert got["orders"]["used"] == ["kms:decrypt", "s3:createbucket"]  # tracked per action, not reported
    assert got["orders"]["unobservable"] == ["s3:getobject", "sns:publish"]  # service-level usage only
    assert got["orders"]["no_usage_data"] == ["kms:createkey"]  # the PR's new grant: not judged by this source
    assert got["batch"]["unused"] == ["dynamodb:createtable", "dynamodb:getitem"]  # UnusedIAMRole
    assert got["api"]["used"] == ["lambda:createfunction"]  # no finding (the RESOLVED one does not count)
    assert got["api"]["unobservable"] == ["lambda:invokefunction"]
    assert got["fresh"]["no_usage_data"] == ["sqs:createqueue"] and not got["fresh"]["used"]
    not_judged = {f["principal"]: f["message"] for f in report["findings"] if f["check"] == "no-usage-data"}
    assert "1 granted action of fresh not judged by its baseline: not analysed by the unused-access analyzer: " \
           "created 2026-11-01, less than the 90-day tracking period" in not_judged["FreshRole"]
    assert "a new grant" in not_judged["OrdersRole"]
    reasons = {p["name"]: p["reasons"] for p in report["principals"]}
    assert "UnusedIAMRole" in next(iter(reasons["batch"]["unused"]))

    # the PR comment names the source and its tracking period
    main(["check", str(tmp_path / "template.yaml"), "--baselines", str(out), "--format", "markdown"])
    md = capsys.readouterr().out
    assert "IAM Access Analyzer unused access" in md and "90-day tracking period" in md

    main(["check", str(tmp_path / "template.yaml"), "--baselines", str(out)])
    text = capsys.readouterr().out
    assert "via IAM Access Analyzer unused access (90-day tracking period, analysed 2026-11-21)" in text

    # fix shows AWS's recommended policy beside its own, and where they differ
    assert main(["fix", str(tmp_path / "template.yaml"), "--baselines", str(out)]) == 0
    fixed = capsys.readouterr()
    assert "+              - {Effect: Allow, Action: [s3:GetObject, s3:CreateBucket, kms:Decrypt, sns:Publish, " \
           "kms:CreateKey], Resource: '*'}" in fixed.out
    assert "OrdersRole: AWS Access Analyzer recommends (finding f-orders):" in fixed.err
    assert "replace orders-inline with {" in fixed.err
    assert "OrdersRole: differs: iamgate keeps 1 action(s) AWS drops" in fixed.err and "sns:publish" in fixed.err


def test_the_cli_runs_it_and_print_policy_covers_every_call(fake, tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["usage", "unused-access", "--analyzer", ANALYZER, "--out", str(out), "--principal", "orders",
                 "--no-recommendations"]) == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [".unused-access-summary.json", f"{ACCOUNT}_role_orders.json"]
    assert "GenerateFindingRecommendation" not in {r.operation for r in fake.requests}
    capsys.readouterr()
    assert main(["usage", "unused-access", "--print-policy"]) == 0
    policy = json.loads(capsys.readouterr().out)
    granted = {a for st in policy["Statement"] for a in st["Action"]}
    assert granted == {"access-analyzer:ListAnalyzers", "access-analyzer:GetAnalyzer", "access-analyzer:ListFindings",
                       "access-analyzer:GetFinding", "access-analyzer:GenerateFindingRecommendation",
                       "access-analyzer:GetFindingRecommendation", "iam:GetAccountAuthorizationDetails"}
    assert len(ua.iam_actions()) == len(ua.API_CALLS)  # one action per call; the first test checks the calls


def test_wrong_or_missing_analyzer_is_a_usage_error(fake, tmp_path, capsys):
    external = ANALYZERS[0]["arn"]
    assert main(["usage", "unused-access", "--analyzer", external, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "of type ACCOUNT, not an unused-access analyzer" in err and "Traceback" not in err
    assert main(["usage", "unused-access", "--analyzer", "arn:aws:s3:::bucket", "--out", str(tmp_path)]) == 2
    assert "not an Access Analyzer analyzer ARN" in capsys.readouterr().err
    missing = ANALYZER.replace("/unused", "/gone")
    assert main(["usage", "unused-access", "--analyzer", missing, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no such analyzer" in err and ANALYZER in err  # names the one that exists


def test_readme_shows_the_generated_policy():
    from pathlib import Path
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("<!-- iamgate:unused-access-policy", 1)[1].split("```json\n", 1)[1].split("```", 1)[0]
    from iamgate.reference.catalog import load_catalog
    assert json.loads(block) == ua.required_policy(load_catalog())


def test_a_real_process_reaches_the_stand_in_through_the_environment(fake, tmp_path):
    import os
    from conftest import run_cli
    out = tmp_path / "b"
    env = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}  # what aws_env set: all local
    run = run_cli("usage", "unused-access", "--analyzer", ANALYZER, "--out", str(out), "--principal", "*batch*",
                  env=env)
    assert run.returncode == 0, run.stderr
    assert "[1/1] arn:aws:iam::123456789012:role/batch: done: unused role" in run.stderr
    assert json.loads((out / f"{ACCOUNT}_role_batch.json").read_text())["unused_access"]["unused_role"] is True


def test_replies_of_the_wrong_shape_are_judged_not_a_crash(moto, monkeypatch, tmp_path, capsys):
    """A finding without its id is retried as an unexpected reply and then ends the run as an AWS error;
    an analyzer description without its status is a usage error. Neither is an internal error."""
    aws_env(monkeypatch, moto)
    monkeypatch.setenv("IAMGATE_DELAY_SCALE", "0.001")
    no_id = {k: v for k, v in FINDINGS[1].items() if k != "id"}
    no_status = [{k: v for k, v in a.items() if k != "status"} for a in ANALYZERS]
    for analyzers, findings, message in ((ANALYZERS, [no_id], "AWS: ListFindingsV2: UnexpectedResponse: the reply "
                                          "has an unexpected shape (missing 'id')"),
                                         (no_status, FINDINGS, "GetAnalyzer: UnexpectedResponse: the reply has an "
                                          "unexpected shape (missing 'status')")):
        with FakeUnusedAccess(analyzers, findings) as server:
            monkeypatch.setenv("AWS_ENDPOINT_URL_ACCESSANALYZER", server.url)
            assert main(["usage", "unused-access", "--analyzer", ANALYZER, "--out", str(tmp_path)]) == 2
            lists = [r for r in server.requests if r.path == "/findingv2"]
        err = capsys.readouterr().err
        assert message in err and "internal error" not in err and "Traceback" not in err
        assert len(lists) == (5 if findings == [no_id] else 0)  # Retry.ATTEMPTS tries of the bad reply
