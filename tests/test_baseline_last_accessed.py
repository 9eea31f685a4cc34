"""IAM last accessed (ACTION_LEVEL) through botocore's Stubber (moto does not implement it), and how
it merges with Access Analyzer into the verdicts."""
from __future__ import annotations

import datetime as dt

import pytest

from fixtures.aws.helpers import ACCOUNT, FakeClock, stub_client
from iamgate.usage import baseline_format as fmt
from iamgate.judge.verdicts import decide, default_observability
from iamgate.model import Baseline, UsedAction
from iamgate.usage.access_analyzer import Stopped
from iamgate.usage.last_accessed import LastAccessed, LastAccessedError, for_merge

ROLE = f"arn:aws:iam::{ACCOUNT}:role/orders-ingest"
JOB1, JOB2, JOB3 = (f"0000000{i}-1111-2222-3333-444444444444" for i in (1, 2, 3))
T0 = dt.datetime(2026, 11, 1, 12, tzinfo=dt.timezone.utc)


def page(services, status="COMPLETED", truncated=False, marker=None):
    resp = {"JobStatus": status, "JobType": "ACTION_LEVEL", "JobCreationDate": T0,
            "JobCompletionDate": T0 + dt.timedelta(seconds=20), "ServicesLastAccessed": services,
            "IsTruncated": truncated}
    if marker:
        resp["Marker"] = marker
    return resp


SERVICES_1 = [
    {"ServiceName": "Amazon S3", "ServiceNamespace": "s3", "LastAuthenticated": T0, "TotalAuthenticatedEntities": 1,
     "TrackedActionsLastAccessed": [{"ActionName": "GetObject", "LastAccessedTime": T0,
                                     "LastAccessedEntity": ROLE, "LastAccessedRegion": "us-east-1"},
                                    {"ActionName": "PutObject"}]},
    {"ServiceName": "Amazon DynamoDB", "ServiceNamespace": "dynamodb", "TotalAuthenticatedEntities": 0},
]
SERVICES_2 = [
    {"ServiceName": "Amazon SES", "ServiceNamespace": "ses", "LastAuthenticated": T0, "TotalAuthenticatedEntities": 1},
]


def expect_job(stub, job_id=JOB1):
    stub.add_response("generate_service_last_accessed_details", {"JobId": job_id},
                      {"Arn": ROLE, "Granularity": "ACTION_LEVEL"})


def test_in_progress_then_two_pages(clients):
    stub = stub_client(clients, "iam", "last-accessed")
    expect_job(stub)
    stub.add_response("get_service_last_accessed_details", page([], "IN_PROGRESS"), {"JobId": JOB1})
    stub.add_response("get_service_last_accessed_details", page(SERVICES_1, truncated=True, marker="m1"),
                      {"JobId": JOB1})
    stub.add_response("get_service_last_accessed_details", page(SERVICES_2), {"JobId": JOB1, "Marker": "m1"})
    clock = FakeClock()
    b = LastAccessed(clients.client("iam", "last-accessed"), clock).collect_for(ROLE)
    stub.assert_no_pending_responses()
    assert clock.sleeps == [2.0]
    assert b.used == {"s3:getobject": UsedAction(last_seen="2026-11-01T12:00:00Z", signals=("last-accessed",))}
    assert b.not_accessed_services == {"dynamodb"} and b.service_level_only == {"ses"}
    assert b.sources == ({"kind": "last-accessed", "job_id": JOB1, "generated_at": "2026-11-01T12:00:20Z",
                          "tool_version": b.sources[0]["tool_version"]},)


def test_failed_job_and_api_errors_are_clear(clients):
    stub = stub_client(clients, "iam", "last-accessed")
    expect_job(stub, JOB2)
    failed = page([], "FAILED")
    failed["Error"] = {"Code": "InternalError", "Message": "try later"}
    stub.add_response("get_service_last_accessed_details", failed, {"JobId": JOB2})
    stub.add_client_error("generate_service_last_accessed_details", "NoSuchEntity", "role not found", 404)
    la = LastAccessed(clients.client("iam", "last-accessed"), FakeClock())
    with pytest.raises(LastAccessedError, match=f"{JOB2} failed: InternalError: try later"):
        la.collect_for(ROLE)
    with pytest.raises(LastAccessedError, match="GenerateServiceLastAccessedDetails: NoSuchEntity: role not found"):
        la.collect_for(ROLE)


def test_throttling_and_deadline(clients):
    stub = stub_client(clients, "iam", "last-accessed")
    stub.add_client_error("generate_service_last_accessed_details", "Throttling", "Rate exceeded", 400)
    expect_job(stub, JOB3)
    for _ in range(5):
        stub.add_response("get_service_last_accessed_details", page([], "IN_PROGRESS"), {"JobId": JOB3})
    clock = FakeClock()
    with pytest.raises(Stopped, match="last-accessed"):
        LastAccessed(clients.client("iam", "last-accessed"), clock, deadline=clock.monotonic() + 10).collect_for(ROLE)
    assert clock.sleeps[0] == 2.0 and sum(clock.sleeps) <= 10


