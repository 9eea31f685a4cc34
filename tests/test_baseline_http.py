"""`iamgate baseline` over real HTTP, never the internet: Access Analyzer from a local fake server
(tests/fixtures/aws/fake_access_analyzer.py) via AWS_ENDPOINT_URL_ACCESSANALYZER, IAM/STS/CloudFormation
from a moto server via AWS_ENDPOINT_URL. No Stubber: botocore serialises, signs, sends and parses."""
from __future__ import annotations

import datetime as dt
import json

import boto3
import pytest
from botocore.exceptions import ClientError

from conftest import run_cli
from fixtures.aws.fake_access_analyzer import FakeAccessAnalyzer
from fixtures.aws.helpers import ACCESS_ROLE, ACCOUNT, TRAIL, aws_env, moto_server
from iamgate.cli import main
from iamgate.usage.baseline_job import STATE_FILE

TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Resources:
  ApiRole:
    Type: AWS::IAM::Role
    Properties:
      RoleName: http-api
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Principal: {Service: lambda.amazonaws.com}
            Action: sts:AssumeRole
      ManagedPolicyArns:
        - !Sub arn:aws:iam::${AWS::AccountId}:policy/http-api-extra
      Policies:
        - PolicyName: api
          PolicyDocument:
            Version: "2012-10-17"
            Statement:
              - Effect: Allow
                Action: [s3:GetObject, s3:PutObject, sqs:SendMessage]
                Resource: "*"
  JobRole:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Principal: {Service: ecs-tasks.amazonaws.com}
            Action: sts:AssumeRole
      Policies:
        - PolicyName: table
          PolicyDocument:
            Version: "2012-10-17"
            Statement:
              - Effect: Allow
                Action: [dynamodb:GetItem, dynamodb:PutItem]
                Resource: "*"
