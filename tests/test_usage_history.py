"""Usage that remembers (issue 22): refreshes merge into the stored baselines, read only new logs, keep
`--keep` days, and a killed refresh leaves every baseline whole. Real log files on disk, a moto S3 server."""
from __future__ import annotations

import datetime as dt
import gzip
import json
import uuid
from pathlib import Path

import pytest

from iamgate.formats.json import expanded

from conftest import cli_in_process
from fixtures.aws.helpers import s3_bucket
from iamgate.model import Baseline, Interval, SourceUse, UsedAction
from iamgate.usage import history
from iamgate.usage import baseline_format as fmt
from iamgate.usage._ct_state import STATE_FILE, ReadState

ACCOUNT = "111122223333"
BATCH = f"arn:aws:iam::{ACCOUNT}:role/batch"
IDLE = f"arn:aws:iam::{ACCOUNT}:role/idle"


def record(t: dt.datetime, name: str, role: str = "batch", source: str = "sqs.amazonaws.com") -> dict:
    return {"eventVersion": "1.08", "eventID": str(uuid.uuid4()), "eventTime": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": source, "eventName": name, "awsRegion": "us-east-1", "eventType": "AwsApiCall",
            "userIdentity": {"type": "AssumedRole", "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/s",
                             "sessionContext": {"sessionIssuer": {
                                 "type": "Role", "arn": f"arn:aws:iam::{ACCOUNT}:role/{role}"}}}}


def key(t: dt.datetime, n: int = 0) -> str:
    return (f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/{t:%Y/%m/%d}/"
            f"{ACCOUNT}_CloudTrail_us-east-1_{t:%Y%m%dT%H%M}Z_{n:04d}.json.gz")


def body(*records: dict) -> bytes:
    return gzip.compress(json.dumps({"Records": list(records)}).encode())


def day(d: str, hour: int = 10) -> dt.datetime:
    return dt.datetime.fromisoformat(d).replace(hour=hour, tzinfo=dt.timezone.utc)


def days(first: str, n: int):
    start = day(first)
    return [start + dt.timedelta(days=i) for i in range(n)]


def put_local(root: Path, t: dt.datetime, *records: dict, n: int = 0) -> Path:
    path = root / key(t, n)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body(*records))
    return path


def refresh(out: Path, *args: str, cwd: Path):
    return cli_in_process("usage", "cloudtrail", *args, "--out", str(out), "--jobs", "1", cwd=cwd)


def stored(out: Path, arn: str = BATCH) -> Baseline:
    return fmt.load(out / f"{ACCOUNT}_role_{arn.rsplit('/', 1)[1]}.json")


# -- the scenario of the issue, in S3 ----------------------------------------------------------------

@pytest.fixture
def s3(monkeypatch):
    with s3_bucket(monkeypatch, "trail") as client:
        yield client


