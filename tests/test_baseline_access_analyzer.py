"""Access Analyzer policy generation against botocore's Stubber (every request and response is
validated against the real service model): the job lifecycle, AWS's limits, resume and interruption."""
from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from botocore.stub import ANY

from fixtures.aws.helpers import (ACCESS_ROLE, ACCOUNT, TRAIL, expect_list, generated, listed, policy_json,
                                  stub_client)
from iamgate.usage import baseline_format as fmt
from iamgate.usage.aws_clients import Clients
from iamgate.usage.baseline_job import STATE_FILE, BaselineRun, Progress, RunState
from iamgate.usage.access_analyzer import PolicyGenerator, Stopped, to_baseline, window

ROLE = f"arn:aws:iam::{ACCOUNT}:role/orders-ingest"
ROLE2 = f"arn:aws:iam::{ACCOUNT}:role/billing"
ROLE3 = f"arn:aws:iam::{ACCOUNT}:role/reports"


def make_generator(clients, clock, timeout=7200, **kw):
    start, end = window(clock.now(), 90)
    return PolicyGenerator(clients.client("accessanalyzer"), TRAIL, ACCESS_ROLE, start, end, clock=clock,
                           deadline=clock.monotonic() + timeout, **kw)


def expect_start(stub, principal, job_id, clock):
    start, end = window(clock.now(), 90)
    stub.add_response("start_policy_generation", {"jobId": job_id}, {
        "policyGenerationDetails": {"principalArn": principal},
        "cloudTrailDetails": {"trails": [{"cloudTrailArn": TRAIL, "allRegions": True}], "accessRole": ACCESS_ROLE,
                              "startTime": start, "endTime": end},
        "clientToken": ANY})


def expect_get(stub, principal, job_id, status="SUCCEEDED", **kw):
    stub.add_response("get_generated_policy", generated(principal, job_id, status, **kw),
                      {"jobId": job_id, "includeResourcePlaceholders": True, "includeServiceLevelTemplate": True})


def run_job(clients, clock, out, arns, refresh=True, **kw) -> tuple:
    stream = io.StringIO()
    gen = make_generator(clients, clock)
    job = BaselineRun(out, gen, None, refresh_older_than=7 * 86400 if refresh else 0, clock=clock,
                      progress=Progress(stream, live=False), **kw)
    return job.run(arns), stream.getvalue(), gen


def test_in_progress_then_succeeded(clients, clock):
    stub = stub_client(clients, "accessanalyzer")
    expect_start(stub, ROLE, "job-1", clock)
    expect_get(stub, ROLE, "job-1", "IN_PROGRESS")
    expect_get(stub, ROLE, "job-1", "IN_PROGRESS")
    expect_get(stub, ROLE, "job-1", policies=[policy_json("s3:GetObject", "kms:Decrypt")])
    statuses = []
    gen = make_generator(clients, clock, on_status=lambda arn, s, t: statuses.append((s, t)))
    result = gen.generate(ROLE)
    stub.assert_no_pending_responses()
    assert result.ok and result.job_id == "job-1"
    assert clock.sleeps == [5.0, 7.5]  # backoff between polls
    assert statuses == [("running", 0), ("running", 5.0)]
    b = to_baseline(result)
    assert set(b.used) == {"s3:getobject", "kms:decrypt"}
    src = b.sources[0]
    assert src["kind"] == "access-analyzer" and src["job_id"] == "job-1" and src["trail"] == TRAIL
    assert src["complete"] is True and src["tool_version"] and src["generated_at"] == "2026-11-22T00:04:00Z"
    assert (b.window_start, b.window_end) == ("2026-08-24T00:00:00Z", "2026-11-22T00:00:00Z")


