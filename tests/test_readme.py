"""The README stays true: two quick-start commands, CI runs its test command, workflows verbatim."""
from __future__ import annotations

import re

from conftest import ROOT

README = (ROOT / "README.md").read_text()


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [b.strip() for b in re.findall(r"```sh\n(.*?)```", section, re.S)]


def test_quick_start_has_exactly_two_commands_and_ci_runs_the_test_one():
    install_and_run, install_and_test = quick_start_commands()
    assert "\n" not in install_and_run and "\n" not in install_and_test
    assert install_and_run.startswith("pip install ") and "iamgate check examples/" in install_and_run
    assert "pytest" in install_and_test
    ci = (ROOT / ".ci" / "run").read_text()
    assert install_and_test in ci.splitlines()


def test_both_workflows_are_shown_verbatim():
    blocks = re.findall(r"```yaml\n(.*?)```", README, re.S)
    for name in ("pr-gate.yml", "baseline-refresh.yml"):
        assert (ROOT / "examples" / "workflows" / name).read_text() in blocks, name
    for permission in ("contents: read", "pull-requests: write", "id-token: write", "contents: write"):
        assert f"`{permission}`" in README


def test_rendered_comment_is_in_the_readme():
    body = README.split("<!-- example-comment:start -->", 1)[1].split("<!-- example-comment:end -->", 1)[0]
    assert "<!-- iamgate:comment " in body and "Gate failed" in body and "█" in body


def test_every_check_and_command_is_documented():
    from iamgate.checks import CHECKS
    from iamgate.commands import COMMANDS
    for name in CHECKS.names():
        assert f"`{name}`" in README, name
    for name in COMMANDS.names():
        assert f"`iamgate {name}" in README, name
