"""Local CloudTrail logs -> baselines: formats, attribution, denied calls, observability, the command."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from iamgate.usage import baseline_format as fmt
from iamgate.usage import cloudtrail as ct
from iamgate.usage.cloudtrail import CloudTrailUsage

from conftest import FIXTURES, run_cli, write_json

LOGS = FIXTURES / "cloudtrail"
APP = "arn:aws:iam::111122223333:role/app-role"
BOB = "arn:aws:iam::111122223333:user/bob"
DEPLOY = "arn:aws:iam::444455556666:role/deploy"


@pytest.fixture(scope="module")
def scanned(catalog):
    return CloudTrailUsage([str(LOGS)], catalog=catalog).scan()


def by_arn(summary):
    return {b.principal_arn: b for b in summary.baselines}


def test_all_three_forms_and_org_trails_are_read(scanned):
    summary, errors = scanned
    assert errors == []
    assert summary.files == 3 and summary.events == 16
    assert set(by_arn(summary)) == {APP, BOB, DEPLOY}
    assert summary.window == ("2024-08-01T10:00:00Z", "2024-08-03T00:01:00Z")


def test_digest_and_non_cloudtrail_files_are_skipped_with_a_note(scanned):
    notes = " ".join(scanned[0].notes)
    assert "skipped 1 CloudTrail digest file" in notes
    assert "notes.json: not CloudTrail" in notes


def test_role_usage_denied_and_attempts(scanned):
    b = by_arn(scanned[0])[APP]
    assert b.used["ec2:describeinstances"].count == 3
    assert b.used["ec2:describeinstances"].last_seen == "2024-08-02T09:02:00Z"
    assert b.used["ec2:describeinstances"].signals == ("cloudtrail",)
    assert "s3:listbucket" in b.used and "lambda:createfunction" in b.used
    assert b.used["dynamodb:partiqlselect"].count == 1  # chosen by the statement verb
    assert "dynamodb:partiqlinsert" not in b.used
    assert "dynamodb:getitem" in b.used  # ResourceNotFound: authorized, an attempt
    assert "kms:decrypt" not in b.used
    assert b.denied == {"kms:decrypt": {"count": 1, "last_seen": "2024-08-01T10:06:00Z"}}
    assert "sts:getcalleridentity" not in b.used  # permissionless
    assert b.sources == ({"kind": "cloudtrail", "events": 16, "files": 3},)


def test_service_events_are_kept_apart(scanned):
    summary = scanned[0]
    assert not any("aws-service-role" in b.principal_arn for b in summary.baselines)
    kinds = {k for k, _, _ in summary.kept_apart}
    assert kinds == {"service-linked-role", "aws-service", "no-identity"}


def test_data_events_make_data_actions_observable(scanned, catalog):
    from iamgate.judge.verdicts import Observability, decide
    summary = scanned[0]
    assert summary.data_events_observed == frozenset({"s3", "dynamodb"})
    assert set(summary.categories["s3"]) == {"Data"}
    obs = Observability(catalog)
    b = by_arn(summary)[APP]
    assert decide("s3:getobject", b, obs)[0] == "unused"
    assert decide("lambda:invokefunction", b, obs)[0] == "unobservable"
    # data events are logged per resource: another principal's data events say nothing about this one
    bob = by_arn(summary)[BOB]
    assert bob.data_events_observed == frozenset()
    assert decide("s3:getobject", bob, obs)[0] == "unobservable"


def test_window_and_principal_filters(catalog):
    summary, _ = CloudTrailUsage([str(LOGS)], start="2024-08-02", end="2024-08-02", catalog=catalog).scan()
    assert set(by_arn(summary)) == {APP, BOB}
    assert by_arn(summary)[APP].used["ec2:describeinstances"].count == 1
    summary, _ = CloudTrailUsage([str(LOGS)], principal="deploy", catalog=catalog).scan()
    assert set(by_arn(summary)) == {DEPLOY}
    with pytest.raises(ValueError, match="not a date"):
        CloudTrailUsage([str(LOGS)], start="last tuesday")


def test_null_and_malformed_records_are_located_errors_and_the_scan_goes_on(tmp_path, catalog):
    recs = [{"eventSource": "ec2.amazonaws.com", "eventName": "DescribeVpcs", "eventTime": "2024-01-01T00:00:00Z",
             "userIdentity": {"type": "IAMUser", "arn": BOB, "sessionContext": None}, "resources": None},
            {"eventSource": "ec2.amazonaws.com", "eventName": 7, "userIdentity": {"type": "IAMUser", "arn": BOB}},
            "not a record"]
    write_json(tmp_path / "odd.json", {"Records": recs})
    (tmp_path / "broken.json").write_text('{"Records": [\n{"eventName": \n')
    lines = tmp_path / "lines.json.gz"
    lines.write_bytes(gzip.compress(b'{"eventSource": "iam.amazonaws.com", "eventName": "ListUsers"}\n{oops\n'))
    summary, errors = CloudTrailUsage([str(tmp_path)], catalog=catalog).scan()
    found = {(Path(e.file).name, e.line, e.message) for e in errors}
    assert ("odd.json", None, "1 record not counted: malformed eventName (first: record 1)") in found
    assert ("odd.json", None, "1 record not counted: not a JSON object (first: record 2)") in found
    assert any(f == "broken.json" and line == 2 for f, line, _ in found)
    assert ("lines.json.gz", 2, "1 record not counted: invalid JSON line") in found
    assert by_arn(summary)[BOB].used["ec2:describevpcs"].count == 1
    assert summary.events == 2  # the DescribeVpcs record and ListUsers; a record without a usable eventName is lost


def test_process_pool_gives_the_same_result(monkeypatch, scanned, catalog):
    monkeypatch.setattr(ct, "IN_PROCESS_BYTES", 0)
    pooled, errors = CloudTrailUsage([str(LOGS)], jobs=2, catalog=catalog).scan()
    assert errors == []
    assert pooled.baselines == scanned[0].baselines
    assert pooled.unmapped == scanned[0].unmapped


def test_usage_command_writes_loadable_baselines(tmp_path):
    out = tmp_path / "baselines"
    r = run_cli("usage", "cloudtrail", str(LOGS), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "wrote 3 baseline(s)" in r.stdout and "mapped to IAM actions" in r.stdout
    files = sorted(p.name for p in out.glob("[!.]*.json"))
    assert files == ["111122223333_role_app-role.json", "111122223333_user_bob.json",
                     "444455556666_role_deploy.json"]
    doc = json.loads((out / "111122223333_role_app-role.json").read_text())
    assert doc["sources"] == [{"kind": "cloudtrail", "events": 16, "files": 3}]
    assert doc["used"]["ec2:describeinstances"]["regions"] == ["eu-west-1", "us-east-1"]
    assert doc["used"]["dynamodb:getitem"]["errors"] == 1
    assert doc["data_events_observed"] == ["dynamodb", "s3"]
    b = fmt.load(out / "111122223333_role_app-role.json")
    assert b.denied["kms:decrypt"]["count"] == 1
    summary = json.loads((out / ".cloudtrail-summary.json").read_text())
    assert summary["api_events"] == summary["mapped_events"] + sum(u["count"] for u in summary["unmapped"])


def test_usage_command_user_errors_exit_2(tmp_path):
    r = run_cli("usage", "cloudtrail", str(tmp_path / "missing"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "no such file" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("usage", "cloudtrail", str(LOGS), "--out", str(tmp_path / "o"), "--start", "yesterday-ish")
    assert r.returncode == 2 and "not a date" in r.stderr and "Traceback" not in r.stderr


def test_check_merges_cloudtrail_with_stored_baselines(tmp_path, catalog):
    from iamgate.usage.baseline_format import merge
    summary, _ = CloudTrailUsage([str(LOGS)], catalog=catalog).scan()
    ct_b = by_arn(summary)[APP]
    aa = fmt.parse({"schema": "iamgate.baseline/v1", "principal_arn": APP, "used": {"ec2:describevpcs": {}},
                    "sources": [{"kind": "access-analyzer", "complete": True}]})
    merged = merge([aa, ct_b])
    assert {"ec2:describevpcs", "ec2:describeinstances"} <= set(merged.used)
    assert merged.data_events_observed == frozenset({"s3", "dynamodb"})


def test_unwritable_out_fails_before_reading_any_log(tmp_path, monkeypatch, capsys):
    from iamgate.cli import main

    def no_scan(self):
        raise AssertionError("the logs were read before --out was checked")

    monkeypatch.setattr(CloudTrailUsage, "scan", no_scan)
    (tmp_path / "file").write_text("")
    bad = tmp_path / "file" / "out"  # a folder under a regular file: like /dev/null/x
    assert main(["usage", "cloudtrail", str(LOGS), "--out", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"iamgate: error: --out {bad}: cannot write there") and len(err.splitlines()) == 1


def test_unwritable_out_exits_2_without_traceback(tmp_path):
    (tmp_path / "file").write_text("")
    r = run_cli("usage", "cloudtrail", str(LOGS), "--out", str(tmp_path / "file" / "out"))
    assert r.returncode == 2 and "cannot write there" in r.stderr and "Traceback" not in r.stderr
