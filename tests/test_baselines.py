"""Both baseline formats load; v1 round-trips; merging is a union; bad files are clear errors."""
from __future__ import annotations

import json

import pytest

from conftest import corpus_path, write_json
from iamgate.usage import baseline_format as fmt
from iamgate.usage.matching import Matcher
from iamgate.model import Baseline, Principal, UsedAction
from iamgate.usage.baseline_files import BaselineFiles


def generated(principal="arn:aws:iam::111122223333:role/app", policies=None, complete=False):
    policies = policies if policies is not None else [
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetBucketLocation", "KMS:Decrypt"],
                                                 "Resource": "arn:aws:kms:${Region}:111122223333:key/${KeyId}"}]},
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ses:*", "Resource": "*"}]}]
    return {"generatedPolicyResult": {
        "generatedPolicies": [{"policy": json.dumps(p)} for p in policies],
        "properties": {"cloudTrailProperties": {"startTime": "2026-08-24T00:00:00Z", "endTime": "2026-11-22T00:00:00Z",
                                                "trailProperties": [{"cloudTrailArn": "arn:aws:cloudtrail:us-east-1:1:trail/t",
                                                                     "allRegions": True, "regions": []}]},
                       "isComplete": complete, "principalArn": principal}},
        "jobDetails": {"jobId": "j-1", "status": "SUCCEEDED", "startedOn": "2026-11-22T00:00:00Z",
                       "completedOn": "2026-11-22T00:05:00Z"}}


def test_generated_policy_with_several_documents_and_string_policies():
    b = fmt.parse(generated())
    assert b.principal_arn.endswith(":role/app") and b.role_name == "app"
    assert set(b.used) == {"s3:getbucketlocation", "kms:decrypt"}
    assert b.service_level_only == {"ses"}  # a service-level template is not action-level usage
    assert (b.window_start, b.window_end) == ("2026-08-24T00:00:00Z", "2026-11-22T00:00:00Z")
    assert b.complete is False
    assert b.sources[0]["kind"] == "access-analyzer" and b.sources[0]["job_id"] == "j-1"


def test_documented_aws_cli_output_loads_with_its_scrubbed_unknown_action():
    path = corpus_path("accessanalyzer", "aws", "aws-cli", "get-generated-policy.json")
    b = fmt.load(path)
    assert b.principal_arn == "arn:aws:iam::111122223333:role/Admin"
    assert "s3:listallamzn-s3-demo-buckets" in b.used and "iam:getrole" in b.used
    assert not b.complete


def test_v1_round_trip_and_atomic_write(tmp_path):
    b = Baseline("arn:aws:iam::1:role/x", "2026-01-01T00:00:00Z", "2026-03-01T00:00:00Z",
                 ({"kind": "cloudtrail", "events": 10, "files": 1},),
                 {"s3:getobject": UsedAction(4, "2026-02-01T00:00:00Z", ("cloudtrail",))},
                 data_events_observed=frozenset({"s3"}), denied={"s3:putobject": {"count": 2, "last_seen": None}})
    path = tmp_path / "x.json"
    fmt.write(b, path)
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temp file left behind
    again = fmt.load(path)
    assert fmt.to_v1(again) == fmt.to_v1(b)


@pytest.mark.parametrize("data,where", [
    ({"schema": "iamgate.baseline/v1", "principal_arn": "not-an-arn", "used": {}}, "principal_arn"),
    ({"schema": "iamgate.baseline/v1", "principal_arn": "arn:aws:iam::1:role/x", "used": {"s3 get": {}}}, "used"),
    ({"schema": "iamgate.baseline/v1", "principal_arn": "arn:aws:iam::1:role/x", "used": {"s3:x": {"count": -1}}},
     "used/s3:x/count"),
    ({"schema": "something/else"}, "neither"),
    ({"generatedPolicyResult": {"properties": {}}}, "principalArn"),
    ({"generatedPolicyResult": {"properties": {"principalArn": "arn:aws:iam::1:role/x"},
                                "generatedPolicies": [{"policy": "{not json"}]}}, "not valid JSON"),
])
def test_invalid_baselines_say_where(data, where):
    with pytest.raises(fmt.BaselineError, match=where.replace("/", "/")):
        fmt.parse(data)


def test_folder_reader_reports_bad_files_and_goes_on(tmp_path):
    write_json(tmp_path / "good.json", generated())
    (tmp_path / "broken.json").write_text("{")
    write_json(tmp_path / ".raw" / "ignored.json", {"anything": 1})
    got = BaselineFiles([str(tmp_path)]).collect()
    assert [b.role_name for b in got.baselines] == ["app"]
    assert len(got.errors) == 1 and got.errors[0].file.endswith("broken.json")
    assert "invalid JSON" in got.errors[0].message


def test_merge_is_a_union_of_usage_and_observability():
    a = fmt.parse(generated())
    b = Baseline(a.principal_arn, "2026-07-01T00:00:00Z", "2026-11-25T00:00:00Z", ({"kind": "cloudtrail"},),
                 {"kms:decrypt": UsedAction(3, "2026-11-20T00:00:00Z", ("cloudtrail",)),
                  "s3:getobject": UsedAction(1, None, ("cloudtrail",))}, data_events_observed=frozenset({"s3"}))
    m = fmt.merge([a, b])
    assert set(m.used) == {"s3:getbucketlocation", "kms:decrypt", "s3:getobject"}
    assert m.used["kms:decrypt"].signals == ("access-analyzer", "cloudtrail")
    assert (m.window_start, m.window_end) == ("2026-07-01T00:00:00Z", "2026-11-25T00:00:00Z")
    assert m.service_level_only == frozenset()  # CloudTrail sees ses at action level
    assert m.data_events_observed == {"s3"}


def test_matching_by_name_mapping_logical_id_and_generated_name():
    bl = [Baseline(f"arn:aws:iam::1:role/{n}") for n in
          ("orders-ingest-prod", "mapped-role", "Stack-WorkerRole-1A2B3C4D5E6F", "svc-abc123", "LogicalOnly")]
    m = Matcher(bl, {"infra/policy.json": "mapped-role"})
    find = lambda **kw: m.find(Principal(**{"kind": "role", **kw}))  # noqa: E731
    assert find(id="A", name="orders-ingest-prod")[1] == "name"
    assert find(id="infra/policy.json", kind="policy")[1].startswith("config mapping")
    assert find(id="WorkerRole")[1] == "logical id in a generated name"
    assert find(id="X", name="svc-", name_is_prefix=True)[1] == "name prefix"
    assert find(id="LogicalOnly")[1] == "logical id"
    assert find(id="Nothing", name="nope")[0] is None
    assert find(id="P", name_pattern="*-ingest-prod")[1] == "name pattern *-ingest-prod"
    assert find(id="P", name_pattern="svc-*")[1] == "name pattern svc-*"
    assert find(id="P", name_pattern="*o*")[0] is None  # not unique: never guessed
    assert find(id="U", kind="user", name="orders-ingest-prod")[0] is None  # kinds must agree
    got = m.match([Principal("A", "role", name="orders-ingest-prod"), Principal("infra/policy.json", "policy"),
                   Principal("WorkerRole", "role"), Principal("X", "role", name="svc-", name_is_prefix=True),
                   Principal("LogicalOnly", "role")])
    assert got.unmatched == () and got.shared == ()
