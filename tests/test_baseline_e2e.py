"""`iamgate baseline` through everything a scheduled job meets, over real HTTP on 127.0.0.1 only:
Access Analyzer from the local stand-in (with injected faults), IAM last accessed from a local
stand-in that forwards the rest of IAM to moto, STS from moto. In order: a quota stop, throttling,
an expired token while polling, three 503s while polling, a `kill -9` of a real `python -m iamgate`
process, and a last-accessed denial. Across all of it no principal's job is started twice and
every finished baseline is kept."""
from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from fixtures.aws.fake_access_analyzer import FakeAccessAnalyzer
from fixtures.aws.fake_last_accessed import FakeLastAccessed
from fixtures.aws.helpers import ACCESS_ROLE, ACCOUNT, TRAIL, aws_env, moto_server
from iamgate.usage import baseline_format as fmt
from iamgate.cli import main
from iamgate.usage.baseline_job import STATE_FILE
from iamgate.usage.run_lock import LOCK_FILE

NAMES = ("ingest", "billing", "reports", "exporter")
P1, P2, P3, P4 = (f"arn:aws:iam::{ACCOUNT}:role/{n}" for n in NAMES)
ACTIONS = {P1: ["s3:GetObject"], P2: ["sqs:SendMessage"], P3: ["dynamodb:GetItem"], P4: ["sns:Publish"]}
T = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
SERVICES = [{"ServiceName": "Amazon S3", "ServiceNamespace": "s3", "LastAuthenticated": T,
             "TotalAuthenticatedEntities": 1,
             "TrackedActionsLastAccessed": [{"ActionName": "PutObject", "LastAccessedTime": T}]},
            {"ServiceName": "Amazon SQS", "ServiceNamespace": "sqs", "TotalAuthenticatedEntities": 0}]


@pytest.fixture
def stack(tmp_path, monkeypatch):
    with moto_server() as url, FakeAccessAnalyzer(actions=ACTIONS) as aa, \
            FakeLastAccessed(url, services={p: SERVICES for p in ACTIONS}) as iam:
        aws_env(monkeypatch, url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_ACCESSANALYZER", aa.url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_IAM", iam.url)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's own retries off: every fault reaches iamgate
        monkeypatch.setenv("IAMGATE_DELAY_SCALE", "0.002")
        monkeypatch.chdir(tmp_path)
        yield aa, iam, tmp_path / "baselines"


def argv(out):
    return ["baseline", "--trail", TRAIL, "--access-role", ACCESS_ROLE, "--out", str(out), "--days", "30",
            "--no-managed-policies", *[a for p in (P1, P2, P3, P4) for a in ("--principal", p)]]


def starts(aa) -> dict[str, int]:
    """Jobs that exist, per principal: a second one would be a second paid job."""
    out: dict[str, int] = {}
    for job in aa.jobs.values():
        out[job.principal_arn] = out.get(job.principal_arn, 0) + 1
    return out


def kept(out, *principals) -> None:
    for p in principals:
        b = fmt.load(out / f"{p.rsplit('/', 1)[-1]}.json")
        assert b.principal_arn == p and {a.lower() for a in ACTIONS[p]} <= set(b.used), p


def state(out) -> dict:
    return json.loads((out / STATE_FILE).read_text())


def test_a_week_of_bad_days(stack, capsys):
    aa, iam, out = stack

    # 1. the quota: the first job runs, the second start is refused -> stop, exit 2, P1 kept
    aa.inject("StartPolicyGeneration", aa.ok(),
              aa.error("ServiceQuotaExceededException", "Exceeded the daily policy generation quota"))
    assert main(argv(out)) == 2
    err = capsys.readouterr().err
    assert "policy generation quota exceeded" in err and "1 baseline(s) written" in err and "internal error" not in err
    assert state(out)["stopped"]["reason"] == "quota" and state(out)["stopped"]["left"] == [P2, P3, P4]
    kept(out, P1)

    # 2. throttling on the start, then an expired token while polling: the job is left running, recorded
    aa.inject("StartPolicyGeneration", aa.error("ThrottlingException", "Rate exceeded"),
              aa.error("ThrottlingException", "Rate exceeded"))
    aa.inject("GetGeneratedPolicy", aa.error("ExpiredTokenException", "The security token included in the request "
                                                                      "is expired"))
    assert main(argv(out)) == 2
    err = capsys.readouterr().err
    assert "stopped: GetGeneratedPolicy: ExpiredTokenException" in err and "1 fresh (skipped)" in err
    p2_job = state(out)["pending"][P2]["job_id"]
    assert aa.jobs[p2_job].status == "IN_PROGRESS" and "CancelPolicyGeneration" not in aa.operations()
    kept(out, P1)

    # 3. a real process: collects P2's job through three 503s, starts P3's, and is killed with -9 mid-poll
    aa.inject("GetGeneratedPolicy", aa.status(503), aa.status(503), aa.status(503))
    aa.hold.add(P3)
    proc = subprocess.Popen([sys.executable, "-m", "iamgate", *argv(out)], env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            p3 = next((j for j in aa.jobs.values() if j.principal_arn == P3), None)
            if p3 is not None and p3.polls >= 2 and (out / STATE_FILE).is_file() and P3 in state(out)["pending"]:
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.02)
        else:
            pytest.fail("the child never polled P3's job")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert [r.status for r in aa.requests if r.status == 503] == [503] * 3
    assert (out / LOCK_FILE).is_file()  # a killed run cannot remove its lock
    kept(out, P1, P2)
    assert state(out)["pending"][P3]["job_id"] == p3.job_id

    # 4. the next run breaks the stale lock, collects P3's job (not a new one), and last accessed is
    #    denied for P4 by an SCP: the baseline is kept, the failure is counted and recorded
    aa.hold.clear()
    iam.deny.add(P4)
    assert main(argv(out)) == 2
    err = capsys.readouterr().err
    assert "breaking a stale lock" in err and "is gone" in err
    assert "2 baseline(s) written, 2 fresh (skipped), 0 failed, 1 last-accessed failed" in err
    assert "internal error" not in err and not (out / LOCK_FILE).exists()
    p4 = json.loads((out / "exporter.json").read_text())
    la = [s for s in p4["sources"] if s["kind"] == "last-accessed"]
    assert len(la) == 1 and "AccessDenied" in la[0]["error"] and "service control policy" in la[0]["error"]
    assert P4 in state(out)["last_accessed_failed"]
    kept(out, P1, P2, P3, P4)

    # 5. the SCP is lifted: Access Analyzer is fresh everywhere, but P4's last accessed is retried
    iam.deny.clear()
    assert main(argv(out)) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "0 failed, 0 last-accessed failed" in err and "0 job(s) started" in err
    p4 = json.loads((out / "exporter.json").read_text())
    assert [s["kind"] for s in p4["sources"]] == ["access-analyzer", "last-accessed"]
    assert "error" not in p4["sources"][1] and "s3:putobject" in p4["used"]
    assert state(out)["last_accessed_failed"] == {} and state(out)["pending"] == {}
    kept(out, P1, P2, P3, P4)

    assert starts(aa) == {P1: 1, P2: 1, P3: 1, P4: 1}  # no principal's job was started twice
    assert all(j.status == "SUCCEEDED" for j in aa.jobs.values())
    assert [c for c in iam.calls if c == ("GenerateServiceLastAccessedDetails", P4)] == [
        ("GenerateServiceLastAccessedDetails", P4)] * 2