def test_several_generated_policies_with_placeholders(clients, clock, tmp_path):
    stub = stub_client(clients, "accessanalyzer")
    expect_list(stub)
    expect_start(stub, ROLE, "job-2", clock)
    expect_get(stub, ROLE, "job-2", complete=False, policies=[
        policy_json("dynamodb:GetItem", "dynamodb:PutItem",
                    resource="arn:aws:dynamodb:${Region}:${Account}:table/${TableName}"),
        policy_json("s3:GetObject", resource="arn:aws:s3:::${BucketName}/${ObjectName}"),
        policy_json("ses:*")])
    summary, _, _ = run_job(clients, clock, tmp_path, [ROLE])
    assert summary.written == [ROLE] and summary.ok
    data = json.loads((tmp_path / "orders-ingest.json").read_text())
    assert data["schema"] == "iamgate.baseline/v3" and data["principal_arn"] == ROLE  # with its history
    assert sorted(data["used"]) == ["dynamodb:getitem", "dynamodb:putitem", "s3:getobject"]
    assert data["service_level_only"] == ["ses"]
    assert data["sources"][0]["complete"] is False
    raw = json.loads((tmp_path / ".raw" / "orders-ingest.json").read_text())
    assert len(raw["generatedPolicyResult"]["generatedPolicies"]) == 3 and "ResponseMetadata" not in raw
    assert "${Account}" in raw["generatedPolicyResult"]["generatedPolicies"][0]["policy"]
    assert ACCESS_ROLE not in json.dumps(raw) + json.dumps(data)  # nothing about credentials or roles we pass
    # the raw copy is normalised to the same baseline, and `check` does not read it twice
    assert fmt.load(tmp_path / ".raw" / "orders-ingest.json").used.keys() == fmt.load(tmp_path / "orders-ingest.json").used.keys()
    from iamgate.usage.baseline_files import BaselineFiles
    assert [p.name for p in BaselineFiles([str(tmp_path)]).files()] == ["orders-ingest.json"]


def test_conflict_then_success(clients, clock):
    stub = stub_client(clients, "accessanalyzer")
    for _ in range(2):
        stub.add_client_error("start_policy_generation", "ConflictException",
                              "A policy generation job is already in progress", 409)
    expect_start(stub, ROLE, "job-3", clock)
    expect_get(stub, ROLE, "job-3", policies=[policy_json("sqs:SendMessage")])
    statuses = []
    result = make_generator(clients, clock, on_status=lambda a, s, t: statuses.append(s)).generate(ROLE)
    stub.assert_no_pending_responses()
    assert result.ok and clock.sleeps == [30.0, 45.0]
    assert statuses[0].startswith("waiting: another policy generation")


def test_throttling_backs_off(clients, clock):
    stub = stub_client(clients, "accessanalyzer")
    stub.add_client_error("start_policy_generation", "ThrottlingException", "Rate exceeded", 429)
    expect_start(stub, ROLE, "job-4", clock)
    stub.add_client_error("get_generated_policy", "ThrottlingException", "Rate exceeded", 429)
    stub.add_client_error("get_generated_policy", "ThrottlingException", "Rate exceeded", 429)
    expect_get(stub, ROLE, "job-4", policies=[policy_json("sqs:SendMessage")])
    result = make_generator(clients, clock).generate(ROLE)
    stub.assert_no_pending_responses()
    assert result.ok and clock.sleeps == [2.0, 2.0, 3.0]


def test_failed_job_records_job_error_and_run_continues(clients, clock, tmp_path):
    stub = stub_client(clients, "accessanalyzer")
    expect_list(stub)
    expect_start(stub, ROLE, "job-f", clock)
    expect_get(stub, ROLE, "job-f", "FAILED",
               error={"code": "TRAIL_NOT_FOUND", "message": "The trail was not found"})
    expect_start(stub, ROLE2, "job-g", clock)
    expect_get(stub, ROLE2, "job-g", policies=[policy_json("sns:Publish")])
    summary, log, _ = run_job(clients, clock, tmp_path, [ROLE, ROLE2])
    stub.assert_no_pending_responses()
    assert summary.written == [ROLE2] and not summary.ok
    assert summary.failed == {ROLE: "FAILED: TRAIL_NOT_FOUND: The trail was not found"}
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state["failed"][ROLE]["error"] == "TRAIL_NOT_FOUND: The trail was not found"
    assert state["failed"][ROLE]["job_id"] == "job-f" and state["pending"] == {}
    assert not (tmp_path / "orders-ingest.json").exists() and (tmp_path / "billing.json").exists()
    assert "[1/2] " + ROLE + ": failed (FAILED): TRAIL_NOT_FOUND" in log


