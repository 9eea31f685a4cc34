"""Every format shows the time and deployment verdicts: new, too_recent with its date, where the principal
was judged and where a partly used action was used, and the note when grant history is unknown."""
from __future__ import annotations

import json
from importlib import resources

import jsonschema
from iamgate.formats.json import expanded
import pytest

from iamgate.config import Config
from iamgate.formats import FORMATS
from iamgate.judge.evidence import judge
from iamgate.judge.verdicts import Observability
from iamgate.model import (
    Baseline,
    Deployment,
    Evidence,
    GrantHistory,
    Location,
    Policy,
    Principal,
    Statement,
    UsedAction,
)
from iamgate.pipeline import Report, run_checks
from iamgate.reference import support

END = "2026-12-02T00:00:00Z"


def ct(account, used=()):
    return Baseline(f"arn:aws:iam::{account}:role/worker", window_start="2026-06-01T00:00:00Z", window_end=END,
                    sources=({"kind": "cloudtrail", "events": 10},),
                    used={a: UsedAction(1, "2026-11-30T00:00:00Z", ("cloudtrail",)) for a in used})


@pytest.fixture(scope="module")
def report(catalog):
    obs = Observability(catalog, support=support.shipped())
    st = Statement("Allow", ("sqs:createqueue", "sqs:deletequeue", "sqs:purgequeue", "s3:putbucketpolicy"), (),
                   ("*",), location=Location("worker.yaml", 9))
    p = Principal("Worker", "role", name="worker", policies=(Policy("p", (st,)),), location=Location("worker.yaml", 2))
    history = GrantHistory(True, new=frozenset({"s3:putbucketpolicy"}),
                           since=(("2026-11-28", frozenset({"sqs:purgequeue"})),))
    deps = (Deployment("staging", "111111111111", ct("111111111111", ("sqs:createqueue",))),
            Deployment("prod", "222222222222", ct("222222222222", ("sqs:createqueue", "sqs:deletequeue"))))
    r = judge(Evidence(p, deps, history), catalog, obs)
    shallow = Principal("Other", "role", name="other", policies=(Policy("p", (st,)),))
    r2 = judge(Evidence(shallow, (), GrantHistory(False, note="grant history unknown: a shallow clone; "
                                                   "check out with fetch-depth: 0")), catalog, obs)
    findings, _ = run_checks([r, r2], [], catalog, Config())
    return Report(catalog=catalog.info(), results=(r, r2), findings=tuple(findings))


def test_json_lists_new_and_too_recent_and_validates(report):
    data = json.loads(FORMATS.get("json")().render(report))
    schema = json.loads(resources.files("iamgate").joinpath("data/schemas/report.schema.json").read_text())
    jsonschema.validate(data, schema)
    data = expanded(data)
    w = data["principals"][0]
    assert w["actions"]["new"] == ["s3:putbucketpolicy"] and w["actions"]["too_recent"] == ["sqs:purgequeue"]
    assert w["actions"]["used"] == ["sqs:createqueue", "sqs:deletequeue"] and w["actions"]["unused"] == []
    assert w["reasons"]["too_recent"] == {"granted 2026-11-28; judged from 2026-12-28": ["sqs:purgequeue"]}
    assert [d["name"] for d in w["deployments"]] == ["staging", "prod"]
    assert {"deployments": ["prod"], "actions": ["sqs:deletequeue"]} in w["used_in"]
    assert w["judged"]["new"] == 1 and w["judged"]["too_recent"] == 1
    assert data["principals"][1]["history"]["known"] is False
    assert any("history" in n for n in data["principals"][1]["notes"])
    assert any(f["check"] == "resource-exposure" and f["actions"] == ["s3:putbucketpolicy"]
               and f["message"].startswith("1 new action") for f in data["findings"])
    assert data["gate"]["result"] == "fail"  # the new resource exposure


@pytest.mark.parametrize("fmt", ["text", "markdown", "sarif", "github"])
def test_every_format_says_it(report, fmt):
    out = FORMATS.get(fmt)().render(report).replace("\\", "")  # Markdown escapes parentheses
    assert "judged from 2026-12-28" in out
    assert "judged in staging (111111111111) and prod (222222222222)" in out
    assert "used only in prod" in out and "DeleteQueue" in out
    assert "fetch-depth: 0" in out  # the history note
    assert "1 new action (resource exposure)" in out
