"""The Action's `result` output, the comment and summary headline and the exit code come from the
core's one decision (`Report.result`), so they agree in every combination of an unreadable input,
a failing finding and require-usage-data with nothing judged."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from fixtures.github.fake_api import FakeGitHub
from test_action_entrypoint import run_action, workspace

ADMIN = """AWSTemplateFormatVersion: "2010-09-09"
Resources:
  AdminRole:
    Type: AWS::IAM::Role
    Properties:
      RoleName: admin
      Policies:
        - PolicyName: all
          PolicyDocument:
            Statement:
              - {Effect: Allow, Action: "*", Resource: "*"}
"""
HEADLINE = {"pass": "Gate passed", "fail": "Gate failed", "error": "Could not decide"}


def expected(unreadable: bool, failing: bool, unmet: bool) -> str:
    if failing:
        return "fail"  # a failing finding decides, whatever else could not be read
    if unreadable:
        return "error"  # the unreadable input may be the usage: neither pass nor "nothing judged"
    return "fail" if unmet else "pass"


@pytest.mark.parametrize("unreadable, failing, unmet, soft_fail",
                         [(*c, False) for c in itertools.product((False, True), repeat=3)]
                         + [(True, False, True, True), (False, False, True, True)])
def test_result_headline_and_exit_code_agree(tmp_path, unreadable, failing, unmet, soft_fail):
    ws = workspace(tmp_path)
    if unreadable:
        (ws / "infra" / "broken.yaml").write_text('AWSTemplateFormatVersion: "2010-09-09"\nResources: [\n')
    if failing:
        (ws / "infra" / "admin.yaml").write_text(ADMIN)
    inputs = {"soft-fail": str(soft_fail).lower()}
    if unmet:
        (ws / "empty-baselines").mkdir()
        inputs.update({"baselines": "empty-baselines", "require-usage-data": "true"})
    with FakeGitHub() as api:
        run = run_action(tmp_path, ws, api, **inputs)
    want = expected(unreadable, failing, unmet)
    report = json.loads(Path(run.outputs["report-json"]).read_text())
    assert report["gate"]["result"] == want
    assert run.outputs["result"] == want
    assert run.code == {"pass": 0, "fail": 0 if soft_fail else 1, "error": 2}[want], run.stderr
    for text in (run.summary, api.comments[0]["body"]):
        shown = [word for word in HEADLINE.values() if word in text]
        assert shown == [HEADLINE[want]], (want, shown)
    assert ("could not decide" in run.stderr) == (want == "error")


def report(unreadable: bool, failing: bool, unmet: bool):
    from types import SimpleNamespace

    from iamgate.model import Finding, ScanError
    from iamgate.pipeline import Report
    return Report(catalog={}, results=(SimpleNamespace(baseline=None if unmet else object()),),
                  findings=(Finding("admin-wildcard", "critical", "AdminRole", ("*",), None, "*"),) if failing else (),
                  errors=(ScanError("infra/broken.yaml", 2, "does not parse"),) if unreadable else (),
                  require_usage_data=unmet)


@pytest.mark.parametrize("case", list(itertools.product((False, True), repeat=3)))
def test_the_result_output_is_the_reports_own(case):
    from iamgate.action.outputs import result
    r = report(*case)
    assert r.result == expected(*case)
    for code in (0, 1, 2):  # whatever the CLI's code, the output is never a decision the report did not make
        assert result(r, code) == (r.result if code == r.exit_code else "error")
    assert result(None, 0) == "error"
