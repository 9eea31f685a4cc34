"""`iamgate baseline` end to end: IaC -> principals resolved against a moto server (STS, a real
CloudFormation stack, IAM managed policies) -> Access Analyzer and last accessed through Stubber
clients -> baselines that `check` then uses."""
from __future__ import annotations

import datetime as dt
import io
import json

import pytest

from conftest import ROOT
from fixtures.aws.helpers import (ACCESS_ROLE, ACCOUNT, TRAIL, FakeClock, aws_env, expect_list, generated,
                                  moto_server, policy_json, stub_client)
from iamgate import config as config_mod
from iamgate.usage.aws_clients import API_CALLS, Clients
from iamgate.cli import build_parser, main
from iamgate.usage.baseline_job import STATE_FILE, Progress
from iamgate.formats.json import expanded, report_dict_v2
from iamgate.pipeline import analyse

TEMPLATE = "tests/fixtures/aws/app/template.yaml"
INGEST = f"arn:aws:iam::{ACCOUNT}:role/service/orders-ingest"
BOT = f"arn:aws:iam::{ACCOUNT}:user/ci-bot"
T0 = dt.datetime(2026, 11, 21, 23, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def server():
    with moto_server(load_managed_policies=True) as url:
        import boto3
        kw = dict(endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                  aws_secret_access_key="testing")
        boto3.client("iam", **kw).create_policy(PolicyName="team-boundary", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "logs:PutLogEvents",
                                                     "Resource": "*"}]}))
        cfn = boto3.client("cloudformation", **kw)
        cfn.create_stack(StackName="orders-prod", TemplateBody=(ROOT / TEMPLATE).read_text(),
                         Capabilities=["CAPABILITY_NAMED_IAM"])
        worker = cfn.describe_stack_resource(StackName="orders-prod", LogicalResourceId="WorkerRole")
        yield url, f"arn:aws:iam::{ACCOUNT}:role/" + worker["StackResourceDetail"]["PhysicalResourceId"]


@pytest.fixture
def setup(server, tmp_path, monkeypatch):
    url, worker = server
    aws_env(monkeypatch, url)
    monkeypatch.chdir(ROOT)
    cfg = tmp_path / "iamgate.yml"
    cfg.write_text(f"stacks:\n  {TEMPLATE}: orders-prod\nmanaged-policies: {tmp_path / 'managed'}\n")
    return worker, cfg, tmp_path / "baselines"


def argv(cfg, out, *extra):
    return ["baseline", TEMPLATE, "--config", str(cfg), "--trail", TRAIL, "--access-role", ACCESS_ROLE,
            "--out", str(out), "--principal", BOT, "--param", f"AWS::AccountId={ACCOUNT}", *extra]


def run(args_list, clients, clock, stream=None):
    args = build_parser().parse_args(args_list)
    return args._command.run(args, clients=clients, clock=clock, progress=Progress(stream or io.StringIO(),
                                                                                   live=False))


def last_accessed_job(stub, arn, n, services):
    job = f"0000000{n}-aaaa-bbbb-cccc-dddddddddddd"
    stub.add_response("generate_service_last_accessed_details", {"JobId": job},
                      {"Arn": arn, "Granularity": "ACTION_LEVEL"})
    stub.add_response("get_service_last_accessed_details", {
        "JobStatus": "COMPLETED", "JobType": "ACTION_LEVEL", "JobCreationDate": T0, "JobCompletionDate": T0,
        "ServicesLastAccessed": services, "IsTruncated": False}, {"JobId": job})


