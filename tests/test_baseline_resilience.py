"""The scheduled baseline job never wastes a paid Access Analyzer job and never dies on one bad reply.
One test per defect of issue 13, against botocore's Stubber (every request and reply validated against
the model) or local servers on 127.0.0.1 (for failures a Stubber cannot produce: HTML bodies, dropped
connections, replies of the wrong shape, refused connections)."""
from __future__ import annotations

import datetime as dt
import errno
import io
import json
import os
import socket
import subprocess
import sys

import pytest

from fixtures.aws.fake_access_analyzer import FakeAccessAnalyzer
from fixtures.aws.helpers import (ACCESS_ROLE, ACCOUNT, TRAIL, FakeClock, aws_env, expect_list, generated, listed,
                                  policy_json, stub_client)
from iamgate.usage import baseline_format as fmt
from iamgate.usage.aws_clients import Clients
from iamgate.cli import build_parser, main
from iamgate.usage import baseline_job as command
from iamgate.usage.baseline_job import STATE_FILE, BaselineRun, Progress, RunState
from iamgate.usage.run_lock import LOCK_FILE
from iamgate.usage.access_analyzer import PolicyGenerator, window
from iamgate.usage.last_accessed import LastAccessed

ROLE = f"arn:aws:iam::{ACCOUNT}:role/orders-ingest"
ROLE2 = f"arn:aws:iam::{ACCOUNT}:role/billing"
T0 = dt.datetime(2026, 11, 21, 23, 0, tzinfo=dt.timezone.utc)


def run_job(clients, clock, out, arns, last_accessed=False, **kw):
    stream = io.StringIO()
    start, end = window(clock.now(), 90)
    gen = PolicyGenerator(clients.client("accessanalyzer"), TRAIL, ACCESS_ROLE, start, end, clock=clock,
                          deadline=clock.monotonic() + 7200)
    la = LastAccessed(clients.client("iam", "last-accessed"), clock) if last_accessed else None
    job = BaselineRun(out, gen, la, refresh_older_than=7 * 86400, clock=clock, progress=Progress(stream, live=False),
                      **kw)
    return job.run(arns), stream.getvalue(), gen


def start(stub, job_id):
    stub.add_response("start_policy_generation", {"jobId": job_id}, None)


def get(stub, principal, job_id, status="SUCCEEDED", actions=("s3:GetObject",)):
    stub.add_response("get_generated_policy", generated(principal, job_id, status, policies=[policy_json(*actions)]),
                      {"jobId": job_id, "includeResourcePlaceholders": True, "includeServiceLevelTemplate": True})


def last_accessed(stub, arn, job, services=()):
    stub.add_response("generate_service_last_accessed_details", {"JobId": job},
                      {"Arn": arn, "Granularity": "ACTION_LEVEL"})
    stub.add_response("get_service_last_accessed_details", {
        "JobStatus": "COMPLETED", "JobType": "ACTION_LEVEL", "JobCreationDate": T0, "JobCompletionDate": T0,
        "ServicesLastAccessed": list(services), "IsTruncated": False}, {"JobId": job})


# -- 1. any error while polling abandoned the job --------------------------------------------------
def test_expired_token_while_polling_leaves_the_job_recorded_and_the_next_run_collects_it(clients, clock, tmp_path):
    stub = stub_client(clients, "accessanalyzer")
    expect_list(stub)
    start(stub, "job-1")
    get(stub, ROLE, "job-1", "IN_PROGRESS")
    stub.add_client_error("get_generated_policy", "ExpiredTokenException", "The security token is expired", 403)
    summary, log, _ = run_job(clients, clock, tmp_path, [ROLE, ROLE2])
    stub.assert_no_pending_responses()
    assert "ExpiredTokenException" in summary.stopped and summary.left == [ROLE, ROLE2] and not summary.failed
    saved = json.loads((tmp_path / STATE_FILE).read_text())
    assert saved["pending"][ROLE]["job_id"] == "job-1" and ROLE not in saved["failed"]
    assert saved["stopped"]["reason"] == "stopped"

    clients2 = Clients("us-east-1")
    stub2 = stub_client(clients2, "accessanalyzer")
    expect_list(stub2, listed(ROLE, "job-1", "IN_PROGRESS"))
    get(stub2, ROLE, "job-1")  # collected: no second StartPolicyGeneration for ROLE
    start(stub2, "job-2")
    get(stub2, ROLE2, "job-2")
    summary, _, gen = run_job(clients2, clock, tmp_path, [ROLE, ROLE2])
    stub2.assert_no_pending_responses()
    assert summary.written == [ROLE, ROLE2] and gen.jobs_started == 1 and summary.collected == [ROLE]


