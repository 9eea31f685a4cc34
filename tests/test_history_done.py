"""Issue 20's "Done when", end to end through the CLI, in CloudFormation and Terraform: a repository whose history
grants actions 200, 70 and 4 days before the baseline's window end, and a PR that adds two more."""
from __future__ import annotations

import json
import re

import pytest

from conftest import cli_in_process
from iamgate.formats.json import expanded
from test_history import MID, OLD, PR, RECENT, build, day
from test_history_cli import baseline


def check(repo, *args):
    got = cli_in_process("check", "infra", "--baselines", baseline(repo), "--format", "json", *args, cwd=repo)
    assert got.returncode in (0, 1), got.stderr
    (p,) = expanded(json.loads(got.stdout))["principals"]
    return p


def lower(*actions):
    return sorted(a.lower() for a in actions)


@pytest.mark.parametrize("kind", ["cfn", "tf"])
def test_new_too_recent_and_unused_from_the_repositorys_history(tmp_path, kind, history_on):
    repo = build(tmp_path / "repo", kind)
    p = check(repo, "--diff-base", "main")
    assert p["actions"]["new"] == lower(*PR)
    assert p["actions"]["too_recent"] == lower(RECENT)
    assert p["actions"]["unused"] == lower(OLD, MID)
    reasons = " ".join(p["reasons"]["unused"])
    assert f"since it was granted on {day(70).isoformat()}" in reasons  # the real period, not the window
    # without --diff-base, history alone keeps the 4-day and PR grants out of unused
    p = check(repo)
    assert p["actions"]["new"] == [] and p["actions"]["too_recent"] == lower(RECENT, *PR)
    assert p["actions"]["unused"] == lower(OLD, MID)


@pytest.mark.parametrize("kind", ["cfn", "tf"])
def test_fix_with_the_diff_base_drops_only_the_old_unused_grants(tmp_path, kind, history_on):
    repo = build(tmp_path / "repo", kind)
    got = cli_in_process("fix", "infra", "--baselines", baseline(repo), "--diff-base", "main", cwd=repo)
    assert got.returncode == 0, got.stderr

    def named(lines):
        text = "\n".join(lines).lower()
        return {a.lower() for a in (OLD, MID, RECENT, *PR) if re.search(re.escape(a.lower()) + r"\b", text)}
    removed = named(line for line in got.stdout.splitlines() if line.startswith("-") and not line.startswith("---"))
    added = named(line for line in got.stdout.splitlines() if line.startswith("+") and not line.startswith("+++"))
    assert removed - added == set(lower(OLD, MID))
