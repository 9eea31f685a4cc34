"""`min-observation`, `max-idle` and `deploy-lag`: config keys, CLI flags, Action inputs, weakening changes;
and `fix` never removes a too_recent action (issue 20 item 5)."""
from __future__ import annotations

import json
from iamgate.formats.json import expanded

import pytest
from conftest import cli_in_process, role_template, write_json

from iamgate.action.config_changes import compare, markdown
from iamgate.action.inputs import InputError, Inputs
from iamgate.config import Config, ConfigError, parse
from iamgate.reference.catalog import load_catalog

TEMPLATE = role_template('{Effect: Allow, Action: ["sqs:CreateQueue", "sqs:DeleteQueue"], Resource: "*"}')


def baseline(start: str, used=None) -> dict:
    return {"schema": "iamgate.baseline/v1", "principal_arn": "arn:aws:iam::111122223333:role/app",
            "window": {"start": start, "end": "2026-11-22T00:00:00Z"},
            "sources": [{"kind": "cloudtrail", "events": 10, "files": 1}],
            "used": used or {"sqs:createqueue": {"count": 1, "signals": ["cloudtrail"],
                                                 "last_seen": "2026-11-20T00:00:00Z"}}}


def test_config_keys_default_validate_and_parse():
    assert (Config().min_observation_days, Config().max_idle_days, Config().deploy_lag_days) == (30, 90, 0)
    c = parse({"min-observation": "14d", "max-idle": "365d", "deploy-lag": "2d"})
    assert (c.min_observation_days, c.max_idle_days, c.deploy_lag_days) == (14, 365, 2)
    assert parse({"deploy-lag": "0"}).deploy_lag_days == 0
    for bad in ("30", "30 days", "-1d", "1y", "d"):
        with pytest.raises(ConfigError, match="max-idle"):
            parse({"max-idle": bad}, ".iamgate.yml")


def test_flags_override_the_config_and_a_short_window_is_too_recent(tmp_path):
    (tmp_path / "t.yaml").write_text(TEMPLATE)
    write_json(tmp_path / "b" / "app.json", baseline("2026-11-12T00:00:00Z"))  # 10 days watched
    args = ("check", "t.yaml", "--baselines", "b", "--format", "json", "--fail-on", "never")
    role = expanded(json.loads(cli_in_process(*args, cwd=tmp_path).stdout))["principals"][0]
    assert role["actions"]["too_recent"] == ["sqs:deletequeue"] and role["actions"]["unused"] == []
    assert role["reasons"]["too_recent"] == {"watched since 2026-11-12; judged from 2026-12-12": ["sqs:deletequeue"]}
    role = expanded(json.loads(cli_in_process(*args, "--min-observation", "7d", cwd=tmp_path).stdout))["principals"][0]
    assert role["actions"]["unused"] == ["sqs:deletequeue"]
    (tmp_path / ".iamgate.yml").write_text("min-observation: 7d\n")
    role = expanded(json.loads(cli_in_process(*args, cwd=tmp_path).stdout))["principals"][0]
    assert role["actions"]["unused"] == ["sqs:deletequeue"]
    bad = cli_in_process(*args, "--max-idle", "soon", cwd=tmp_path)
    assert bad.returncode == 2 and "--max-idle" in bad.stderr and "Traceback" not in bad.stderr


def test_max_idle_from_the_config(tmp_path):
    (tmp_path / "t.yaml").write_text(TEMPLATE)
    write_json(tmp_path / "b" / "app.json", baseline("2026-01-01T00:00:00Z", {
        "sqs:createqueue": {"count": 1, "signals": ["cloudtrail"], "last_seen": "2026-06-25T00:00:00Z"}}))
    args = ("check", "t.yaml", "--baselines", "b", "--format", "json", "--fail-on", "never")
    role = expanded(json.loads(cli_in_process(*args, cwd=tmp_path).stdout))["principals"][0]
    assert role["reasons"]["unused"]["last used 2026-06-25, 150 days ago"] == ["sqs:createqueue"]
    role = expanded(json.loads(cli_in_process(*args, "--max-idle", "365d", cwd=tmp_path).stdout))["principals"][0]
    assert role["actions"]["used"] == ["sqs:createqueue"]