def test_5xx_outlasting_botocore_retries_while_polling_are_retried(clients, clock, tmp_path):
    stub = stub_client(clients, "accessanalyzer")
    expect_list(stub)
    start(stub, "job-1")
    for _ in range(7):  # more than the bounded retries of one call: polling goes on while time remains
        stub.add_client_error("get_generated_policy", "ServiceUnavailable", "Service Unavailable", 503)
    get(stub, ROLE, "job-1")
    summary, _, gen = run_job(clients, clock, tmp_path, [ROLE])
    stub.assert_no_pending_responses()
    assert summary.written == [ROLE] and summary.ok and gen.jobs_started == 1


# -- 2. an error while collecting a killed run's job started a new job -----------------------------
def test_errors_while_collecting_a_killed_runs_job_do_not_start_another(clients, clock, tmp_path):
    RunState(tmp_path / STATE_FILE).started(ROLE, "job-left", clock.now())
    stub = stub_client(clients, "accessanalyzer")
    expect_list(stub, listed(ROLE, "job-left", "IN_PROGRESS"))
    stub.add_client_error("get_generated_policy", "ServiceUnavailable", "Service Unavailable", 503)
    stub.add_client_error("get_generated_policy", "ServiceUnavailable", "Service Unavailable", 503)
    get(stub, ROLE, "job-left")
    summary, _, gen = run_job(clients, clock, tmp_path, [ROLE])
    stub.assert_no_pending_responses()
    assert summary.written == [ROLE] and gen.jobs_started == 0 and summary.ok
    assert fmt.load(tmp_path / "orders-ingest.json").sources[0]["job_id"] == "job-left"


# -- 3. errors that are not ClientError killed the whole run ---------------------------------------
def test_html_500s_dropped_connections_and_bad_shapes_while_polling_are_retried(tmp_path, monkeypatch):
    aws_env(monkeypatch)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    clock = FakeClock()
    with FakeAccessAnalyzer(actions={ROLE: ["s3:GetObject"]}) as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL_ACCESSANALYZER", fake.url)
        fake.inject("GetGeneratedPolicy", fake.html(500), fake.drop(), fake.reply({}), fake.reply({"jobDetails": {}}))
        summary, log, gen = run_job(Clients("us-east-1"), clock, tmp_path, [ROLE])
    assert summary.written == [ROLE] and summary.ok, log
    assert "retrying: GetGeneratedPolicy: UnexpectedResponse" in log
    assert len(fake.jobs) == 1


def test_a_refused_connection_for_last_accessed_fails_that_step_only(clients, clock, tmp_path):
    """The last-accessed client points at a closed port (botocore's EndpointConnectionError)."""
    stub = stub_client(clients, "accessanalyzer")
    expect_list(stub)
    start(stub, "job-1")
    get(stub, ROLE, "job-1")
    start(stub, "job-2")
    get(stub, ROLE2, "job-2")
    summary, log, _ = run_job(clients, clock, tmp_path, [ROLE, ROLE2], last_accessed=True)
    stub.assert_no_pending_responses()
    assert summary.written == [ROLE, ROLE2] and not summary.failed and not summary.stopped
    assert set(summary.last_accessed_errors) == {ROLE, ROLE2}
    assert "EndpointConnectionError" in summary.last_accessed_errors[ROLE]


def test_a_bug_in_one_principals_step_does_not_end_the_run(clients, clock, tmp_path, monkeypatch):
    stub = stub_client(clients, "accessanalyzer")
    expect_list(stub)
    start(stub, "job-1")
    get(stub, ROLE, "job-1")
    start(stub, "job-2")
    get(stub, ROLE2, "job-2")
    real = command.to_baseline

    def broken_for_role(result):
        if result.principal_arn == ROLE:
            raise RuntimeError("boom")
        return real(result)

    monkeypatch.setattr(command, "to_baseline", broken_for_role)
    summary, _, _ = run_job(clients, clock, tmp_path, [ROLE, ROLE2])
    assert summary.written == [ROLE2] and summary.failed == {ROLE: "unexpected error: RuntimeError: boom"}


