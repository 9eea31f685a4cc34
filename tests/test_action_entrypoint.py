"""End to end: entrypoint.py as a subprocess, a fixture event, temporary GITHUB_OUTPUT and
GITHUB_STEP_SUMMARY files, and a local HTTP server standing in for the GitHub API."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from iamgate.formats.comment import MAX_BODY_BYTES, MAX_BODY_CHARS, marker
from iamgate.formats.json import expanded

from conftest import FIXTURES, ROOT
from fixtures.github.fake_api import FakeGitHub
from test_diff import git, make_repo, pr_change

GH = FIXTURES / "github"
ENTRYPOINT = ROOT / "entrypoint.py"
HIGH_GRANT = ("[sqs:SendMessage, sqs:GetQueueAttributes]",
              "[sqs:SendMessage, sqs:GetQueueAttributes, iam:PutRolePolicy]")


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    outputs: dict
    summary: str

    def annotations(self, level: str) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.startswith(f"::{level}")]


def parse_outputs(text: str) -> dict:
    out, lines = {}, iter(text.splitlines())
    for line in lines:
        name, _, delim = line.partition("<<")
        value = []
        for v in lines:
            if v == delim:
                break
            value.append(v)
        out[name] = "\n".join(value)
    return out


def run_action(tmp_path: Path, workspace: Path, api: FakeGitHub | None = None, base_sha: str = "",
               github: bool = True, head_sha: str = "", **inputs: str) -> Run:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "INPUT_", "RUNNER_"))}
    run_dir = tmp_path / f"run{len(list(tmp_path.glob('run*')))}"
    run_dir.mkdir()
    if github:
        event = run_dir / "event.json"
        text = (GH / "event-pull_request.json").read_text().replace("BASE_SHA", base_sha)
        event.write_text(text.replace("1" * 40, head_sha) if head_sha else text)
        env.update({"GITHUB_ACTIONS": "true", "GITHUB_EVENT_PATH": str(event), "GITHUB_EVENT_NAME": "pull_request",
                    "GITHUB_REPOSITORY": "acme/infra", "GITHUB_SERVER_URL": "https://github.example",
                    "GITHUB_RUN_ID": "4242", "GITHUB_WORKSPACE": str(workspace), "GITHUB_STEP_SUMMARY": str(run_dir / "summary.md"),
                    "GITHUB_OUTPUT": str(run_dir / "output.txt"), "RUNNER_TEMP": str(run_dir),
                    "GITHUB_API_URL": api.url if api else "http://127.0.0.1:9", "INPUT_GITHUB_TOKEN": "test-token"})
        defaults = {"paths": "infra", "baselines": str(GH / "baselines"), "fail-on": "high", "soft-fail": "false",
                    "diff-only": "false", "comment": "update", "annotations": "true", "sarif-file": "", "config": ""}
        for name, value in {**defaults, **inputs}.items():
            env["INPUT_" + name.upper().replace("-", "_")] = value
    else:
        env.update({"INPUT_" + k.upper().replace("-", "_"): v for k, v in inputs.items()})
    proc = subprocess.run([sys.executable, "-I", str(ENTRYPOINT)], cwd=workspace, env=env, capture_output=True,
                          text=True, timeout=120)
    read = lambda name: (run_dir / name).read_text() if (run_dir / name).exists() else ""  # noqa: E731
    return Run(proc.returncode, proc.stdout, proc.stderr, parse_outputs(read("output.txt")), read("summary.md"))


def workspace(tmp_path: Path, high: bool = False, name: str = "app.yaml") -> Path:
    ws = tmp_path / "ws"
    (ws / "infra").mkdir(parents=True)
    text = (GH / "infra" / "app.yaml").read_text()
    (ws / "infra" / name).write_text(text.replace(*HIGH_GRANT) if high else text)
    return ws


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_two_runs_leave_one_sticky_comment_found_on_a_late_page_and_updated_in_place(tmp_path):
    ws = workspace(tmp_path)
    ours = marker(None, ["infra"])
    with FakeGitHub() as api:
        for i in range(230):
            api.add_comment(f"LGTM {i}")
        stale = api.add_comment(ours + "\nstale report from an earlier push", "github-actions[bot]")
        api.add_comment(marker("other.yml", ["infra"]) + "\na matrix sibling's comment", "github-actions[bot]")
        for i in range(15):
            api.add_comment(f"later {i}")
        first = run_action(tmp_path, ws, api)
        second = run_action(tmp_path, ws, api, **{"fail-on": "low"})
    assert (first.code, second.code) == (0, 1)
    marked = api.marked(ours)
    assert len(marked) == 1 and marked[0]["id"] == stale["id"]
    body = marked[0]["body"]
    assert "stale report" not in body and "Gate failed" in body  # the second run's verdict
    assert "a matrix sibling's comment" in api.comments[231]["body"]  # left alone
    assert not [1 for method, _ in api.requests if method == "POST"]
    gets = [p for method, p in api.requests if method == "GET" and p != "/user"]
    assert len(gets) == 6 and all("per_page=100" in p for p in gets)  # three pages per run
    assert "@octocat" not in body and "@\u200boctocat" in body  # no mention fires


def test_outputs_and_exit_code_when_the_gate_passes(tmp_path):
    with FakeGitHub() as api:
        run = run_action(tmp_path, workspace(tmp_path), api)
    assert run.code == 0, run.stderr
    o = run.outputs
    assert (o["result"], o["findings"], o["new-findings"], o["unused-actions"], o["sarif-file"]) == (
        "pass", "1", "1", "1", "")
    raw = json.loads(Path(o["report-json"]).read_text())
    assert raw["schema"] == "iamgate.report/v2"
    report = expanded(raw)
    assert report["gate"]["result"] == "pass" and report["findings"][0]["actions"] == ["dynamodb:describetable"]
    assert "Gate passed" in run.summary
    assert Path(o["comment-file"]).read_text() == api.comments[0]["body"]
    assert len(api.comments) == 1  # a finding below fail-on is still worth a comment


@pytest.mark.parametrize("soft_fail, code", [("false", 1), ("true", 0)])
def test_outputs_and_exit_code_when_the_gate_fails(tmp_path, soft_fail, code):
    with FakeGitHub() as api:
        run = run_action(tmp_path, workspace(tmp_path, high=True), api, **{"soft-fail": soft_fail})
    assert run.code == code, run.stderr
    assert (run.outputs["result"], run.outputs["findings"], run.outputs["unused-actions"]) == ("fail", "2", "2")
    assert "Gate failed" in run.summary and "Gate failed" in api.comments[0]["body"]
    assert ("soft-fail is set" in run.stdout) == (soft_fail == "true")


def test_report_json_version_1_is_kept_for_one_release(tmp_path):
    with FakeGitHub() as api:
        run = run_action(tmp_path, workspace(tmp_path), api, **{"report-json-version": "1"})
    assert run.code == 0, run.stderr
    report = json.loads(Path(run.outputs["report-json"]).read_text())
    assert report["schema"] == "iamgate.report/v1" and report["findings"][0]["actions"] == ["dynamodb:describetable"]
    with FakeGitHub() as api:
        bad = run_action(tmp_path, workspace(tmp_path / "again"), api, **{"report-json-version": "3"})
    assert bad.code == 2 and "report-json-version" in bad.stdout + bad.stderr


def test_a_403_on_comment_and_sarif_falls_back_to_summary_and_annotations(tmp_path):
    ws = workspace(tmp_path)
    with FakeGitHub() as api:
        api.forbid_writes = True
        run = run_action(tmp_path, ws, api, **{"sarif-file": "out/iamgate.sarif"})
    assert run.code == 0, run.stderr
    assert run.outputs["result"] == "pass" and run.outputs["sarif-file"] == "out/iamgate.sarif"
    assert json.loads((ws / "out" / "iamgate.sarif").read_text())["version"] == "2.1.0"
    notes = [a for a in run.annotations("warning") if "cannot write" in a]
    assert len(notes) == 1 and "from the fork contributor/infra" in notes[0]
    assert run.summary.count("cannot write") == 1
    assert api.comments == []


def test_annotations_sit_on_the_statement_line_with_escaped_properties(tmp_path):
    ws = workspace(tmp_path, high=True, name="we,ird:name%.yaml")
    run = run_action(tmp_path, ws, None, comment="off")
    assert run.code == 1
    line = line_of(ws / "infra" / "we,ird:name%.yaml", "Sid: Queue")
    errors = run.annotations("error")
    assert errors == [f"::error file=infra/we%2Cird%3Aname%25.yaml,line={line},title=iamgate privilege-escalation "
                      "(critical)::AppRole: privilege escalation via PutRolePolicy (Write an arbitrary inline policy "
                      "on the role you are running as (or any role you can use)); completed by unused "
                      "iam:PutRolePolicy: iam:PutRolePolicy"]
    history, warnings = [], []
    for w in run.annotations("warning"):
        (history if "grant history" in w else warnings).append(w)
    assert len(warnings) == 1 and "dynamodb:DescribeTable" in warnings[0]
    assert len(history) == 1 and "history not read" in history[0]  # said once, not per principal


def many_principals(ws: Path, n: int = 500) -> Path:
    """A template with n roles with unused grants of every severity, all mapped to one baseline."""
    resources = {}
    for i in range(n):
        resources[f"Role{i:03d}"] = {"Type": "AWS::IAM::Role", "Properties": {
            "RoleName": f"svc-{i:03d}", "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": []},
            "Policies": [{"PolicyName": "p", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Sid": "Data", "Effect": "Allow", "Resource": "*",
                 "Action": ["dynamodb:GetItem", "dynamodb:DeleteTable", "dynamodb:DescribeTable"]},
                {"Sid": "Admin", "Effect": "Allow", "Resource": "*",
                 "Action": ["iam:PutRolePolicy", "iam:AttachRolePolicy", "sqs:CreateQueue", "sqs:DeleteQueue"]},
            ]}}]}}
    (ws / "infra").mkdir(parents=True, exist_ok=True)
    (ws / "infra" / "many.json").write_text(json.dumps({"AWSTemplateFormatVersion": "2010-09-09",
                                                        "Resources": resources}, indent=1))
    (ws / "baselines").mkdir()
    (ws / "baselines" / "svc.json").write_text(json.dumps({
        "schema": "iamgate.baseline/v1", "principal_arn": "arn:aws:iam::111122223333:role/svc",
        "window": {"start": "2026-08-24T00:00:00Z", "end": "2026-11-22T00:00:00Z"},
        "sources": [{"kind": "cloudtrail"}], "used": {"dynamodb:getitem": {"count": 1}}}))
    mapping = "".join(f"  Role{i:03d}: arn:aws:iam::111122223333:role/svc\n" for i in range(n))
    (ws / "iamgate.yml").write_text("principals:\n" + mapping)
    return ws / "baselines"


def test_500_principals_fit_the_comment_limits_and_annotations_are_capped(tmp_path):
    ws = tmp_path / "ws"
    baselines = many_principals(ws)
    with FakeGitHub() as api:
        run = run_action(tmp_path, ws, api, baselines=str(baselines), config="iamgate.yml")
    assert run.code == 1, run.stderr
    body = api.comments[0]["body"]
    assert len(body) <= MAX_BODY_CHARS and len(body.encode()) <= MAX_BODY_BYTES
    assert body.startswith(marker("iamgate.yml", ["infra"]) + "\n")
    assert "https://github.example/acme/infra/actions/runs/4242" in body  # the link to the job summary
    table = [line for line in body.splitlines() if line.startswith("|")]
    assert table and all(line.endswith("|") for line in table)  # nothing cut mid-row
    assert len(run.summary.encode()) < 1024 * 1024
    assert run.summary.count("<details>") == 500  # the summary has every principal
    errors, warnings, notices = (run.annotations(lvl) for lvl in ("error", "warning", "notice"))
    assert len(errors) == 10 and len(warnings) == 10 and len(notices) == 1
    assert re.search(r"::notice title=iamgate%3A more findings::(\d+) more iamgate annotations not shown "
                     r"\((\d+) errors, (\d+) warnings\)", notices[0])
    hidden = int(re.search(r"::(\d+) more", notices[0]).group(1))
    assert hidden == int(run.outputs["findings"]) + 1 - 20  # and one note: grant history not read
    assert all("(high" in e or "(critical" in e for e in errors)


def test_diff_only_fails_on_new_findings_and_explains_the_changes(tmp_path):
    repo = make_repo(tmp_path)
    base = git(repo, "rev-parse", "HEAD").strip()
    pr_change(repo)
    git(repo, "commit", "-qam", "pr")
    with FakeGitHub() as api:
        run = run_action(tmp_path, repo, api, base_sha=base, **{"diff-only": "true", "sarif-file": "x.sarif"})
    assert run.code == 1, run.stderr
    assert (run.outputs["findings"], run.outputs["new-findings"]) == ("2", "1")
    body = api.comments[0]["body"]
    assert "New grants, not yet observable" in body and "`iam:PutRolePolicy`" in body
    assert "Removing grants in use" in body and "`dynamodb:PutItem`" in body
    assert "Lines changed by this PR" in body
    warnings = [w for w in run.annotations("warning") if "removes a used grant" in w]
    assert len(warnings) == 1 and "dynamodb:PutItem" in warnings[0]
    states = {r["ruleId"] + ":" + ",".join(r["properties"]["actions"]): r["baselineState"]
              for r in json.loads((repo / "x.sarif").read_text())["runs"][0]["results"]}
    assert states == {"privilege-escalation:iam:putrolepolicy": "new",
                      "unused-actions:dynamodb:describetable": "unchanged"}


def test_diff_only_without_the_base_commit_says_so_and_counts_everything(tmp_path):
    repo = make_repo(tmp_path)
    with FakeGitHub() as api:
        run = run_action(tmp_path, repo, api, base_sha="ab" * 20, **{"diff-only": "true", "config-from": "head"})
    assert run.code == 0
    assert "fetch-depth: 0" in run.summary and run.outputs["new-findings"] == "1"


def test_without_the_base_commit_the_configuration_cannot_be_trusted_so_the_run_is_an_error(tmp_path):
    repo = make_repo(tmp_path)
    with FakeGitHub() as api:
        run = run_action(tmp_path, repo, api, base_sha="ab" * 20)
    assert run.code == 2 and run.outputs["result"] == "error"
    assert "config-from: base needs the base commit abababababab" in run.stderr and "Traceback" not in run.stderr
    assert "could not run" in run.summary and "fetch-depth: 0" in run.summary
    assert api.comments == []


def test_runs_outside_github_too(tmp_path):
    ws = workspace(tmp_path, high=True)
    run = run_action(tmp_path, ws, github=False, paths="infra", baselines=str(GH / "baselines"))
    assert run.code == 1 and "FAIL" in run.stdout and "::error" not in run.stdout


def test_a_bad_input_is_a_clear_error(tmp_path):
    run = run_action(tmp_path, workspace(tmp_path), None, **{"fail-on": "severe"})
    assert run.code == 2 and "input fail-on" in run.stderr and "Traceback" not in run.stderr
    assert run.outputs["result"] == "error"  # could not decide: never "fail", let alone "pass"
    missing = run_action(tmp_path, workspace(tmp_path / "b"), None, paths="nowhere")
    assert missing.code == 2 and "nowhere" in missing.stderr and "Traceback" not in missing.stderr
    assert "could not run" in missing.summary
    unwritable = run_action(tmp_path, workspace(tmp_path / "c"), None, **{"sarif-file": "/proc/nope/x.sarif"})
    assert unwritable.code == 2 and "input sarif-file" in unwritable.stderr and "Traceback" not in unwritable.stderr