def test_quota_mid_run_stops_and_next_run_resumes(clients, clock, tmp_path):
    stub = stub_client(clients, "accessanalyzer")
    expect_list(stub)
    expect_start(stub, ROLE, "job-a", clock)
    expect_get(stub, ROLE, "job-a", policies=[policy_json("s3:GetObject")])
    stub.add_client_error("start_policy_generation", "ServiceQuotaExceededException",
                          "Exceeded the daily policy generation quota", 402)
    summary, log, _ = run_job(clients, clock, tmp_path, [ROLE, ROLE2, ROLE3])
    stub.assert_no_pending_responses()
    assert summary.written == [ROLE] and summary.left == [ROLE2, ROLE3]
    assert "quota exceeded" in summary.stopped and "daily policy generation quota" in summary.stopped
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state["stopped"]["reason"] == "quota" and state["stopped"]["left"] == [ROLE2, ROLE3]
    fmt.load(tmp_path / "orders-ingest.json")  # the finished baseline is kept and valid

    clock.advance(days=1)  # the next day: the fresh baseline is skipped, the others are generated
    clients2 = Clients("us-east-1")
    stub2 = stub_client(clients2, "accessanalyzer")
    expect_list(stub2)
    for arn, job in ((ROLE2, "job-b"), (ROLE3, "job-c")):
        expect_start(stub2, arn, job, clock)
        expect_get(stub2, arn, job, policies=[policy_json("sns:Publish")])
    summary2, _, gen2 = run_job(clients2, clock, tmp_path, [ROLE, ROLE2, ROLE3])
    stub2.assert_no_pending_responses()
    assert summary2.fresh == [ROLE] and summary2.written == [ROLE2, ROLE3] and summary2.ok
    assert gen2.jobs_started == 2
    assert json.loads((tmp_path / STATE_FILE).read_text())["stopped"] is None


def test_daily_quota_counted_from_state(clients, clock, tmp_path):
    state = RunState(tmp_path / STATE_FILE)
    for i in range(50):
        state.data["jobs"].append({"principal_arn": ROLE2, "job_id": f"j{i}", "started_at": "2026-11-21T12:00:00Z"})
    state.save()
    expect_list(stub_client(clients, "accessanalyzer"))  # no call may reach Access Analyzer
    summary, _, gen = run_job(clients, clock, tmp_path, [ROLE])
    assert gen.jobs_started == 0 and summary.left == [ROLE] and "50 policy generations" in summary.stopped


def test_timeout_leaves_the_paid_job_running_and_waits_use_the_time_left(clients, clock, tmp_path):
    stub = stub_client(clients, "accessanalyzer")
    expect_start(stub, ROLE, "job-t", clock)
    for _ in range(4):
        expect_get(stub, ROLE, "job-t", "IN_PROGRESS")
    gen = make_generator(clients, clock, timeout=20)
    with pytest.raises(Stopped, match="timed out"):
        gen.generate(ROLE)
    stub.assert_no_pending_responses()  # no CancelPolicyGeneration: the job is paid for and collected later
    assert clock.sleeps == [5.0, 7.5, 7.5]  # the last wait is cut to the time left, then one more poll


def test_timeout_in_a_run_keeps_finished_baselines_and_the_running_job(clients, clock, tmp_path):
    stub = stub_client(clients, "accessanalyzer")
    expect_list(stub)
    expect_start(stub, ROLE, "job-1", clock)
    expect_get(stub, ROLE, "job-1", policies=[policy_json("s3:GetObject")])
    expect_start(stub, ROLE2, "job-2", clock)
    expect_get(stub, ROLE2, "job-2", "IN_PROGRESS")
    expect_get(stub, ROLE2, "job-2", "IN_PROGRESS")
    stream = io.StringIO()
    start, end = window(clock.now(), 90)
    gen = PolicyGenerator(clients.client("accessanalyzer"), TRAIL, ACCESS_ROLE, start, end, clock=clock,
                          deadline=clock.monotonic() + 3)
    summary = BaselineRun(tmp_path, gen, None, 0, clock=clock, progress=Progress(stream, live=False)).run([ROLE, ROLE2])
    stub.assert_no_pending_responses()
    assert summary.written == [ROLE] and summary.left == [ROLE2] and "timed out" in summary.stopped
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state["stopped"]["reason"] == "stopped"
    assert state["pending"] == {ROLE2: {"job_id": "job-2", "started_at": "2026-11-22T00:00:00Z"}}