def test_account_wide_failure_prints_the_summary_and_saves_the_stop_reason(tmp_path, monkeypatch):
    aws_env(monkeypatch)
    clients = Clients("us-east-1")
    stub = stub_client(clients, "accessanalyzer")
    expect_list(stub)
    stub.add_client_error("start_policy_generation", "UnrecognizedClientException",
                          "The security token included in the request is invalid", 403)
    stub_client(clients, "iam", "last-accessed")
    args = build_parser().parse_args(["baseline", "--trail", TRAIL, "--access-role", ACCESS_ROLE, "--out",
                                      str(tmp_path), "--principal", ROLE, "--principal", ROLE2,
                                      "--param", f"AWS::AccountId={ACCOUNT}", "--no-managed-policies"])
    stream = io.StringIO()
    assert args._command.run(args, clients=clients, clock=FakeClock(), progress=Progress(stream, live=False)) == 2
    log = stream.getvalue()
    assert "stopped: StartPolicyGeneration: UnrecognizedClientException" in log
    assert "0 baseline(s) written" in log and "2 left for the next run" in log
    assert json.loads((tmp_path / STATE_FILE).read_text())["stopped"]["left"] == [ROLE, ROLE2]


def test_one_failing_get_policy_does_not_abort_the_baseline(tmp_path, monkeypatch, capsys):
    """IAM (GetPolicy) on a closed port: each managed policy is an error entry, and the jobs still run."""
    aws_env(monkeypatch)
    monkeypatch.setenv("IAMGATE_DELAY_SCALE", "0.001")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    (tmp_path / "policy.json").write_text(json.dumps({"Resources": {"R": {"Type": "AWS::IAM::Role", "Properties": {
        "RoleName": "orders-ingest", "AssumeRolePolicyDocument": {"Statement": []},
        "ManagedPolicyArns": [f"arn:aws:iam::{ACCOUNT}:policy/team"]}}}}))
    clients = Clients("us-east-1")
    stub_client(clients, "sts").add_response("get_caller_identity", {
        "Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:role/iamgate-baselines", "UserId": "AROAEXAMPLE"}, {})
    stub = stub_client(clients, "accessanalyzer")
    expect_list(stub)
    start(stub, "job-1")
    get(stub, ROLE, "job-1")
    args = build_parser().parse_args(["baseline", str(tmp_path / "policy.json"), "--trail", TRAIL, "--access-role",
                                      ACCESS_ROLE, "--out", str(tmp_path / "out"), "--principal", ROLE,
                                      "--param", f"AWS::AccountId={ACCOUNT}", "--no-last-accessed",
                                      "--managed-policies", str(tmp_path / "managed")])
    stream = io.StringIO()
    assert args._command.run(args, clients=clients, clock=FakeClock(), progress=Progress(stream, live=False)) == 2
    stub.assert_no_pending_responses()
    assert f"managed policy arn:aws:iam::{ACCOUNT}:policy/team: EndpointConnectionError" in capsys.readouterr().err
    assert (tmp_path / "out" / "orders-ingest.json").is_file()
    assert "1 other error(s) above" in stream.getvalue()


