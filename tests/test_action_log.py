"""Repository text in the step log can never act as a workflow command."""
from __future__ import annotations

import re

from test_action_entrypoint import run_action, workspace


def test_the_text_report_is_fenced_by_stop_commands(tmp_path):
    ws = workspace(tmp_path)
    (ws / "infra" / "evil.json").write_text(
        '{"Version": "2012-10-17", "Statement": [{"Sid": "x", "Effect": "Allow", "Action": "s3:GetObject",'
        ' "Resource": "*"}]}')
    (ws / "infra" / "::stop-commands::pwned.json").write_text((ws / "infra" / "evil.json").read_text())
    run = run_action(tmp_path, ws, None, comment="off")
    fence = re.search(r"^::stop-commands::([0-9a-f]{32})$", run.stdout, re.M)
    assert fence, run.stdout
    token = fence.group(1)
    inside = run.stdout.split(fence.group(0), 1)[1].split(f"::{token}::", 1)[0]
    assert "pwned" in inside  # the hostile name is only ever printed inside the fence
    outside = run.stdout.replace(inside, "")
    for line in outside.splitlines():  # every command outside the fence is one of ours
        if line.startswith("::"):
            command = line[2:].split("::", 1)[0].split(" ", 1)[0]
            assert command in ("stop-commands", token, "error", "warning", "notice"), line


def test_the_log_fences_stdout_and_keeps_each_stderr_message_on_one_line():
    import io
    import sys

    from iamgate.action.log import WorkflowLog
    out, err = io.StringIO(), io.StringIO()
    with WorkflowLog(out, err) as log:
        print("report line\n::add-mask::secret\r::set-output name=a::b")
        print("iamgate: error: key x\n::stop-commands::pwned", file=sys.stderr)
        sys.stderr.write("  ##[add-mask]y\n")
        log.command("::notice::ours")
    lines = out.getvalue().splitlines()
    assert lines[0] == f"::stop-commands::{log.token}" and lines[-2:] == [f"::{log.token}::", "::notice::ours"]
    assert lines[1:4] == ["report line", "%3A%3Aadd-mask::secret", "%3A%3Aset-output name=a::b"]
    assert err.getvalue().splitlines() == ["iamgate: error: key x%0A::stop-commands::pwned", "  %23%23[add-mask]y"]
    assert log.errors() == ["iamgate: error: key x\n::stop-commands::pwned"]
