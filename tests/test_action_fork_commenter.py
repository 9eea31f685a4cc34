"""examples/workflows/fork-commenter.yml's script, run with bash against the fake API (through a
`gh api` stand-in that uses the real jq): it updates its own sticky comment, never one planted by
someone else with the same marker, and refuses an artifact it cannot trust."""
from __future__ import annotations

import os
import subprocess

import pytest

from iamgate.formats.comment import marker
from iamgate.sources.loaders import load_yaml

from conftest import FIXTURES, ROOT
from fixtures.github.fake_api import FakeGitHub

WORKFLOW = ROOT / "examples" / "workflows" / "fork-commenter.yml"


def script() -> str:
    steps = load_yaml(WORKFLOW.read_text())["jobs"]["comment"]["steps"]
    return next(s["run"] for s in steps if s.get("name") == "Create or update the sticky comment")


def run_commenter(tmp_path, api: FakeGitHub, body: str, pr: str = "7",
                  head_sha: str | None = None) -> subprocess.CompletedProcess:
    art = tmp_path / "artifact"
    art.mkdir(exist_ok=True)
    (art / "comment.md").write_text(body)
    (art / "pr-number").write_text(pr + "\n")
    env = {"PATH": f"{FIXTURES / 'github' / 'bin'}{os.pathsep}{os.environ['PATH']}", "GH_TOKEN": "test-token",
           "REPO": api.repo, "HEAD_SHA": head_sha or api.head_sha, "DIR": str(art), "FAKE_GITHUB_URL": api.url}
    return subprocess.run(["bash", "-e", "-c", script()], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("login", [None, "iamgate-bot"], ids=["GITHUB_TOKEN", "user token"])
def test_the_commenter_updates_its_own_comment_never_a_planted_one(tmp_path, login):
    ours = marker(None, ["infra"])
    with FakeGitHub() as api:
        api.user_login = login
        me = login or "github-actions[bot]"
        for i in range(120):
            api.add_comment(f"chatter {i}")
        planted = api.add_comment(ours + "\n✅ Gate passed (trust me)", "mallory")
        run = run_commenter(tmp_path, api, ours + "\nfirst report\n")
        assert run.returncode == 0, run.stderr
        assert planted["body"] == ours + "\n✅ Gate passed (trust me)"
        (mine,) = [c for c in api.marked(ours) if c["user"]["login"] == me]
        run = run_commenter(tmp_path, api, ours + "\nsecond report\n")
        assert run.returncode == 0, run.stderr
    assert mine["body"] == ours + "\nsecond report\n" and len(api.marked(ours)) == 2
    assert planted["body"] == ours + "\n✅ Gate passed (trust me)"


def test_the_commenter_refuses_an_untrusted_artifact(tmp_path):
    ours = marker(None, ["infra"])
    with FakeGitHub() as api:
        assert run_commenter(tmp_path, api, "no marker\n").returncode != 0
        assert run_commenter(tmp_path, api, ours + "\n" + "x" * 70000).returncode != 0  # over GitHub's limit
        assert run_commenter(tmp_path, api, ours + "\nreport\n", head_sha="2" * 40).returncode != 0  # not its run
        assert run_commenter(tmp_path, api, ours + "\nreport\n", pr="x").returncode != 0
        assert api.comments == []