# -- 4. a last-accessed failure was forgotten -------------------------------------------------------
def test_last_accessed_failure_is_recorded_counted_and_retried_although_access_analyzer_is_fresh(
        clients, clock, tmp_path):
    aa = stub_client(clients, "accessanalyzer")
    la = stub_client(clients, "iam", "last-accessed")
    expect_list(aa)
    start(aa, "job-1")
    get(aa, ROLE, "job-1")
    la.add_client_error("generate_service_last_accessed_details", "AccessDenied",
                        "explicit deny in a service control policy", 403)
    summary, log, _ = run_job(clients, clock, tmp_path, [ROLE], last_accessed=True)
    assert summary.written == [ROLE] and not summary.ok
    assert "AccessDenied" in summary.last_accessed_errors[ROLE]
    data = json.loads((tmp_path / "orders-ingest.json").read_text())
    assert data["sources"][1]["kind"] == "last-accessed" and "AccessDenied" in data["sources"][1]["error"]
    fmt.load(tmp_path / "orders-ingest.json")  # still a valid baseline
    assert ROLE in json.loads((tmp_path / STATE_FILE).read_text())["last_accessed_failed"]

    clock.advance(days=1)  # Access Analyzer is fresh: only last accessed is run again
    clients2 = Clients("us-east-1")
    aa2 = stub_client(clients2, "accessanalyzer")
    la2 = stub_client(clients2, "iam", "last-accessed")
    expect_list(aa2, listed(ROLE, "job-1"))
    last_accessed(la2, ROLE, "00000002-aaaa-bbbb-cccc-dddddddddddd", [{"ServiceName": "Amazon SQS", "ServiceNamespace": "sqs",
                                       "TotalAuthenticatedEntities": 0}])
    summary, _, gen = run_job(clients2, clock, tmp_path, [ROLE], last_accessed=True)
    aa2.assert_no_pending_responses()
    la2.assert_no_pending_responses()
    assert summary.ok and gen.jobs_started == 0 and summary.written == [ROLE]
    b = fmt.load(tmp_path / "orders-ingest.json")
    assert [s["kind"] for s in b.sources] == ["access-analyzer", "last-accessed"] and "error" not in b.sources[1]
    assert b.not_accessed_services == {"sqs"} and "s3:getobject" in b.used
    assert json.loads((tmp_path / STATE_FILE).read_text())["last_accessed_failed"] == {}


def test_the_summary_counts_last_accessed_failures(tmp_path, monkeypatch):
    aws_env(monkeypatch)
    clients = Clients("us-east-1")
    aa = stub_client(clients, "accessanalyzer")
    expect_list(aa)
    start(aa, "job-1")
    get(aa, ROLE, "job-1")
    stub_client(clients, "iam", "last-accessed").add_client_error(
        "generate_service_last_accessed_details", "AccessDenied", "denied", 403)
    args = build_parser().parse_args(["baseline", "--trail", TRAIL, "--access-role", ACCESS_ROLE, "--out",
                                      str(tmp_path), "--principal", ROLE, "--param", f"AWS::AccountId={ACCOUNT}",
                                      "--no-managed-policies"])
    stream = io.StringIO()
    assert args._command.run(args, clients=clients, clock=FakeClock(), progress=Progress(stream, live=False)) == 2
    assert "1 baseline(s) written, 0 fresh (skipped), 0 failed, 1 last-accessed failed" in stream.getvalue()


# -- 5. no lock ---------------------------------------------------------------------------------------
def test_a_live_run_holds_the_folder(tmp_path, monkeypatch, capsys):
    aws_env(monkeypatch)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": other.pid, "host": socket.gethostname(),
                                                      "started_at": "2026-11-22T00:00:00Z",
                                                      "expires_at": "2099-01-01T00:00:00Z"}))
        assert main(["baseline", "--trail", TRAIL, "--access-role", ACCESS_ROLE, "--out", str(tmp_path),
                     "--principal", ROLE]) == 2
    finally:
        other.kill()
        other.wait()
    err = capsys.readouterr().err
    assert f"another run holds this folder (pid {other.pid} on {socket.gethostname()}" in err
    assert "Traceback" not in err and not (tmp_path / STATE_FILE).exists()  # nothing ran
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == other.pid  # not ours to remove


@pytest.mark.parametrize("lock, reason", [
    ({"pid": 2 ** 22 + 7, "host": socket.gethostname(), "started_at": "2026-11-22T00:00:00Z"}, "is gone"),
    ({"pid": 1, "host": "runner-elsewhere", "started_at": "2026-11-20T00:00:00Z",
      "expires_at": "2026-11-20T03:00:00Z"}, "expired at 2026-11-20T03:00:00Z"),
    ({"pid": 1, "host": socket.gethostname(), "started_at": "2026-11-20T00:00:00Z",  # pid 1 lives: a reused pid
      "expires_at": "2026-11-20T03:00:00Z"}, "expired at 2026-11-20T03:00:00Z"),
    ("not json", "unreadable"),
])
def test_a_stale_lock_is_broken_with_a_message(lock, reason, clients, clock, tmp_path):
    (tmp_path / LOCK_FILE).write_text(lock if isinstance(lock, str) else json.dumps(lock))
    stub = stub_client(clients, "accessanalyzer")
    expect_list(stub)
    start(stub, "job-1")
    get(stub, ROLE, "job-1")
    args = build_parser().parse_args(["baseline", "--trail", TRAIL, "--access-role", ACCESS_ROLE, "--out",
                                      str(tmp_path), "--param", f"AWS::AccountId={ACCOUNT}", "--no-managed-policies",
                                      "--no-last-accessed", "--principal", ROLE, "--max-jobs", "1"])
    stream = io.StringIO()
    assert args._command.run(args, clients=clients, clock=clock, progress=Progress(stream, live=False)) == 0, \
        stream.getvalue()
    assert "breaking a stale lock" in stream.getvalue() and reason in stream.getvalue()
    assert not (tmp_path / LOCK_FILE).exists()  # released at the end