def test_baseline_end_to_end(setup):
    worker, cfg, out = setup
    clock = FakeClock()
    clients = Clients("us-east-1")
    aa = stub_client(clients, "accessanalyzer")
    expect_list(aa)
    la = stub_client(clients, "iam", "last-accessed")
    # the order: --principal first, then the code's principals in scan order
    plan = [(BOT, [policy_json("sts:GetCallerIdentity")], []),
            (INGEST, [policy_json("s3:GetObject", "s3:ListBucket", resource="arn:aws:s3:::${BucketName}")],
             [{"ServiceName": "Amazon SQS", "ServiceNamespace": "sqs", "TotalAuthenticatedEntities": 0},
              {"ServiceName": "CloudWatch Logs", "ServiceNamespace": "logs", "LastAuthenticated": T0}]),
            (worker, [policy_json("dynamodb:GetItem")], [])]
    for i, (arn, policies, services) in enumerate(plan, 1):
        aa.add_response("start_policy_generation", {"jobId": f"job-{i}"}, None)
        aa.add_response("get_generated_policy", generated(arn, f"job-{i}", "IN_PROGRESS"), None)
        aa.add_response("get_generated_policy", generated(arn, f"job-{i}", policies=policies), None)
        last_accessed_job(la, arn, i, services)
    stream = io.StringIO()
    assert run(argv(cfg, out, "--deployment", "prod"), clients, clock, stream) == 0, stream.getvalue()
    aa.assert_no_pending_responses()
    la.assert_no_pending_responses()
    log = stream.getvalue()
    assert "Readers: not resolved: a group makes no calls of its own" in log
    assert "3 baseline(s) written, 0 fresh (skipped), 0 failed, 0 last-accessed failed, 1 not resolved" in log
    assert "fetched 2 managed policies" in log

    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    worker_name = worker.rsplit("/", 1)[-1]
    assert files == sorted([".iamgate-state.json", ".raw/orders-ingest.json", f".raw/{worker_name}.json",
                            ".raw/users/ci-bot.json", "orders-ingest.json", f"{worker_name}.json", "users/ci-bot.json"])
    ingest = json.loads((out / "orders-ingest.json").read_text())
    assert ingest["principal_arn"] == INGEST
    assert ingest["deployment"] == "prod"  # --deployment: the named deployment it was written for (issue 21)
    assert [s["kind"] for s in ingest["sources"]] == ["access-analyzer", "last-accessed"]
    assert ingest["sources"][0]["trail"] == TRAIL and ingest["sources"][0]["job_id"] == "job-2"
    assert ingest["not_accessed_services"] == ["sqs"]
    assert ingest["window"] == {"start": "2026-08-24T00:00:00Z", "end": "2026-11-22T00:00:00Z"}
    state = json.loads((out / STATE_FILE).read_text())
    assert state["pending"] == {} and len(state["jobs"]) == 3
    assert state["unresolved"][0]["principal"] == "Readers"
    assert "secret" not in json.dumps(state).lower() and "testing" not in (out / "orders-ingest.json").read_text()

    # every call the run made is one the job's policy allows
    assert clients.calls <= set(API_CALLS)
    assert clients.calls >= {("sts", "GetCallerIdentity"), ("cloudformation", "DescribeStackResource"),
                             ("iam", "GetPolicy"), ("iam", "GetPolicyVersion"),
                             ("accessanalyzer", "StartPolicyGeneration"), ("accessanalyzer", "GetGeneratedPolicy"),
                             ("iam", "GenerateServiceLastAccessedDetails"), ("iam", "GetServiceLastAccessedDetails")}

    # `check` reads these baselines and the fetched managed policies: the signal behind each verdict
    cfg_obj = config_mod.load(str(cfg))
    report = analyse([TEMPLATE], [str(out)], cfg_obj, options=None)
    data = expanded(report_dict_v2(report))
    by_id = {p["id"]: p for p in data["principals"]}
    ing = by_id["IngestRole"]
    assert ing["baseline"]["principal_arn"] == INGEST
    assert {"s3:getobject", "s3:listbucket"} <= set(ing["actions"]["used"])
    assert "sqs:sendmessage" in ing["actions"]["unused"]
    assert ing["baseline"]["used_by_signal"] == {"access-analyzer": 2}
    assert [s["kind"] for s in ing["baseline"]["sources"]] == ["access-analyzer", "last-accessed"]
    verdict = next(v for r in report.results if r.principal.id == "IngestRole" for v in r.verdicts
                   if v.action == "sqs:sendmessage")
    assert verdict.reason == "service never accessed in the tracking period (last accessed)"
    assert by_id["WorkerRole"]["baseline"]["principal_arn"] == worker
    assert by_id["WorkerRole"]["actions"]["used"] == ["dynamodb:getitem"]

    # a second run the same day: everything is fresh, no job is started
    clients2 = Clients("us-east-1")
    expect_list(stub_client(clients2, "accessanalyzer"))
    stub_client(clients2, "iam", "last-accessed")
    clock.advance(hours=1)
    stream = io.StringIO()
    assert run(argv(cfg, out, "--no-managed-policies"), clients2, clock, stream) == 0
    assert "0 baseline(s) written, 3 fresh (skipped)" in stream.getvalue()