def test_ctrl_c_leaves_the_job_running_valid_baselines_and_the_next_run_collects_it(clients, clock, tmp_path):
    stub = stub_client(clients, "accessanalyzer")
    expect_list(stub)
    expect_start(stub, ROLE, "job-1", clock)
    expect_get(stub, ROLE, "job-1", policies=[policy_json("s3:GetObject")])
    expect_start(stub, ROLE2, "job-2", clock)
    expect_get(stub, ROLE2, "job-2", "IN_PROGRESS")

    def interrupt(n):
        raise KeyboardInterrupt

    clock.on_sleep = interrupt
    summary, _, _ = run_job(clients, clock, tmp_path, [ROLE, ROLE2])
    stub.assert_no_pending_responses()
    assert summary.interrupted and summary.stopped == "interrupted" and summary.left == [ROLE2]
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [".iamgate-state.json", ".raw", "orders-ingest.json"]  # no temporary files left
    fmt.load(tmp_path / "orders-ingest.json")
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state["pending"][ROLE2]["job_id"] == "job-2" and state["stopped"]["reason"] == "interrupted"

    clock.on_sleep = None
    clients2 = Clients("us-east-1")
    stub2 = stub_client(clients2, "accessanalyzer")
    expect_list(stub2, listed(ROLE2, "job-2", "IN_PROGRESS"), listed(ROLE, "job-1"))
    expect_get(stub2, ROLE2, "job-2", policies=[policy_json("sns:Publish")])
    summary, _, gen2 = run_job(clients2, clock, tmp_path, [ROLE, ROLE2])
    stub2.assert_no_pending_responses()
    assert summary.fresh == [ROLE] and summary.written == [ROLE2] and gen2.jobs_started == 0


def test_killed_run_picks_up_its_running_job(clients, clock, tmp_path):
    """A run killed without a chance to cancel: the next run polls that job instead of starting another."""
    state = RunState(tmp_path / STATE_FILE)
    state.started(ROLE2, "job-left", clock.now() - dt.timedelta(minutes=3))
    stub = stub_client(clients, "accessanalyzer")
    expect_list(stub)
    expect_get(stub, ROLE2, "job-left", "IN_PROGRESS")
    expect_get(stub, ROLE2, "job-left", policies=[policy_json("sns:Publish")])
    expect_start(stub, ROLE, "job-new", clock)
    expect_get(stub, ROLE, "job-new", policies=[policy_json("s3:GetObject")])
    summary, _, gen = run_job(clients, clock, tmp_path, [ROLE, ROLE2])
    stub.assert_no_pending_responses()
    assert summary.written == [ROLE2, ROLE] and gen.jobs_started == 1


def test_picked_up_job_that_was_cancelled_starts_a_new_one(clients, clock, tmp_path):
    RunState(tmp_path / STATE_FILE).started(ROLE, "job-old", clock.now())
    stub = stub_client(clients, "accessanalyzer")
    expect_list(stub)
    expect_get(stub, ROLE, "job-old", "CANCELED")
    expect_start(stub, ROLE, "job-new", clock)
    expect_get(stub, ROLE, "job-new", policies=[policy_json("s3:GetObject")])
    summary, _, _ = run_job(clients, clock, tmp_path, [ROLE])
    stub.assert_no_pending_responses()
    assert summary.written == [ROLE]
    assert fmt.load(tmp_path / "orders-ingest.json").sources[0]["job_id"] == "job-new"


def test_max_jobs_leaves_the_rest_for_the_next_run(clients, clock, tmp_path):
    stub = stub_client(clients, "accessanalyzer")
    expect_list(stub)
    expect_start(stub, ROLE, "job-1", clock)
    expect_get(stub, ROLE, "job-1", policies=[policy_json("s3:GetObject")])
    summary, log, _ = run_job(clients, clock, tmp_path, [ROLE, ROLE2], max_jobs=1)
    stub.assert_no_pending_responses()
    assert summary.written == [ROLE] and summary.left == [ROLE2] and summary.ok
    assert "--max-jobs 1 reached" in log


def test_access_denied_stops_the_run(clients, clock, tmp_path):
    stub = stub_client(clients, "accessanalyzer")
    expect_list(stub)
    stub.add_client_error("start_policy_generation", "AccessDeniedException", "not authorized", 403)
    summary, _, _ = run_job(clients, clock, tmp_path, [ROLE, ROLE2])
    assert summary.left == [ROLE, ROLE2] and "AccessDeniedException" in summary.stopped


def test_progress_live_line_and_plain_lines():
    plain, live = io.StringIO(), io.StringIO()
    for stream, is_live in ((plain, False), (live, True)):
        p = Progress(stream, live=is_live)
        p.queued([ROLE])
        for t in (0, 5, 30, 61, 65):
            p.status(ROLE, "running", t)
        p.done(ROLE, "done")
    assert plain.getvalue().splitlines() == [
        f"[1/1] {ROLE}: queued", f"[1/1] {ROLE}: running for 0 s", f"[1/1] {ROLE}: running for 61 s",
        f"[1/1] {ROLE}: done"]
    assert "\r\033[K" in live.getvalue() and "running for 65 s" in live.getvalue()
    assert live.getvalue().count("\n") == 2  # the queue line and the final line; the rest overwrite