def test_the_lock_holds_pid_host_and_start_time_while_the_run_goes(clients, clock, tmp_path):
    seen = {}
    stub = stub_client(clients, "accessanalyzer")
    expect_list(stub)
    start(stub, "job-1")
    get(stub, ROLE, "job-1", "IN_PROGRESS")
    get(stub, ROLE, "job-1")
    clock.on_sleep = lambda n: seen.update(json.loads((tmp_path / LOCK_FILE).read_text()))
    args = build_parser().parse_args(["baseline", "--trail", TRAIL, "--access-role", ACCESS_ROLE, "--out",
                                      str(tmp_path), "--param", f"AWS::AccountId={ACCOUNT}", "--no-managed-policies",
                                      "--no-last-accessed", "--principal", ROLE])
    assert args._command.run(args, clients=clients, clock=clock, progress=Progress(io.StringIO(), live=False)) == 0
    assert seen["pid"] == os.getpid() and seen["host"] == socket.gethostname()
    assert seen["started_at"] == "2026-11-22T00:00:00Z" and seen["expires_at"] > seen["started_at"]


# -- 7. smaller problems --------------------------------------------------------------------------------
@pytest.mark.parametrize("content", [
    {"schema": "iamgate.baseline-state/v1", "jobs": 5},
    {"schema": "iamgate.baseline-state/v1", "jobs": [{"principal_arn": ROLE, "job_id": 3, "started_at": None}]},
    {"schema": "iamgate.baseline-state/v1", "running": "job-1"},
    {"schema": "iamgate.baseline-state/v1", "failed": []},
    {"schema": "iamgate.baseline-state/v1", "pending": {ROLE: "job-1"}},
])
def test_a_state_file_with_wrong_types_is_reported_and_replaced(content, clients, clock, tmp_path):
    (tmp_path / STATE_FILE).write_text(json.dumps(content))
    stub = stub_client(clients, "accessanalyzer")
    expect_list(stub)
    start(stub, "job-1")
    get(stub, ROLE, "job-1")
    summary, log, _ = run_job(clients, clock, tmp_path, [ROLE])
    assert summary.written == [ROLE] and "not a valid state file" in log and "replaced" in log
    assert json.loads((tmp_path / (STATE_FILE + ".bad")).read_text()) == content
    assert json.loads((tmp_path / STATE_FILE).read_text())["pending"] == {}


def test_the_older_single_job_state_is_still_collected(clients, clock, tmp_path):
    (tmp_path / STATE_FILE).write_text(json.dumps({
        "schema": "iamgate.baseline-state/v1", "running": {"principal_arn": ROLE, "job_id": "job-left",
                                                           "started_at": "2026-11-21T23:50:00Z"},
        "jobs": [{"principal_arn": ROLE, "job_id": "job-left", "started_at": "2026-11-21T23:50:00Z"}],
        "failed": {}, "stopped": None}))
    stub = stub_client(clients, "accessanalyzer")
    expect_list(stub, listed(ROLE, "job-left", "IN_PROGRESS"))
    get(stub, ROLE, "job-left")
    summary, _, gen = run_job(clients, clock, tmp_path, [ROLE])
    assert summary.written == [ROLE] and gen.jobs_started == 0