def test_two_refreshes_150_days_apart_remember_purgequeue(s3, tmp_path):
    july = days("2026-07-01", 10)
    for i, t in enumerate(july):
        events = [record(t, "SendMessage")] + ([record(t, "PurgeQueue")] if t.day == 9 else [])
        s3.put_object(Bucket="trail", Key=key(t, i), Body=body(*events))
    out = tmp_path / "baselines"
    first = refresh(out, "s3://trail/AWSLogs/", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    b = stored(out)
    assert b.used["sqs:purgequeue"].last_seen == "2026-07-09T10:00:00Z"

    for i, t in enumerate(july):  # the logs read in July are gone bad since: never opened again
        s3.put_object(Bucket="trail", Key=key(t, i), Body=b"\x1f\x8bjunk, not a log")
    december = days("2026-12-06", 2)  # 150 days after July 9
    for i, t in enumerate(december):
        s3.put_object(Bucket="trail", Key=key(t, i), Body=body(record(t, "SendMessage")))
    second = refresh(out, "s3://trail/AWSLogs/", cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "skipped" in second.stdout and "read by an earlier run" in second.stdout

    b = stored(out)
    purge = b.used["sqs:purgequeue"]
    assert (purge.first_seen, purge.last_seen, purge.count) == ("2026-07-09T10:00:00Z", "2026-07-09T10:00:00Z", 1)
    assert purge.by_source == {"cloudtrail": SourceUse(1, "2026-07-09T10:00:00Z", "2026-07-09T10:00:00Z")}
    send = b.used["sqs:sendmessage"]
    assert send.count == 12 and send.first_seen == "2026-07-01T10:00:00Z" and send.last_seen == "2026-12-07T10:00:00Z"
    assert b.window_start == "2026-07-01T10:00:00Z"  # the history starts at the first logs
    assert b.coverage["cloudtrail"] == (Interval("2026-07-01T10:00:00Z", "2026-07-10T10:00:00Z"),  # a gap stays
                                        Interval("2026-12-06T10:00:00Z", "2026-12-07T10:00:00Z"))
    doc = json.loads((out / f"{ACCOUNT}_role_batch.json").read_text())
    assert doc["schema"] == "iamgate.baseline/v3"
    assert doc["used"]["sqs:purgequeue"]["by_source"] == {
        "cloudtrail": {"count": 1, "first_seen": "2026-07-09T10:00:00Z", "last_seen": "2026-07-09T10:00:00Z"}}
    assert doc["sources"] == [{"kind": "cloudtrail", "events": 13, "files": 12}]


def test_a_junk_log_in_the_delivery_path_is_an_error(s3, tmp_path):
    t = day("2026-11-01")
    s3.put_object(Bucket="trail", Key=key(t, 0), Body=body(record(t, "SendMessage")))
    s3.put_object(Bucket="trail", Key=key(t, 1), Body=b"this is not a CloudTrail log")
    r = refresh(tmp_path / "out", "s3://trail/AWSLogs/", cwd=tmp_path)
    assert r.returncode == 2
    assert f"{key(t, 1)}: a log file in CloudTrail's delivery path that does not read: not JSON" in r.stderr
    # the good file counted and is not read again; the bad one is retried (and still fails)
    again = refresh(tmp_path / "out", "s3://trail/AWSLogs/", cwd=tmp_path)
    assert again.returncode == 2 and key(t, 1) in again.stderr
    assert stored(tmp_path / "out").used["sqs:sendmessage"].count == 1


def test_a_junk_file_outside_the_delivery_path_is_only_a_note(tmp_path):
    logs = tmp_path / "logs"
    put_local(logs, day("2026-11-01"), record(day("2026-11-01"), "SendMessage"))
    (logs / "notes.json").write_text("not json at all")
    r = refresh(tmp_path / "out", str(logs), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "skipped 1 non-CloudTrail file" in r.stdout


# -- local folders ----------------------------------------------------------------------------------

def test_the_same_logs_read_twice_count_once(tmp_path):
    logs, out = tmp_path / "logs", tmp_path / "out"
    for i, t in enumerate(days("2026-11-01", 3)):
        put_local(logs, t, record(t, "SendMessage"), record(t, "SendMessage"), n=i)
    assert refresh(out, str(logs), cwd=tmp_path).returncode == 0
    before = (out / f"{ACCOUNT}_role_batch.json").read_text()
    again = refresh(out, str(logs), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "no new log files since the last run" in again.stdout
    assert (out / f"{ACCOUNT}_role_batch.json").read_text() == before
    assert stored(out).used["sqs:sendmessage"].count == 6


def test_a_late_delivered_file_is_read_by_the_next_run_and_old_days_are_not_listed(tmp_path):
    logs, out = tmp_path / "logs", tmp_path / "out"
    for i, t in enumerate(days("2026-11-01", 5)):
        put_local(logs, t, record(t, "SendMessage"), n=i)
    assert refresh(out, str(logs), cwd=tmp_path).returncode == 0
    late = day("2026-11-05", hour=23)
    put_local(logs, late, record(late, "PurgeQueue"), n=99)  # into a day already read
    early = day("2026-11-01", hour=23)
    put_local(logs, early, record(early, "DeleteQueue"), n=98)  # before the margin: not looked at again
    r = refresh(out, str(logs), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    b = stored(out)
    assert b.used["sqs:purgequeue"].last_seen == "2026-11-05T23:00:00Z"
    assert "sqs:deletequeue" not in b.used
    assert b.used["sqs:sendmessage"].count == 5
    state = json.loads((out / STATE_FILE).read_text())
    scope = state["scopes"][f"{logs.resolve().as_posix()}|{ACCOUNT}|us-east-1"]
    assert scope["through"] == "2026-11-05" and sorted(scope["recent"]) == ["2026-11-03", "2026-11-04", "2026-11-05"]


def test_replace_starts_afresh(tmp_path):
    logs, out = tmp_path / "logs", tmp_path / "out"
    t = day("2026-07-09")
    put_local(logs, t, record(t, "PurgeQueue"))
    assert refresh(out, str(logs), cwd=tmp_path).returncode == 0
    t2 = day("2026-12-06")
    put_local(logs, t2, record(t2, "SendMessage"))
    r = refresh(out, str(logs), "--replace", "--start", "2026-12-01", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    b = stored(out)
    assert set(b.used) == {"sqs:sendmessage"} and b.window_start == "2026-12-06T10:00:00Z"
    assert b.coverage == {"cloudtrail": (Interval("2026-12-06T10:00:00Z", "2026-12-06T10:00:00Z"),)}


def test_keep_drops_history_older_than_that(tmp_path):
    logs, out = tmp_path / "logs", tmp_path / "out"
    for t in days("2026-07-01", 10):
        put_local(logs, t, record(t, "SendMessage"), *([record(t, "PurgeQueue")] if t.day == 9 else []))
    assert refresh(out, str(logs), cwd=tmp_path).returncode == 0
    for t in days("2026-12-06", 2):
        put_local(logs, t, record(t, "SendMessage"))
    r = refresh(out, str(logs), "--keep", "100", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    b = stored(out)
    assert "sqs:purgequeue" not in b.used  # last seen 150 days before the newest logs
    assert b.coverage["cloudtrail"] == (Interval("2026-12-06T10:00:00Z", "2026-12-07T10:00:00Z"),)
    assert b.window_start == "2026-12-06T10:00:00Z"
    # the count of what is kept stays the whole count: retention drops actions and intervals, not events
    assert b.used["sqs:sendmessage"].last_seen == "2026-12-07T10:00:00Z"


def test_an_idle_principal_is_still_watched(tmp_path):
    logs, out = tmp_path / "logs", tmp_path / "out"
    t = day("2026-11-01")
    put_local(logs, t, record(t, "SendMessage"), record(t, "GetQueueUrl", role="idle"))
    assert refresh(out, str(logs), cwd=tmp_path).returncode == 0
    t2 = day("2026-11-20")
    put_local(logs, t2, record(t2, "SendMessage"))  # only batch acts; idle's account was logged all the same
    assert refresh(out, str(logs), cwd=tmp_path).returncode == 0
    idle = stored(out, IDLE)
    assert idle.coverage["cloudtrail"][-1] == Interval("2026-11-20T10:00:00Z", "2026-11-20T10:00:00Z")
    assert idle.window_end == "2026-11-20T10:00:00Z"
    assert idle.used["sqs:getqueueurl"].last_seen == "2026-11-01T10:00:00Z"


def test_an_interrupted_refresh_leaves_the_old_baseline_and_the_next_run_finishes_it(tmp_path, monkeypatch):
    logs, out = tmp_path / "logs", tmp_path / "out"
    t = day("2026-11-01")
    put_local(logs, t, record(t, "SendMessage"))
    assert refresh(out, str(logs), cwd=tmp_path).returncode == 0
    old = (out / f"{ACCOUNT}_role_batch.json").read_text()
    old_state = (out / STATE_FILE).read_text()
    t2 = day("2026-11-02")
    put_local(logs, t2, record(t2, "PurgeQueue"))

    def killed(out_dir):  # the run dies after recording its refresh, before replacing any baseline
        if (Path(out_dir) / history.JOURNAL).is_file():
            raise KeyboardInterrupt
        return False
    monkeypatch.setattr(history, "redo", killed)
    assert refresh(out, str(logs), cwd=tmp_path).returncode not in (0, 1)
    monkeypatch.undo()
    assert (out / f"{ACCOUNT}_role_batch.json").read_text() == old  # whole, and the old one
    assert (out / STATE_FILE).read_text() == old_state
    assert (out / history.JOURNAL).is_file()

    r = refresh(out, str(logs), cwd=tmp_path)  # finishes the recorded refresh; nothing is read twice
    assert r.returncode == 0, r.stderr
    assert "finished the refresh a stopped run left" in r.stdout
    assert not (out / history.JOURNAL).exists()
    b = stored(out)
    assert b.used["sqs:purgequeue"].count == 1 and b.used["sqs:sendmessage"].count == 1


def test_a_refresh_killed_while_reading_changes_nothing(tmp_path, monkeypatch):
    logs, out = tmp_path / "logs", tmp_path / "out"
    t = day("2026-11-01")
    put_local(logs, t, record(t, "SendMessage"))
    assert refresh(out, str(logs), cwd=tmp_path).returncode == 0
    old = {p.name: p.read_bytes() for p in out.iterdir()}
    put_local(logs, day("2026-11-02"), record(day("2026-11-02"), "PurgeQueue"))
    from iamgate.usage import cloudtrail

    def dies(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(cloudtrail, "scan_many", dies)
    assert refresh(out, str(logs), cwd=tmp_path).returncode not in (0, 1)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == old


def test_a_bad_state_file_is_kept_aside_and_the_run_starts_afresh(tmp_path):
    logs, out = tmp_path / "logs", tmp_path / "out"
    t = day("2026-11-01")
    put_local(logs, t, record(t, "SendMessage"))
    assert refresh(out, str(logs), cwd=tmp_path).returncode == 0
    (out / STATE_FILE).write_text('{"schema": "iamgate.cloudtrail-state/v1", "scopes": {"x": {"through": 3}}}')
    r = refresh(out, str(logs), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "not a valid state file" in r.stderr and (out / (STATE_FILE + ".bad")).is_file()
    assert stored(out).used["sqs:sendmessage"].count == 1  # read again, into a fresh baseline: not twice


def test_keep_must_be_positive(tmp_path):
    (tmp_path / "logs").mkdir()
    r = refresh(tmp_path / "out", str(tmp_path / "logs"), "--keep", "0", cwd=tmp_path)
    assert r.returncode == 2 and "--keep must be at least 1 day" in r.stderr
    r = cli_in_process("usage", "unused-access", "--out", str(tmp_path / "ua"), "--keep", "-1", cwd=tmp_path)
    assert r.returncode == 2 and "--keep must be at least 1 day" in r.stderr


# -- merging each source kind -------------------------------------------------------------------------

def generated(start: str, end: str, *actions: str, job: str = "j") -> dict:
    doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}]}
    return {"jobDetails": {"jobId": job, "status": "SUCCEEDED", "completedOn": end},
            "generatedPolicyResult": {"generatedPolicies": [{"policy": json.dumps(doc)}], "properties": {
                "principalArn": BATCH, "isComplete": True,
                "cloudTrailProperties": {"startTime": start, "endTime": end, "trailProperties": []}}}}


def test_merging_access_analyzer_jobs_keeps_each_window(tmp_path):
    spring = fmt.from_generated_policy(generated("2026-03-01T00:00:00Z", "2026-05-30T00:00:00Z",
                                                 "sqs:PurgeQueue", "sqs:SendMessage"))
    autumn = fmt.from_generated_policy(generated("2026-09-01T00:00:00Z", "2026-11-30T00:00:00Z",
                                                 "sqs:SendMessage", job="k"))
    b = history.merge(history.merge(None, spring), autumn)
    assert b.coverage == {"access-analyzer": (Interval("2026-03-01T00:00:00Z", "2026-05-30T00:00:00Z"),
                                              Interval("2026-09-01T00:00:00Z", "2026-11-30T00:00:00Z"))}
    assert b.used["sqs:purgequeue"].by_source["access-analyzer"] == SourceUse(
        None, "2026-03-01T00:00:00Z", "2026-05-30T00:00:00Z")  # used somewhere in the spring job's window
    assert b.used["sqs:purgequeue"].last_seen is None  # no exact time from policy generation
    assert b.used["sqs:sendmessage"].by_source["access-analyzer"].last_seen == "2026-11-30T00:00:00Z"
    assert (b.window_start, b.window_end) == ("2026-03-01T00:00:00Z", "2026-11-30T00:00:00Z")
    assert b.sources[0]["job_id"] == "k"  # the newest job's entry
    assert history.merge(b, autumn) == b  # the same job merged twice: nothing changes
    fmt.write(b, tmp_path / "b.json")
    assert fmt.load(tmp_path / "b.json").used == b.used


def test_merging_last_accessed_keeps_the_latest_time():
    from iamgate.usage.last_accessed import from_details

    def page(when: str):
        return [{"JobCompletionDate": "2026-12-01T00:00:00Z", "ServicesLastAccessed": [{
            "ServiceNamespace": "sqs", "LastAuthenticated": when,
            "TrackedActionsLastAccessed": [{"ActionName": "PurgeQueue", "LastAccessedTime": when}]}]}]
    july = replace_window(from_details(BATCH, "j1", page("2026-07-09T00:00:00Z")), "2026-04-01", "2026-07-10")
    dec = replace_window(from_details(BATCH, "j2", page("2026-11-30T00:00:00Z")), "2026-09-01", "2026-12-01")
    b = history.merge(history.merge(None, july), dec)
    u = b.used["sqs:purgequeue"]
    assert (u.first_seen, u.last_seen) == ("2026-07-09T00:00:00Z", "2026-11-30T00:00:00Z")
    assert b.coverage["last-accessed"] == (Interval("2026-04-01T00:00:00Z", "2026-07-10T00:00:00Z"),
                                           Interval("2026-09-01T00:00:00Z", "2026-12-01T00:00:00Z"))


def replace_window(b: Baseline, start: str, end: str) -> Baseline:
    from dataclasses import replace
    return replace(b, window_start=f"{start}T00:00:00Z", window_end=f"{end}T00:00:00Z")


def test_merging_unused_access_keeps_the_newest_report_and_every_tracking_period():
    from iamgate.model import UnusedAccessEvidence

    def report(analysed: str, start: str):
        ev = UnusedAccessEvidence(analyzer="arn:aws:access-analyzer:us-east-1:111122223333:analyzer/a",
                                  tracking_days=90, analyzed_at=analysed,
                                  unused_actions={"sqs:purgequeue": None})
        return Baseline(BATCH, start, analysed, sources=({"kind": "unused-access"},), unused_access=ev)
    first = report("2026-06-30T00:00:00Z", "2026-04-01T00:00:00Z")
    second = report("2026-12-01T00:00:00Z", "2026-09-02T00:00:00Z")
    b = history.merge(history.merge(None, first), second)
    assert b.unused_access.analyzed_at == "2026-12-01T00:00:00Z"
    assert b.coverage["unused-access"] == (Interval("2026-04-01T00:00:00Z", "2026-06-30T00:00:00Z"),
                                           Interval("2026-09-02T00:00:00Z", "2026-12-01T00:00:00Z"))
    assert history.merge(b, first).unused_access.analyzed_at == "2026-12-01T00:00:00Z"  # an older report: kept newest


def test_merging_cloudtrail_adds_counts_and_stretches_times():
    def ct(start, end, count, first, last):
        return Baseline(BATCH, start, end, sources=({"kind": "cloudtrail", "events": count, "files": 1},),
                        used={"sqs:sendmessage": UsedAction(count, last, ("cloudtrail",), first_seen=first)},
                        denied={"sqs:deletequeue": {"count": 1, "last_seen": last}})
    a = ct("2026-07-01T00:00:00Z", "2026-07-02T00:00:00Z", 3, "2026-07-01T01:00:00Z", "2026-07-01T05:00:00Z")
    b = ct("2026-07-02T00:00:00Z", "2026-07-03T00:00:00Z", 2, "2026-07-02T01:00:00Z", "2026-07-02T05:00:00Z")
    m = history.merge(history.merge(None, a), b)
    u = m.used["sqs:sendmessage"]
    assert (u.count, u.first_seen, u.last_seen) == (5, "2026-07-01T01:00:00Z", "2026-07-02T05:00:00Z")
    assert m.coverage["cloudtrail"] == (Interval("2026-07-01T00:00:00Z", "2026-07-03T00:00:00Z"),)  # touching: one
    assert m.denied["sqs:deletequeue"] == {"count": 2, "last_seen": "2026-07-02T05:00:00Z"}
    assert m.sources == ({"kind": "cloudtrail", "events": 5, "files": 2},)


def test_a_v1_baseline_merges_as_history_of_its_window():
    old = fmt.parse({"schema": "iamgate.baseline/v1", "principal_arn": BATCH,
                     "window": {"start": "2026-03-01T00:00:00Z", "end": "2026-05-30T00:00:00Z"},
                     "sources": [{"kind": "access-analyzer"}], "used": {"sqs:purgequeue": {}}})
    new = fmt.from_generated_policy(generated("2026-09-01T00:00:00Z", "2026-11-30T00:00:00Z", "sqs:SendMessage"))
    b = history.merge(old, new)
    assert set(b.used) == {"sqs:purgequeue", "sqs:sendmessage"}
    assert len(b.coverage["access-analyzer"]) == 2
    assert fmt.to_v1(b)["schema"] == "iamgate.baseline/v3"
    assert fmt.to_v1(old)["schema"] == "iamgate.baseline/v1"  # no history: still v1


def test_an_older_reader_rejects_v3(tmp_path):
    """v1/v2 readers validate `schema` against their enum: a v3 file is an error there, not misread."""
    b = history.merge(None, fmt.from_generated_policy(generated("2026-09-01T00:00:00Z", "2026-11-30T00:00:00Z",
                                                               "sqs:SendMessage")))
    doc = fmt.to_v1(b)
    schema = json.loads(Path(fmt.__file__).parent.parent.joinpath("data/schemas/baseline.schema.json").read_text())
    assert doc["schema"] not in ("iamgate.baseline/v1", "iamgate.baseline/v2")
    assert "iamgate.baseline/v3" in schema["properties"]["schema"]["enum"]
    assert fmt.parse(doc).coverage == b.coverage


def test_observed_span_counts_days_without_the_gaps():
    b = Baseline(BATCH, coverage={"cloudtrail": (Interval("2026-07-01T00:00:00Z", "2026-07-11T00:00:00Z"),
                                                 Interval("2026-12-01T00:00:00Z", "2026-12-03T00:00:00Z"))})
    assert history.observed_span(b) == {"start": "2026-07-01T00:00:00Z", "end": "2026-12-03T00:00:00Z",
                                        "days": 12.0, "gaps": 1}


# -- Athena -----------------------------------------------------------------------------------------

def test_athena_queries_only_the_partitions_since_the_last_refresh(tmp_path):
    from iamgate.usage.athena import AthenaUsage
    state = ReadState(tmp_path / STATE_FILE)
    now = dt.datetime(2026, 12, 7, 4, 0, tzinfo=dt.timezone.utc)
    first = AthenaUsage("db.trail", output="s3://r/", state=state, now=now)
    assert '"timestamp" >=' not in first.sql and "eventtime < '2026-12-07T03:00:00Z'" in first.sql
    state.athena_read("db.trail", first.end)
    later = AthenaUsage("db.trail", output="s3://r/", state=state, now=now + dt.timedelta(days=1))
    assert "\"timestamp\" >= '2026/12/07'" in later.sql
    assert "eventtime >= '2026-12-07T03:00:00Z'" in later.sql and "eventtime < '2026-12-08T03:00:00Z'" in later.sql


# -- the gate ----------------------------------------------------------------------------------------

def test_the_json_report_shows_each_principals_observed_span(tmp_path):
    from conftest import role_template
    (tmp_path / "app.yaml").write_text(role_template('{Effect: Allow, Action: ["sqs:SendMessage", '
                                                     '"sqs:PurgeQueue"], Resource: "*"}'))
    logs, out = tmp_path / "logs", tmp_path / "baselines"
    for t in days("2026-07-01", 10):
        put_local(logs, t, record(t, "SendMessage", role="app"))
    for t in days("2026-12-06", 2):
        put_local(logs, t, record(t, "SendMessage", role="app"))
    assert refresh(out, str(logs / "AWSLogs" / ACCOUNT / "CloudTrail" / "us-east-1" / "2026" / "07"),
                   cwd=tmp_path).returncode == 0
    assert refresh(out, str(logs / "AWSLogs" / ACCOUNT / "CloudTrail" / "us-east-1" / "2026" / "12"),
                   cwd=tmp_path).returncode == 0
    r = cli_in_process("check", "app.yaml", "--baselines", str(out), "--format", "json", cwd=tmp_path)
    report = json.loads(r.stdout)
    observed = report["principals"][0]["baseline"]["observed"]
    assert observed == {"start": "2026-07-01T10:00:00Z", "end": "2026-12-07T10:00:00Z", "days": 10.0, "gaps": 1}
    import jsonschema
    jsonschema.validate(report, json.loads(Path(fmt.__file__).parent.parent.joinpath(
        "data/schemas/report.schema.json").read_text()))


@pytest.mark.parametrize("max_idle, verdict", [("365d", "used"), ("60d", "unused")])
def test_purgequeue_remembered_150_days_is_judged_by_max_idle(tmp_path, max_idle, verdict):
    """Issue 22's end to end: two refreshes 150 days apart; `iamgate check` with max-idle 365d: used; with 60d:
    unused, and the report names the day it was last used."""
    from conftest import role_template
    (tmp_path / "app.yaml").write_text(role_template('{Effect: Allow, Action: ["sqs:ListQueues", '
                                                     '"sqs:PurgeQueue"], Resource: "*"}'))
    (tmp_path / "iamgate.yml").write_text(f"max-idle: {max_idle}\nmin-observation: 7d\n")
    logs, out = tmp_path / "logs", tmp_path / "baselines"
    for t in days("2026-07-01", 10):
        put_local(logs, t, record(t, "ListQueues", role="app"), *([record(t, "PurgeQueue", role="app")]
                                                                 if t.day == 9 else []))
    assert refresh(out, str(logs), cwd=tmp_path).returncode == 0
    for path in logs.rglob("*.json.gz"):
        path.write_bytes(b"junk")  # read already: never opened again
    for t in days("2026-12-01", 7):
        put_local(logs, t, record(t, "ListQueues", role="app"))
    second = refresh(out, str(logs), cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    r = cli_in_process("check", "app.yaml", "--baselines", str(out), "--config", "iamgate.yml", "--format", "json",
                       cwd=tmp_path)
    report = expanded(json.loads(r.stdout))
    [app] = report["principals"]
    assert "sqs:purgequeue" in app["actions"][verdict], app["actions"]
    if verdict == "unused":
        [reason] = [r for r, acts in app["reasons"]["unused"].items() if "sqs:purgequeue" in acts]
        assert "last used 2026-07-09" in reason, reason


def test_a_refreshs_resources_join_the_stored_ones():
    """Issue 23's resources and issue 22's history together: each refresh's ARNs join the stored ones."""
    def ct(arn, when):
        return Baseline(BATCH, when, when, sources=({"kind": "cloudtrail", "events": 1, "files": 1},),
                        used={"sqs:purgequeue": UsedAction(1, when, ("cloudtrail",), first_seen=when,
                                                           resources=(arn,))})
    q1 = "arn:aws:sqs:us-east-1:111122223333:q1"
    q2 = "arn:aws:sqs:us-east-1:111122223333:q2"
    b = history.merge(history.merge(None, ct(q1, "2026-07-09T00:00:00Z")), ct(q2, "2026-12-01T00:00:00Z"))
    assert set(b.used["sqs:purgequeue"].resources) == {q1, q2} and b.used["sqs:purgequeue"].count == 2
