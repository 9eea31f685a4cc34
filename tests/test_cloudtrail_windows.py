"""CloudTrail windows are the span of the logs that cover each principal's account; an empty source
is an error; per-record problems are counted by kind, and a kept record is a warning, not exit 2."""
from __future__ import annotations

import json
from pathlib import Path

from conftest import cli_in_process, role_template, write_json

from iamgate.usage.cloudtrail import CloudTrailUsage
from iamgate.formats.json import expanded

A, B = "111122223333", "444455556666"
ROLE = role_template('{Effect: Allow, Action: ["ec2:DescribeVpcs", "ec2:DescribeSubnets"], Resource: "*"}')


def event(account: str, role: str, t: str, region: str = "us-east-1", name: str = "DescribeVpcs", **extra) -> dict:
    return {"eventSource": "ec2.amazonaws.com", "eventName": name, "eventTime": t, "awsRegion": region,
            "recipientAccountId": account,
            "userIdentity": {"type": "AssumedRole", "arn": f"arn:aws:sts::{account}:assumed-role/{role}/s",
                             "sessionContext": {"sessionIssuer": {"arn": f"arn:aws:iam::{account}:role/{role}"}}},
            **extra}


def delivered(root: Path, account: str, region: str, day: str, records: list) -> None:
    y, m, d = day.split("-")
    write_json(root / "AWSLogs" / account / "CloudTrail" / region / y / m / d /
               f"{account}_CloudTrail_{region}_{y}{m}{d}T0000Z_x.json", {"Records": records})


def windows(summary) -> dict:
    return {b.principal_arn: (b.window_start, b.window_end) for b in summary.baselines}


def test_each_baseline_gets_the_span_of_its_own_accounts_logs(tmp_path, catalog):
    delivered(tmp_path, A, "us-east-1", "2024-07-30", [event(A, "app", "2024-07-30T08:00:00Z")])
    delivered(tmp_path, A, "eu-west-1", "2024-11-30", [event(A, "edge", "2024-11-30T08:00:00Z", "eu-west-1"),
                                                       event(A, "app", "2024-11-30T20:00:00Z", "eu-west-1")])
    delivered(tmp_path, B, "us-east-1", "2024-11-30", [event(B, "ops", "2024-11-30T12:00:00Z"),
                                                       event(B, "ops", "2024-11-30T12:01:00Z")])
    summary, errors = CloudTrailUsage([str(tmp_path)], catalog=catalog).scan()
    assert errors == []
    assert windows(summary) == {
        f"arn:aws:iam::{A}:role/app": ("2024-07-30T08:00:00Z", "2024-11-30T20:00:00Z"),  # both regions' logs
        f"arn:aws:iam::{A}:role/edge": ("2024-11-30T08:00:00Z", "2024-11-30T20:00:00Z"),  # only eu-west-1's
        f"arn:aws:iam::{B}:role/ops": ("2024-11-30T12:00:00Z", "2024-11-30T12:01:00Z"),  # one minute of logs
    }


def test_without_the_delivery_layout_the_account_comes_from_the_records(tmp_path, catalog):
    write_json(tmp_path / "export.json", {"Records": [
        event(A, "app", "2024-07-30T08:00:00Z"), event(A, "app", "2024-11-30T08:00:00Z"),
        event(B, "ops", "2024-11-30T12:00:00Z", name="DescribeSubnets")]})
    summary, _ = CloudTrailUsage([str(tmp_path)], catalog=catalog).scan()
    assert windows(summary)[f"arn:aws:iam::{B}:role/ops"] == ("2024-11-30T12:00:00Z", "2024-11-30T12:00:00Z")
    assert windows(summary)[f"arn:aws:iam::{A}:role/app"] == ("2024-07-30T08:00:00Z", "2024-11-30T08:00:00Z")


def test_the_one_minute_account_is_not_reported_unused_over_months(tmp_path):
    logs = tmp_path / "logs"
    delivered(logs, A, "us-east-1", "2024-11-30", [event(A, "app", "2024-11-30T12:00:00Z")])
    delivered(logs, B, "us-east-1", "2024-07-30", [event(B, "ops", "2024-07-30T00:00:00Z")])
    delivered(logs, B, "us-east-1", "2024-11-30", [event(B, "ops", "2024-11-30T23:00:00Z")])
    (tmp_path / "app.yaml").write_text(ROLE)
    r = cli_in_process("check", "app.yaml", "--cloudtrail", "logs", "--format", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    [p] = expanded(json.loads(r.stdout))["principals"]
    assert (p["baseline"]["start"], p["baseline"]["end"]) == ("2024-11-30T12:00:00Z", "2024-11-30T12:00:00Z")


def test_an_empty_log_folder_is_an_error_never_a_full_pass(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "app.yaml").write_text(ROLE)
    r = cli_in_process("check", "app.yaml", "--cloudtrail", "logs", cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "logs: no CloudTrail records (no .json/.json.gz log files): no usage read from this source" in r.stdout
    assert "(100.0%)" not in r.stdout and "PASS" not in r.stdout
    write_json(tmp_path / "logs" / "a.json", {"Records": []})
    r = cli_in_process("check", "app.yaml", "--cloudtrail", "logs", cwd=tmp_path)
    assert r.returncode == 2 and "logs: no CloudTrail records: no usage read" in r.stdout


def test_all_records_outside_the_window_is_an_error(tmp_path, catalog):
    write_json(tmp_path / "a.json", {"Records": [event(A, "app", "2024-07-30T08:00:00Z")]})
    _, errors = CloudTrailUsage([str(tmp_path)], start="2025-01-01", catalog=catalog).scan()
    assert [e.message for e in errors] == ["all 1 records are outside --start/--end: no usage read from this source"]


def test_an_odd_optional_field_is_one_warning_per_kind_and_not_exit_2(tmp_path):
    records = [event(A, "app", f"2024-11-30T12:{i % 60:02d}:00Z") for i in range(2000)]
    for i in range(0, 2000, 200):
        records[i]["userIdentity"]["sessionContext"] = {"sessionIssuer": "not an object"}
        records[i + 1]["managementEvent"] = "yes"
    delivered(tmp_path / "logs", A, "us-east-1", "2024-11-30", records)
    (tmp_path / "app.yaml").write_text(ROLE)
    r = cli_in_process("check", "app.yaml", "--cloudtrail", "logs", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [line for line in r.stdout.splitlines() if "malformed" in line]
    assert len(lines) == 2, lines
    assert "10 records with a malformed managementEvent counted without it (first: " in lines[0]
    assert lines[0].endswith(", record 1)")
    assert "10 records with a malformed userIdentity.sessionContext.sessionIssuer counted" in lines[1]
    r = cli_in_process("check", "app.yaml", "--cloudtrail", "logs", "--format", "markdown", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.count("malformed") == 2 and "**Usage warnings:**" in r.stdout


def test_lost_records_are_one_error_per_kind_with_the_count_and_first_place(tmp_path, catalog):
    records = [event(A, "app", "2024-11-30T12:00:00Z") for _ in range(500)]
    for i in range(3, 500, 50):
        records[i] = "not a record"
    write_json(tmp_path / "a.json", {"Records": records})
    summary, errors = CloudTrailUsage([str(tmp_path)], catalog=catalog).scan()
    assert [(Path(e.file).name, e.message) for e in errors] == [
        ("a.json", "10 records not counted: not a JSON object (first: record 3)")]
    assert summary.events == 490