def test_a_full_disk_right_after_a_start_is_survived(clients, clock, tmp_path, monkeypatch):
    """The job id cannot be written: the run stops cleanly (the job left running), and the next run
    finds the job through ListPolicyGenerations instead of starting another."""
    real = command.write_json_atomic

    def full_after_start(path, data):
        if path.name == STATE_FILE and data.get("pending"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(command, "write_json_atomic", full_after_start)
    stub = stub_client(clients, "accessanalyzer")
    expect_list(stub)
    start(stub, "job-1")
    summary, log, gen = run_job(clients, clock, tmp_path, [ROLE])
    stub.assert_no_pending_responses()  # no poll, no cancel: the job is left running
    assert gen.jobs_started == 1 and "No space left on device" in summary.stopped
    assert "cannot save the state" not in log or "found again" in log

    monkeypatch.setattr(command, "write_json_atomic", real)
    clients2 = Clients("us-east-1")
    stub2 = stub_client(clients2, "accessanalyzer")
    expect_list(stub2, listed(ROLE, "job-1", "IN_PROGRESS", started=clock.now()))
    get(stub2, ROLE, "job-1")
    summary, log, gen = run_job(clients2, clock, tmp_path, [ROLE])
    stub2.assert_no_pending_responses()
    assert summary.written == [ROLE] and gen.jobs_started == 0
    assert "found policy generation job-1" in log
    assert [j["job_id"] for j in json.loads((tmp_path / STATE_FILE).read_text())["jobs"]] == ["job-1"]


def test_jobs_found_in_access_analyzer_count_against_the_daily_quota(clients, clock, tmp_path):
    """Another run (another folder, another machine) started 50 jobs today: none is started here."""
    stub = stub_client(clients, "accessanalyzer")
    expect_list(stub, *[listed(f"arn:aws:iam::{ACCOUNT}:role/other-{i}", f"o{i}", started=clock.now())
                        for i in range(50)])
    summary, _, gen = run_job(clients, clock, tmp_path, [ROLE])
    stub.assert_no_pending_responses()
    assert gen.jobs_started == 0 and "50 policy generations" in summary.stopped


def test_a_finished_job_from_another_trail_is_not_taken(clients, clock, tmp_path):
    stub = stub_client(clients, "accessanalyzer")
    expect_list(stub, listed(ROLE, "theirs", started=clock.now()))
    other = generated(ROLE, "theirs", policies=[policy_json("s3:GetObject")])
    other["generatedPolicyResult"]["properties"]["cloudTrailProperties"]["trailProperties"][0]["cloudTrailArn"] = \
        f"arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/someone-elses"
    stub.add_response("get_generated_policy", other, None)
    start(stub, "ours")
    get(stub, ROLE, "ours")
    summary, _, gen = run_job(clients, clock, tmp_path, [ROLE])
    stub.assert_no_pending_responses()
    assert gen.jobs_started == 1 and fmt.load(tmp_path / "orders-ingest.json").sources[0]["job_id"] == "ours"


def test_the_region_message_names_what_boto3_reads(monkeypatch):
    aws_env(monkeypatch)
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")  # boto3 does not read it
    from iamgate.commands import UsageError
    with pytest.raises(UsageError) as e:
        Clients().client("accessanalyzer")
    assert "AWS_DEFAULT_REGION" in str(e.value) and "set AWS_REGION" not in str(e.value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert Clients().client("accessanalyzer").meta.region_name == "eu-west-1"


def test_botocore_does_not_pin_one_clients_attempt_count_on_the_next(monkeypatch):
    aws_env(monkeypatch)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "4")
    Clients("us-east-1").client("iam")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    assert Clients("us-east-1").client("iam").meta.config.retries["total_max_attempts"] == 1


def test_a_job_role_without_list_policy_generations_still_runs(clients, clock, tmp_path):
    stub = stub_client(clients, "accessanalyzer")
    stub.add_client_error("list_policy_generations", "AccessDeniedException", "not authorized", 403)
    start(stub, "job-1")
    get(stub, ROLE, "job-1")
    summary, log, _ = run_job(clients, clock, tmp_path, [ROLE])
    stub.assert_no_pending_responses()
    assert summary.written == [ROLE] and summary.ok
    assert "cannot list policy generations (ListPolicyGenerations: AccessDeniedException: not authorized)" in log


def test_expired_credentials_before_any_job_stop_cleanly_with_the_summary(tmp_path, monkeypatch):
    aws_env(monkeypatch)
    clients = Clients("us-east-1")
    stub_client(clients, "sts").add_client_error("get_caller_identity", "ExpiredToken",
                                                 "The security token included in the request is expired", 403)
    stub_client(clients, "accessanalyzer")  # no call may reach Access Analyzer
    args = build_parser().parse_args(["baseline", str(tmp_path), "--trail", TRAIL, "--access-role", ACCESS_ROLE,
                                      "--out", str(tmp_path / "out")])
    stream = io.StringIO()
    assert args._command.run(args, clients=clients, clock=FakeClock(), progress=Progress(stream, live=False)) == 2
    log = stream.getvalue()
    assert "stopped before any policy generation: AWS: ExpiredToken: The security token" in log
    assert "0 baseline(s) written" in log and "Traceback" not in log
    assert json.loads((tmp_path / "out" / STATE_FILE).read_text())["stopped"]["reason"] == "stopped"
    assert not (tmp_path / "out" / LOCK_FILE).exists()


def _racing_lock(tmp_path, now):
    """A RunLock whose owner is a live process other than this one (the test's parent)."""
    from iamgate.usage.run_lock import RunLock
    lock = RunLock(tmp_path, 60, now)
    lock.info["pid"] = os.getppid()
    return lock


def test_a_lock_being_written_is_not_taken_for_a_stale_one(tmp_path, monkeypatch):
    """Two runs starting together: the second one reads the first one's lock between its creation and
    its content. Exactly one of them may hold the folder."""
    from iamgate.usage import run_lock
    now = dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)
    first, second = _racing_lock(tmp_path, now), _racing_lock(tmp_path, now)
    real_dump, took = run_lock.json.dump, []

    def dump(obj, f, *a, **kw):  # the first run is writing its lock: the second one tries now
        if not took:
            took.append(None)
            try:
                second.acquire()
                took[0] = True
            except run_lock.LockError:
                took[0] = False
        return real_dump(obj, f, *a, **kw)

    monkeypatch.setattr(run_lock.json, "dump", dump)
    try:
        first.acquire()
        held = True
    except run_lock.LockError:
        held = False
    assert [held, took[0]].count(True) == 1
    assert json.loads((tmp_path / LOCK_FILE).read_text()) == (first.info if held else second.info)