"""
API = f"arn:aws:iam::{ACCOUNT}:role/http-api"
API_ACTIONS = ["s3:GetObject", "sqs:SendMessage", "kms:Decrypt"]
JOB_ACTIONS = ["dynamodb:GetItem"]


@pytest.fixture(scope="module")
def moto():
    """IAM, STS and CloudFormation: the stack is really created, so JobRole resolves through it."""
    with moto_server() as url:
        kw = dict(endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                  aws_secret_access_key="testing")
        boto3.client("iam", **kw).create_policy(PolicyName="http-api-extra", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}]}))
        cfn = boto3.client("cloudformation", **kw)
        cfn.create_stack(StackName="http-app", TemplateBody=TEMPLATE, Capabilities=["CAPABILITY_NAMED_IAM"])
        job = cfn.describe_stack_resource(StackName="http-app", LogicalResourceId="JobRole")
        yield url, f"arn:aws:iam::{ACCOUNT}:role/" + job["StackResourceDetail"]["PhysicalResourceId"]


@pytest.fixture
def app(moto, tmp_path, monkeypatch):
    """The IaC folder, its config and the output folder; the environment points every client locally."""
    url, job_arn = moto
    aws_env(monkeypatch, url)
    code = tmp_path / "app"
    code.mkdir()
    (code / "template.yaml").write_text(TEMPLATE)
    (code / "iamgate.yml").write_text(f"stacks:\n  template.yaml: http-app\nmanaged-policies: {tmp_path / 'managed'}\n")
    monkeypatch.chdir(code)
    monkeypatch.setenv("IAMGATE_DELAY_SCALE", "0.002")  # every wait (polls 5 s, conflicts 30 s) in milliseconds
    return job_arn, tmp_path / "baselines"


def argv(out, *extra):
    # moto has no GenerateServiceLastAccessedDetails: that signal is skipped (its Stubber tests cover it)
    return ["baseline", "template.yaml", "--config", "iamgate.yml", "--trail", TRAIL, "--access-role", ACCESS_ROLE,
            "--out", str(out), "--days", "30", "--no-last-accessed", *extra]


def parse_iso(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_fake_server_speaks_the_protocol_botocore_expects(monkeypatch):
    aws_env(monkeypatch)
    with FakeAccessAnalyzer(actions={API: ["s3:GetObject"]}) as fake:
        aa = boto3.client("accessanalyzer", endpoint_url=fake.url, region_name="us-east-1")
        end = dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)
        req = dict(policyGenerationDetails={"principalArn": API},
                   cloudTrailDetails={"trails": [{"cloudTrailArn": TRAIL, "allRegions": True}],
                                      "accessRole": ACCESS_ROLE, "startTime": end - dt.timedelta(days=7),
                                      "endTime": end})
        job = aa.start_policy_generation(clientToken="t1", **req)["jobId"]
        assert aa.start_policy_generation(clientToken="t1", **req)["jobId"] == job  # idempotent retry
        with pytest.raises(ClientError) as e:
            aa.start_policy_generation(clientToken="t2", **req)
        assert e.value.response["Error"]["Code"] == "ConflictException"
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
        assert isinstance(e.value, aa.exceptions.ConflictException)

        first = aa.get_generated_policy(jobId=job, includeResourcePlaceholders=True)
        assert first["jobDetails"]["status"] == "IN_PROGRESS"
        assert first["generatedPolicyResult"]["generatedPolicies"] == []
        done = aa.get_generated_policy(jobId=job)
        assert done["jobDetails"]["status"] == "SUCCEEDED" and isinstance(done["jobDetails"]["completedOn"], dt.datetime)
        props = done["generatedPolicyResult"]["properties"]
        assert props["principalArn"] == API and props["isComplete"] is True
        assert props["cloudTrailProperties"]["startTime"] == end - dt.timedelta(days=7)
        policy = json.loads(done["generatedPolicyResult"]["generatedPolicies"][0]["policy"])
        assert policy["Statement"][0]["Action"] == ["s3:GetObject"]
        assert [g["status"] for g in aa.list_policy_generations(principalArn=API)["policyGenerations"]] == ["SUCCEEDED"]

        other = aa.start_policy_generation(clientToken="t3", **req)["jobId"]  # the first one is over
        aa.cancel_policy_generation(jobId=other)
        assert fake.jobs[other].status == "CANCELED"
        with pytest.raises(ClientError) as e:
            aa.get_generated_policy(jobId="nope")
        assert e.value.response["Error"]["Code"] == "ValidationException"
        assert fake.requests[0].query == {} and fake.requests[0].body["clientToken"] == "t1"
        assert fake.requests[3].query == {"includeResourcePlaceholders": ["true"]}


def test_baseline_end_to_end_over_http(app, monkeypatch, capsys):
    job_arn, out = app
    with FakeAccessAnalyzer(actions={API: API_ACTIONS, job_arn: JOB_ACTIONS}) as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL_ACCESSANALYZER", fake.url)
        assert main(argv(out)) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "2 baseline(s) written, 0 fresh (skipped), 0 failed, 0 last-accessed failed, 0 not resolved" in err
    assert "2 job(s) started" in err and "fetched 1 managed policies" in err

    # the account's jobs listed once; one job at a time: start, poll (IN_PROGRESS), poll (SUCCEEDED); nothing else
    assert fake.operations() == ["ListPolicyGenerations"] + ["StartPolicyGeneration", "GetGeneratedPolicy",
                                                             "GetGeneratedPolicy"] * 2
    assert all(r.status == 200 for r in fake.requests)
    starts = [r for r in fake.requests if r.operation == "StartPolicyGeneration"]
    assert [s.body["policyGenerationDetails"]["principalArn"] for s in starts] == [API, job_arn]
    assert len(fake.jobs) == 2 and all(j.status == "SUCCEEDED" for j in fake.jobs.values())
    ct = starts[0].body["cloudTrailDetails"]
    assert ct["trails"] == [{"cloudTrailArn": TRAIL, "allRegions": True}] and ct["accessRole"] == ACCESS_ROLE
    assert (parse_iso(ct["endTime"]) - parse_iso(ct["startTime"])) == dt.timedelta(days=30)
    assert starts[0].body["clientToken"].startswith("iamgate-")
    api_job, job_job = sorted(fake.jobs.values(), key=lambda j: j.principal_arn != API)
    gets = [r for r in fake.requests if r.operation == "GetGeneratedPolicy"]
    assert [r.path for r in gets] == [f"/policy/generation/{j.job_id}" for j in (api_job, api_job, job_job, job_job)]
    assert gets[0].query == {"includeResourcePlaceholders": ["true"], "includeServiceLevelTemplate": ["true"]}

    api = json.loads((out / "http-api.json").read_text())
    assert api["principal_arn"] == API
    window = {"first_seen": ct["startTime"], "last_seen": ct["endTime"]}  # history: used within the job's window
    assert api["used"] == {a.lower(): {"signals": ["access-analyzer"], "by_source": {"access-analyzer": window}}
                           for a in API_ACTIONS}
    assert api["window"] == {"start": ct["startTime"], "end": ct["endTime"]}
    [source] = api["sources"]
    assert source["kind"] == "access-analyzer" and source["complete"] is True
    assert source["job_id"] == api_job.job_id and source["trail"] == TRAIL
    assert source["generated_at"] == api_job.completed_on

    job_name = job_arn.rsplit("/", 1)[-1]
    job = json.loads((out / f"{job_name}.json").read_text())
    assert job["principal_arn"] == job_arn and list(job["used"]) == ["dynamodb:getitem"]
    raw = json.loads((out / ".raw" / "http-api.json").read_text())
    assert raw["jobDetails"] == {"jobId": api_job.job_id, "status": "SUCCEEDED", "startedOn": api_job.started_on,
                                 "completedOn": api_job.completed_on}
    state = json.loads((out / STATE_FILE).read_text())
    assert state["pending"] == {}
    assert [j["job_id"] for j in state["jobs"]] == [api_job.job_id, job_job.job_id]

    # a second run the same day: fresh, not one request reaches Access Analyzer
    with FakeAccessAnalyzer() as again:
        monkeypatch.setenv("AWS_ENDPOINT_URL_ACCESSANALYZER", again.url)
        assert main(argv(out, "--no-managed-policies")) == 0
    assert again.operations() == ["ListPolicyGenerations"]  # nothing started: both are fresh
    assert "0 baseline(s) written, 2 fresh (skipped)" in capsys.readouterr().err


def test_another_running_job_is_waited_for_not_duplicated(app, monkeypatch, capsys):
    """A job someone else started blocks ours with 409 ConflictException: iamgate waits and retries
    with the same clientToken, and starts exactly one job of its own."""
    _, out = app
    with FakeAccessAnalyzer(actions={API: API_ACTIONS}) as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL_ACCESSANALYZER", fake.url)
        aa = boto3.client("accessanalyzer", endpoint_url=fake.url, region_name="us-east-1")
        theirs = aa.start_policy_generation(
            policyGenerationDetails={"principalArn": f"arn:aws:iam::{ACCOUNT}:role/someone-else"},
            cloudTrailDetails={"trails": [{"cloudTrailArn": TRAIL}], "accessRole": ACCESS_ROLE,
                               "startTime": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)})["jobId"]
        conflicts = []

        def their_job_ends_after_two_conflicts(f):
            conflicts.append(1)
            if len(conflicts) == 2:
                f.finish(theirs)

        fake.on_conflict = their_job_ends_after_two_conflicts
        assert main(argv(out, "--principal", API, "--no-managed-policies", "--max-jobs", "1")) == 0, \
            capsys.readouterr().err
    err = capsys.readouterr().err
    assert "waiting: another policy generation is running" in err
    assert fake.requests[1].operation == "ListPolicyGenerations"
    ours = fake.requests[2:]
    assert [(r.operation, r.status) for r in ours] == [
        ("StartPolicyGeneration", 409), ("StartPolicyGeneration", 409), ("StartPolicyGeneration", 200),
        ("GetGeneratedPolicy", 200), ("GetGeneratedPolicy", 200)]
    assert ours[0].error == "ConflictException"
    assert len({r.body["clientToken"] for r in ours[:3]}) == 1
    assert len(fake.jobs) == 2  # theirs and exactly one of ours
    assert json.loads((out / "http-api.json").read_text())["used"].keys() == {a.lower() for a in API_ACTIONS}


def test_real_cli_subprocess_reaches_the_fake_through_the_environment(moto, tmp_path, monkeypatch):
    """`python -m iamgate` in a child process: only the environment wires the endpoints and scales the
    waits (IAMGATE_DELAY_SCALE), so the single IN_PROGRESS answer costs milliseconds, not 5 s."""
    url, _ = moto
    aws_env(monkeypatch, url)  # dummy credentials; no profile or endpoint from the outer environment
    out = tmp_path / "baselines"
    with FakeAccessAnalyzer(actions={API: API_ACTIONS}) as fake:
        proc = run_cli("baseline", "--trail", TRAIL, "--access-role", ACCESS_ROLE, "--out", str(out),
                       "--principal", API, "--no-last-accessed", "--no-managed-policies", "--days", "7",
                       cwd=tmp_path, env={"AWS_ENDPOINT_URL_ACCESSANALYZER": fake.url, "IAMGATE_DELAY_SCALE": "0.002"})
    assert proc.returncode == 0, proc.stderr
    assert fake.operations() == ["ListPolicyGenerations", "StartPolicyGeneration", "GetGeneratedPolicy",
                                 "GetGeneratedPolicy"]
    baseline = json.loads((out / "http-api.json").read_text())
    assert baseline["sources"][0]["job_id"] == next(iter(fake.jobs))
    assert set(baseline["used"]) == {a.lower() for a in API_ACTIONS}
