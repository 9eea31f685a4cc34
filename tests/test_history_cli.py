"""Grant history through `iamgate check` and `iamgate fix` (issue 20): computed by itself inside a clone with full
history, said to be unknown in every format where it cannot be read, and `fix --diff-base`."""
from __future__ import annotations

import json

import pytest

from conftest import cli_in_process
from test_history import END, MID, OLD, PR, RECENT, build, git

FORMATS = ("text", "json", "markdown", "sarif", "github")


def baseline(repo):
    folder = repo.parent / "baselines"
    folder.mkdir(exist_ok=True)
    (folder / "ingest.json").write_text(json.dumps({
        "schema": "iamgate.baseline/v1", "principal_arn": "arn:aws:iam::111122223333:role/ingest",
        "window": {"start": "2026-08-24T00:00:00Z", "end": f"{END.isoformat()}T00:00:00Z"},
        "sources": [{"kind": "cloudtrail", "events": 10, "files": 1}],
        "used": {"logs:putlogevents": {"count": 1, "last_seen": "2026-11-20T00:00:00Z"}}}))
    return str(folder)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_shallow_clone_gives_a_full_report_with_the_history_note(tmp_path, fmt, history_on):
    origin = build(tmp_path / "origin", "cfn")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{origin}", str(clone))
    got = cli_in_process("check", "infra", "--baselines", baseline(clone), "--format", fmt, cwd=clone)
    assert got.returncode in (0, 1), got.stderr
    assert "Traceback" not in got.stderr
    assert "shallow clone" in got.stdout and "history" in got.stdout and "fetch-depth: 0" in got.stdout
    assert "ingest" in got.stdout.lower()  # the report is there, not only the note
    full = cli_in_process("check", "infra", "--baselines", baseline(clone), "--format", fmt, "--no-history",
                          cwd=clone)
    assert full.returncode == got.returncode  # today's verdicts: the note changes no verdict


def test_outside_git_the_report_says_so(tmp_path, history_on):
    plain = tmp_path / "plain"
    (plain / "infra").mkdir(parents=True)
    (plain / "infra/app.yaml").write_text((build(tmp_path / "repo", "cfn") / "infra/app.yaml").read_text())
    got = cli_in_process("check", "infra", "--baselines", baseline(plain), "--format", "json", cwd=plain)
    notes = json.loads(got.stdout)["notes"]
    assert any("not inside a git repository" in n and "history" in n for n in notes)


def test_with_full_history_there_is_no_note_and_no_history_says_so(tmp_path, history_on):
    repo = build(tmp_path / "repo", "cfn")
    got = cli_in_process("check", "infra", "--baselines", baseline(repo), "--format", "json", cwd=repo)
    assert got.returncode in (0, 1) and not any("history" in n for n in json.loads(got.stdout)["notes"])
    off = cli_in_process("check", "infra", "--baselines", baseline(repo), "--format", "json", "--no-history",
                         cwd=repo)
    assert any("grant history not read" in n for n in json.loads(off.stdout)["notes"])


def test_fix_takes_a_diff_base_and_a_missing_one_is_a_usage_error(tmp_path, history_on):
    repo = build(tmp_path / "repo", "cfn")
    ok = cli_in_process("fix", "infra", "--baselines", baseline(repo), "--diff-base", "main", cwd=repo)
    assert ok.returncode == 0, ok.stderr
    bad = cli_in_process("check", "infra", "--baselines", baseline(repo), "--diff-base", "nope", cwd=repo)
    assert bad.returncode == 2 and "nope" in bad.stderr and "Traceback" not in bad.stderr


def test_the_pipeline_hands_each_principal_its_history(tmp_path, monkeypatch):
    from iamgate.config import Config
    from iamgate.history import HistoryRequest
    from iamgate.pipeline import analyse
    repo = build(tmp_path / "repo", "cfn")
    monkeypatch.chdir(repo)
    seen = {}

    def request(principals, baselines, options, catalog):
        seen.update(HistoryRequest(("infra",), diff_base="main")(principals, baselines, options, catalog))
        seen["baselines"] = baselines
        return {k: v for k, v in seen.items() if k != "baselines"}
    report = analyse(["infra"], [baseline(repo)], Config(), history=request)
    assert report.history_notes == ()
    h = seen["IngestRole"]
    assert h.known and h.new == {a.lower() for a in PR}
    assert {a for _, acts in h.since for a in acts} == {a.lower() for a in (OLD, MID, RECENT, *PR)}
    assert [b.principal_arn for b in seen["baselines"]["IngestRole"]] == ["arn:aws:iam::111122223333:role/ingest"]