def test_two_runs_breaking_one_stale_lock_do_not_both_hold_the_folder(tmp_path, monkeypatch):
    """Both judged the same stale lock; the one that breaks it second must not remove the lock the
    first one took meanwhile."""
    from iamgate.usage import run_lock
    now = dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)
    stale = {"pid": 2 ** 22 + 7, "host": socket.gethostname(), "started_at": "2026-11-21T00:00:00Z"}
    (tmp_path / LOCK_FILE).write_text(json.dumps(stale))
    first, second = _racing_lock(tmp_path, now), _racing_lock(tmp_path, now)
    real_reason, order = run_lock.RunLock.stale_reason, []

    def stale_reason(self, other):  # the second run judges the stale lock, then the first takes the folder
        reason = real_reason(self, other)
        if self is second and not order and reason:
            order.append("first")
            first.acquire()
        return reason

    monkeypatch.setattr(run_lock.RunLock, "stale_reason", stale_reason)
    with pytest.raises(run_lock.LockError, match="another run holds this folder"):
        second.acquire()
    assert first.held and json.loads((tmp_path / LOCK_FILE).read_text()) == first.info


def test_a_finished_job_whose_result_cannot_be_read_ends_and_is_not_collected_forever(clients, clock, tmp_path):
    """AWS said SUCCEEDED, but the generated policy is not valid JSON: the principal fails with that
    error and the job leaves the state (it has ended), so the next run starts a new one instead of
    collecting the same unreadable result on every run."""
    stub = stub_client(clients, "accessanalyzer")
    expect_list(stub)
    start(stub, "job-1")
    stub.add_response("get_generated_policy", generated(ROLE, "job-1", policies=["{not json"]),
                      {"jobId": "job-1", "includeResourcePlaceholders": True, "includeServiceLevelTemplate": True})
    summary, _, _ = run_job(clients, clock, tmp_path, [ROLE])
    stub.assert_no_pending_responses()
    assert "not valid JSON" in summary.failed[ROLE]
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state["pending"] == {} and state["failed"][ROLE]["job_id"] == "job-1"
    expect_list(stub)
    start(stub, "job-2")
    get(stub, ROLE, "job-2")
    summary, _, _ = run_job(clients, clock, tmp_path, [ROLE])
    stub.assert_no_pending_responses()
    assert summary.written == [ROLE] and not summary.failed