def test_quota_stop_exits_2_with_a_clear_message(setup):
    worker, cfg, out = setup
    clients = Clients("us-east-1")
    aa = stub_client(clients, "accessanalyzer")
    expect_list(aa)
    la = stub_client(clients, "iam", "last-accessed")
    aa.add_response("start_policy_generation", {"jobId": "job-1"}, None)
    aa.add_response("get_generated_policy", generated(BOT, "job-1", policies=[policy_json("s3:GetObject")]), None)
    last_accessed_job(la, BOT, 1, [])
    aa.add_client_error("start_policy_generation", "ServiceQuotaExceededException", "Daily quota reached", 402)
    stream = io.StringIO()
    assert run(argv(cfg, out, "--no-managed-policies"), clients, FakeClock(), stream) == 2
    log = stream.getvalue()
    assert "policy generation quota exceeded: ServiceQuotaExceededException: Daily quota reached" in log
    assert "1 baseline(s) written" in log and "2 left for the next run" in log
    assert "Finished baselines are kept; run again" in log
    assert (out / "users" / "ci-bot.json").is_file()


def test_failing_last_accessed_keeps_the_access_analyzer_baseline(setup):
    worker, cfg, out = setup
    clients = Clients("us-east-1")
    aa = stub_client(clients, "accessanalyzer")
    expect_list(aa)
    la = stub_client(clients, "iam", "last-accessed")
    aa.add_response("start_policy_generation", {"jobId": "job-1"}, None)
    aa.add_response("get_generated_policy", generated(BOT, "job-1", policies=[policy_json("s3:GetObject")]), None)
    la.add_client_error("generate_service_last_accessed_details", "NoSuchEntity", "no such user", 404)
    stream = io.StringIO()
    rc = run(["baseline", "--trail", TRAIL, "--access-role", ACCESS_ROLE, "--out", str(out), "--principal", BOT],
             clients, FakeClock(), stream)
    assert rc == 2
    assert "last accessed failed: GenerateServiceLastAccessedDetails: NoSuchEntity" in stream.getvalue()
    assert json.loads((out / "users" / "ci-bot.json").read_text())["used"] == {  # the job's window, as history
        "s3:getobject": {"signals": ["access-analyzer"], "by_source": {"access-analyzer": {
            "first_seen": "2026-08-24T00:00:00Z", "last_seen": "2026-11-22T00:00:00Z"}}}}


@pytest.mark.parametrize("extra, message", [
    (["--trail", "orders"], "--trail orders: not a CloudTrail trail ARN"),
    (["--access-role", "arn:aws:iam::123456789012:user/x"], "not an IAM role ARN"),
    (["--days", "120"], "--days must be 1 to 90"),
    (["--refresh-older-than", "soon"], "--refresh-older-than takes a duration"),
    (["--principal", "arn:aws:s3:::bucket"], "not an IAM role or user ARN"),
    (["--tfstate", "/nonexistent/state.json"], "cannot read"),
])
def test_usage_errors(extra, message, tmp_path, monkeypatch, capsys):
    aws_env(monkeypatch)
    base = ["baseline", "--trail", TRAIL, "--access-role", ACCESS_ROLE, "--out", str(tmp_path)]
    assert main(base + extra) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("text, seconds", [("2h50m", 2 * 3600 + 50 * 60), ("1d12h", 36 * 3600), ("90s", 90),
                                           ("90", 90), ("7d", 7 * 86400), ("1w2d", 9 * 86400), ("0", 0)])
def test_durations_may_be_compound(text, seconds):
    from iamgate.commands.baseline import parse_duration
    assert parse_duration(text, "--timeout") == seconds


@pytest.mark.parametrize("text", ["2h50", "1.5h", "-1h", "2x", "h", "", "2hh", "soon"])
def test_bad_durations_are_usage_errors(text, tmp_path, monkeypatch, capsys):
    aws_env(monkeypatch)
    assert main(["baseline", "--trail", TRAIL, "--access-role", ACCESS_ROLE, "--out", str(tmp_path),
                 f"--timeout={text}"]) == 2
    err = capsys.readouterr().err
    assert "--timeout takes a duration such as" in err and "Traceback" not in err


def test_unwritable_out_is_a_usage_error_before_any_aws_call(tmp_path, monkeypatch, capsys):
    aws_env(monkeypatch)  # an AWS call would fail with "AWS: ..." instead
    (tmp_path / "file").write_text("")
    assert main(["baseline", "--trail", TRAIL, "--access-role", ACCESS_ROLE, "--principal", BOT,
                 "--out", str(tmp_path / "file" / "baselines"), "--timeout", "2h50m"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"iamgate: error: --out {tmp_path / 'file' / 'baselines'}: cannot write there")
    assert "Traceback" not in err and len(err.splitlines()) == 1