def test_merge_with_access_analyzer_decides_verdicts(catalog):
    aa = Baseline(ROLE, "2026-08-24T00:00:00Z", "2026-11-22T00:00:00Z",
                  sources=({"kind": "access-analyzer", "complete": True},),
                  used={"dynamodb:getitem": UsedAction(signals=("access-analyzer",))},
                  service_level_only=frozenset({"ses"}))
    la = Baseline(ROLE, sources=({"kind": "last-accessed"},),
                  used={"s3:putobject": UsedAction(last_seen="2026-11-01T12:00:00Z", signals=("last-accessed",))},
                  not_accessed_services=frozenset({"sqs", "dynamodb"}), service_level_only=frozenset({"s3"}))
    merged = fmt.merge([aa, for_merge(la)])
    obs = default_observability(catalog)
    # a service never accessed: unused, decided by last accessed, even with no action-level data
    assert decide("sqs:sendmessage", merged, obs) == ("unused", "service never accessed in the tracking period "
                                                                 "(last accessed)")
    # an action-level last-accessed entry counts as used; the signal is named
    assert decide("s3:putobject", merged, obs) == ("used", "observed (last-accessed)")
    # Access Analyzer's own data stays in charge where it has it
    assert decide("dynamodb:getitem", merged, obs)[0] == "used"
    assert decide("s3:deletebucket", merged, obs)[0] == "unused"  # s3 stays action level: not service level
    assert decide("ses:sendemail", merged, obs) == ("unobservable", "service-level usage only")
    data = fmt.to_v1(merged)
    assert [s["kind"] for s in data["sources"]] == ["access-analyzer", "last-accessed"]
    assert data["not_accessed_services"] == ["sqs"]  # dynamodb was used after all
    fmt.from_v1(data)  # valid against the schema


OLD = dt.datetime(2025, 10, 1, tzinfo=dt.timezone.utc)  # long before the 2026-08-24 -> 2026-11-22 window
SERVICES_OLD = [
    {"ServiceName": "Amazon S3", "ServiceNamespace": "s3", "LastAuthenticated": T0, "TotalAuthenticatedEntities": 1,
     "TrackedActionsLastAccessed": [{"ActionName": "GetObject", "LastAccessedTime": T0},
                                    {"ActionName": "DeleteBucket", "LastAccessedTime": OLD}]},
    {"ServiceName": "Amazon SQS", "ServiceNamespace": "sqs", "LastAuthenticated": OLD, "TotalAuthenticatedEntities": 1,
     "TrackedActionsLastAccessed": [{"ActionName": "SendMessage", "LastAccessedTime": OLD}]},
    {"ServiceName": "Amazon SES", "ServiceNamespace": "ses", "LastAuthenticated": OLD, "TotalAuthenticatedEntities": 1},
    {"ServiceName": "Amazon DynamoDB", "ServiceNamespace": "dynamodb", "TotalAuthenticatedEntities": 0},
]


def test_access_before_the_window_is_not_used_in_it(clients):
    stub = stub_client(clients, "iam", "last-accessed")
    expect_job(stub)
    stub.add_response("get_service_last_accessed_details", page(SERVICES_OLD), {"JobId": JOB1})
    b = LastAccessed(clients.client("iam", "last-accessed"), FakeClock()).collect_for(
        ROLE, dt.datetime(2026, 8, 24, tzinfo=dt.timezone.utc))
    stub.assert_no_pending_responses()
    assert set(b.used) == {"s3:getobject"}  # s3:DeleteBucket was last used before the window
    # accessed before the window: not used in it, but not "never accessed" either, nor service-level usage
    assert b.not_accessed_services == {"dynamodb"} and b.service_level_only == frozenset()


def test_baseline_run_passes_the_job_window_to_last_accessed(clients, tmp_path):
    """Merged into a 2026-08-24 -> 2026-11-22 baseline, s3:DeleteBucket last accessed 2025-10-01 stays unused."""
    import io
    from fixtures.aws.helpers import ACCESS_ROLE, TRAIL, generated, policy_json
    from iamgate.usage.baseline_job import BaselineRun, Progress
    from iamgate.usage.access_analyzer import PolicyGenerator, window
    clock = FakeClock()
    aa = stub_client(clients, "accessanalyzer")
    aa.add_response("list_policy_generations", {"policyGenerations": []}, {})
    aa.add_response("start_policy_generation", {"jobId": "job-1"}, None)
    aa.add_response("get_generated_policy", generated(ROLE, "job-1", policies=[policy_json("dynamodb:GetItem")]),
                    None)
    la = stub_client(clients, "iam", "last-accessed")
    expect_job(la)
    la.add_response("get_service_last_accessed_details", page(SERVICES_OLD), {"JobId": JOB1})
    start, end = window(clock.now(), 90)
    gen = PolicyGenerator(clients.client("accessanalyzer"), TRAIL, ACCESS_ROLE, start, end, clock=clock)
    run = BaselineRun(tmp_path, gen, LastAccessed(clients.client("iam", "last-accessed"), clock), 0, clock=clock,
                      progress=Progress(io.StringIO(), live=False))
    assert run.run([ROLE]).written == [ROLE]
    b = fmt.load(tmp_path / "orders-ingest.json")
    assert (b.window_start, b.window_end) == ("2026-08-24T00:00:00Z", "2026-11-22T00:00:00Z")
    assert set(b.used) == {"dynamodb:getitem", "s3:getobject"}
    assert "s3:deletebucket" not in b.used and "sqs:sendmessage" not in b.used


def test_a_truncated_page_without_a_marker_is_a_bad_reply_not_the_first_page_again(clients):
    """`IsTruncated` without `Marker` would ask for the first page again, forever: it is a reply of the
    wrong shape, retried (bounded), then this principal's step fails."""
    stub = stub_client(clients, "iam", "last-accessed")
    expect_job(stub)
    for _ in range(5):  # Retry.ATTEMPTS
        stub.add_response("get_service_last_accessed_details", page(SERVICES_1, truncated=True), {"JobId": JOB1})
    la = LastAccessed(clients.client("iam", "last-accessed"), FakeClock())
    with pytest.raises(LastAccessedError, match="Marker"):
        la.collect_for(ROLE)
    stub.assert_no_pending_responses()