def test_fix_never_removes_a_too_recent_action(tmp_path):
    (tmp_path / "t.yaml").write_text(TEMPLATE)
    write_json(tmp_path / "b" / "app.json", baseline("2026-11-12T00:00:00Z", {}))
    fixed = cli_in_process("fix", "t.yaml", "--baselines", "b", cwd=tmp_path)
    assert fixed.returncode == 0 and fixed.stdout == ""  # both too recent: nothing to drop
    fixed = cli_in_process("fix", "t.yaml", "--baselines", "b", "--min-observation", "5d", cwd=tmp_path)
    assert "-" in fixed.stdout and "sqs:DeleteQueue" in fixed.stdout


def test_action_inputs_pass_the_rules_and_check_them():
    i = Inputs.from_env({"INPUT_MIN_OBSERVATION": "14d", "INPUT_MAX_IDLE": " 365d ", "INPUT_DEPLOY_LAG": ""})
    assert (i.min_observation, i.max_idle, i.deploy_lag) == ("14d", "365d", None)
    with pytest.raises(InputError, match="min-observation"):
        Inputs.from_env({"INPUT_MIN_OBSERVATION": "two weeks"})


def test_raising_a_time_rule_weakens_the_gate():
    cat = load_catalog()
    base = parse({"min-observation": "30d"})
    assert compare(base, parse({"min-observation": "14d", "max-idle": "60d"}), cat) == []  # stricter
    got = compare(base, parse({"min-observation": "60d", "max-idle": "365d", "deploy-lag": "3d"}), cat)
    assert [(w.kind, w.subject, w.detail) for w in got] == [
        ("time-rule-raised", "min-observation", "30d → 60d"), ("time-rule-raised", "max-idle", "90d → 365d"),
        ("time-rule-raised", "deploy-lag", "0d → 3d")]
    assert "grants judged unused later" in markdown(got)


def test_the_action_passes_its_time_inputs_to_the_gate(tmp_path):
    from fixtures.github.fake_api import FakeGitHub
    from test_action_entrypoint import run_action, workspace
    with FakeGitHub() as api:
        run = run_action(tmp_path, workspace(tmp_path, high=True), api, **{"min-observation": "9999d"})
    assert run.code == 0, run.stderr  # watched less than 9999 days: too recent, nothing unused
    assert run.outputs["unused-actions"] == "0"
    report = expanded(json.loads(open(run.outputs["report-json"]).read()))
    assert any(p["actions"]["too_recent"] for p in report["principals"])
    bad = run_action(tmp_path, workspace(tmp_path / "second"), None, **{"max-idle": "a while"})
    assert bad.code == 2 and "max-idle" in (bad.stdout + bad.stderr)


def test_the_pipeline_takes_a_grant_history_per_principal(tmp_path):
    """The one place grant history enters: `analyse(..., history={principal id: GrantHistory})`."""
    from iamgate.model import GrantHistory
    from iamgate.pipeline import analyse
    (tmp_path / "t.yaml").write_text(TEMPLATE)
    write_json(tmp_path / "b" / "app.json", baseline("2026-06-01T00:00:00Z"))
    history = {"AppRole": GrantHistory(True, new=frozenset({"sqs:deletequeue"}))}
    rep = analyse([str(tmp_path / "t.yaml")], [str(tmp_path / "b")], Config(), base=str(tmp_path), history=history)
    (r,) = rep.results
    assert r.actions("new") == ["sqs:deletequeue"] and r.history is history["AppRole"]
    assert [d.name for d in r.deployments] == ["111122223333"] and r.baseline is r.deployments[0].baseline
    shallow = {"AppRole": GrantHistory(False, note="grant history unknown: shallow clone; use fetch-depth: 0")}
    rep = analyse([str(tmp_path / "t.yaml")], [str(tmp_path / "b")], Config(), base=str(tmp_path), history=shallow)
    assert "grant history unknown: shallow clone; use fetch-depth: 0" in rep.results[0].notes
    assert rep.results[0].actions("unused") == ["sqs:deletequeue"]  # today's verdicts
