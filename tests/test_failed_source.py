"""A baseline whose last-accessed step failed (the baseline job records `{"kind": "last-accessed",
"error": …}` in its `sources`): every format says so per principal, and the failed source covers
nothing, so it never makes an action `unused`."""
from __future__ import annotations

import json

import pytest

from conftest import cli_in_process
from test_fail_closed import ROLE
from iamgate.judge.verdicts import decide, default_observability
from iamgate.model import Baseline, UsedAction
from iamgate.formats.json import expanded

ROLE_ARN = "arn:aws:iam::111122223333:role/app"
ERROR = "AccessDenied: not authorized to perform iam:GenerateServiceLastAccessedDetails"
TRACKED_ONLY = "applicationinsights:createapplication"  # last accessed tracks it, Access Analyzer does not report it
TEMPLATE = ROLE.replace('"s3:GetObject"', "[sqs:SendMessage, sqs:DeleteQueue, applicationinsights:CreateApplication]")
FAILED = {"kind": "last-accessed", "error": ERROR, "failed_at": "2026-11-22T00:00:00Z"}
NOTE = f"IAM last accessed failed: {ERROR}; its verdicts rest on the other sources"


def baseline(*sources) -> dict:
    return {"schema": "iamgate.baseline/v1", "principal_arn": ROLE_ARN,
            "window": {"start": "2026-08-24T00:00:00Z", "end": "2026-11-22T00:00:00Z"},
            "sources": list(sources), "used": {"sqs:sendmessage": {"count": 3, "signals": ["access-analyzer"]}}}


@pytest.fixture
def ws(tmp_path):
    (tmp_path / "app.yaml").write_text(TEMPLATE)
    (tmp_path / "baselines").mkdir()
    return tmp_path


def check(ws, *sources, fmt="json"):
    (ws / "baselines" / "app.json").write_text(json.dumps(baseline(*sources)))
    return cli_in_process("check", "app.yaml", "--baselines", "baselines", "--format", fmt, "--fail-on", "never",
                          "--color", "never", cwd=ws)


def test_a_failed_last_accessed_source_covers_nothing_and_is_noted_in_every_format(ws):
    aa = {"kind": "access-analyzer", "complete": True}
    r = check(ws, aa, FAILED)
    assert r.returncode == 0, r.stderr
    (p,) = expanded(json.loads(r.stdout))["principals"]
    assert p["actions"]["unused"] == ["sqs:deletequeue"]
    assert p["reasons"]["unobservable"] == {"Access Analyzer does not report this action": [TRACKED_ONLY]}
    assert NOTE in p["notes"]
    text = check(ws, aa, FAILED, fmt="text").stdout
    assert f"note: {NOTE}" in text and "via IAM Access Analyzer policy generation; IAM last accessed (failed)" in text
    markdown = check(ws, aa, FAILED, fmt="markdown").stdout.replace("\\", "")
    assert f"⚠️ {NOTE}" in markdown and "IAM last accessed (failed)" in markdown
    # the same baseline with a working last-accessed source: it covers the tracked action
    (p,) = expanded(json.loads(check(ws, aa, {"kind": "last-accessed"}).stdout))["principals"]
    assert TRACKED_ONLY in p["actions"]["unused"] and not any("failed" in n for n in p["notes"])


def test_a_baseline_whose_only_source_failed_judges_nothing(ws):
    r = check(ws, FAILED)
    report = expanded(json.loads(r.stdout))
    assert (report["gate"]["judged"], report["gate"]["nothing_judged"]) == (0, True)  # require-usage-data fails it
    (p,) = report["principals"]
    assert p["actions"]["used"] == ["sqs:sendmessage"]  # what was recorded still counts
    assert p["actions"]["no_usage_data"] == [TRACKED_ONLY, "sqs:deletequeue"]
    assert p["actions"]["unused"] == []
    assert f"IAM last accessed failed: {ERROR}; no other source: its grants have no usage data" in p["notes"]


def test_decide_skips_a_failed_source(catalog):
    obs = default_observability(catalog)
    b = Baseline(ROLE_ARN, sources=({"kind": "cloudtrail"}, FAILED), used={"sqs:sendmessage": UsedAction()})
    assert b.source_kinds == {"cloudtrail"} and b.failed_sources == (FAILED,)
    assert decide("sqs:deletequeue", b, obs) == ("unused", "not observed in the window")  # CloudTrail covers it
