"""docs/github-action.md shows the example workflows verbatim, and the example comment renders."""
from __future__ import annotations

import importlib.util
import re

from conftest import ROOT

DOC = ROOT / "docs" / "github-action.md"


def test_docs_show_both_workflows_verbatim_with_their_permissions():
    doc = DOC.read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", doc, re.S)
    for name in ("pr-gate.yml", "fork-commenter.yml"):
        assert (ROOT / "examples" / "workflows" / name).read_text() in blocks, name
    for permission in ("contents: read", "pull-requests: write", "actions: read", "security-events: write"):
        assert f"`{permission}`" in doc


def test_example_comment_renders_from_examples(capsys):
    spec = importlib.util.spec_from_file_location("render_example_comment", ROOT / "scripts/render_example_comment.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--stdout"]) == 0
    body = capsys.readouterr().out
    assert body.startswith("<!-- iamgate:comment ")
    for part in ("Gate failed", "New grants, not yet observable", "Removing grants in use",
                 "Lines changed by this PR", "Baseline window", "Action catalog"):
        assert part in body, part
    assert "<!-- iamgate:comment " in DOC.read_text()  # the doc holds a rendered copy