def test_window_limits():
    now = dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)
    assert window(now, 90) == (now - dt.timedelta(days=90), now)
    with pytest.raises(ValueError):
        window(now, 91)


def test_killed_run_job_is_collected_before_the_daily_quota_stops_the_run(clients, clock, tmp_path):
    """50 jobs in the last 24 hours, the last one still running when the run was killed: the next run
    collects it (no new job, no quota spent) and only then stops for the quota."""
    state = RunState(tmp_path / STATE_FILE)
    for i in range(49):
        state.data["jobs"].append({"principal_arn": ROLE3, "job_id": f"j{i}", "started_at": "2026-11-21T12:00:00Z"})
    state.started(ROLE2, "job-left", clock.now() - dt.timedelta(minutes=3))
    assert state.jobs_in_last_day(clock.now()) == 50
    stub = stub_client(clients, "accessanalyzer")  # no StartPolicyGeneration may be called
    expect_get(stub, ROLE2, "job-left", "IN_PROGRESS")
    expect_get(stub, ROLE2, "job-left", policies=[policy_json("sns:Publish")])
    summary, _, gen = run_job(clients, clock, tmp_path, [ROLE, ROLE2])
    stub.assert_no_pending_responses()
    assert summary.written == [ROLE2] and gen.jobs_started == 0
    assert summary.left == [ROLE] and "50 policy generations" in summary.stopped
    assert fmt.load(tmp_path / "billing.json").sources[0]["job_id"] == "job-left"
    saved = json.loads((tmp_path / STATE_FILE).read_text())
    assert saved["pending"] == {} and saved["stopped"]["left"] == [ROLE]


def test_quota_stop_keeps_a_running_job_it_did_not_collect(clients, clock, tmp_path):
    """The quota check must not forget a job that is still running (here: of a principal not in this run)."""
    state = RunState(tmp_path / STATE_FILE)
    for i in range(49):
        state.data["jobs"].append({"principal_arn": ROLE3, "job_id": f"j{i}", "started_at": "2026-11-21T12:00:00Z"})
    state.started(ROLE3, "job-left", clock.now() - dt.timedelta(minutes=3))
    expect_list(stub_client(clients, "accessanalyzer"))
    summary, _, gen = run_job(clients, clock, tmp_path, [ROLE])
    assert gen.jobs_started == 0 and "50 policy generations" in summary.stopped
    pending = json.loads((tmp_path / STATE_FILE).read_text())["pending"]
    assert pending[ROLE3]["job_id"] == "job-left"


def test_each_job_merges_into_the_history(clients, clock, tmp_path):
    """Issue 22: a job 150 days after the first merges into its baseline; `replace=True` starts afresh."""
    stub = stub_client(clients, "accessanalyzer")
    expect_list(stub)
    expect_start(stub, ROLE, "job-1", clock)
    expect_get(stub, ROLE, "job-1", policies=[policy_json("sqs:PurgeQueue", "sqs:SendMessage")])
    assert run_job(clients, clock, tmp_path, [ROLE])[0].written == [ROLE]
    later = (dt.datetime(2026, 12, 21, tzinfo=dt.timezone.utc), dt.datetime(2027, 3, 21, tzinfo=dt.timezone.utc))
    for job, kw in (("job-2", {}), ("job-3", {"replace": True})):
        clock.wall += dt.timedelta(days=150 if job == "job-2" else 8)
        expect_list(stub)
        expect_start(stub, ROLE, job, clock)
        expect_get(stub, ROLE, job, policies=[policy_json("sqs:SendMessage")], start=later[0], end=later[1])
        summary, text, _ = run_job(clients, clock, tmp_path, [ROLE], refresh=False, **kw)
        assert summary.written == [ROLE], text
        b = fmt.load(tmp_path / "orders-ingest.json")
        if job == "job-2":
            assert b.used["sqs:purgequeue"].by_source["access-analyzer"].last_seen == "2026-11-22T00:00:00Z"
            assert [(i.start[:10], i.end[:10]) for i in b.coverage["access-analyzer"]] == [
                ("2026-08-24", "2026-11-22"), ("2026-12-21", "2027-03-21")]
            assert b.sources[0]["job_id"] == "job-2" and b.window_start == "2026-08-24T00:00:00Z"
    assert set(b.used) == {"sqs:sendmessage"} and len(b.coverage["access-analyzer"]) == 1
