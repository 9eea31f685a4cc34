"""Annotations (escaping, the per-level cap) and the sticky comment's marker and size budget."""
from __future__ import annotations

import re

from iamgate.formats.comment import MAX_BODY_BYTES, MAX_BODY_CHARS, comment_body, marker, title
from iamgate.config import Config
from iamgate.formats.github import Annotation, render_annotations
from iamgate.pipeline import analyse

from conftest import FIXTURES

GH = FIXTURES / "github"


def test_workflow_command_escaping():
    a = Annotation("error", "100% bad\r\nsecond line :: still data", "t: a, b", "dir/a,b:c%.yaml", 12)
    assert a.command() == ("::error file=dir/a%2Cb%3Ac%25.yaml,line=12,title=t%3A a%2C b::"
                           "100%25 bad%0D%0Asecond line :: still data")
    assert Annotation("notice", "no place").command() == "::notice::no place"


def test_at_most_ten_per_level_worst_first_then_one_notice():
    items = ([Annotation("error", f"e{i}", rank=i) for i in range(15)]
             + [Annotation("warning", f"w{i}") for i in range(3)]
             + [Annotation("notice", f"n{i}", rank=i) for i in range(12)])
    lines = render_annotations(items).splitlines()
    errors = [x for x in lines if x.startswith("::error")]
    notices = [x for x in lines if x.startswith("::notice")]
    assert errors == [f"::error::e{i}" for i in range(14, 4, -1)]  # the worst ten
    assert len([x for x in lines if x.startswith("::warning")]) == 3
    assert len(notices) == 10 and notices[:9] == [f"::notice::n{i}" for i in range(11, 2, -1)]
    assert re.fullmatch(r"::notice title=iamgate%3A more findings::8 more iamgate annotations not shown "
                        r"\(5 errors, 3 notices\); see the job summary for the full report", notices[-1])


def test_no_overflow_notice_when_everything_fits():
    items = [Annotation(lvl, lvl) for lvl in ("error", "warning", "notice") for _ in range(10)]
    assert "more iamgate" not in render_annotations(items)
    assert render_annotations([]) == ""


def test_marker_is_keyed_by_config_and_paths():
    assert marker(None, ["infra", "stacks"]) == marker(None, ["stacks", "infra"])
    assert marker(None, ["infra"]) != marker("prod.yml", ["infra"]) != marker(None, ["stacks"])
    assert marker(None, ["."]).startswith("<!-- iamgate:comment ") and marker(None, ["."]).endswith(" -->")
    assert title(None, ["."]) == "iamgate least-privilege report"
    assert title("a_b.yml", ["infra/[x]"]) == "iamgate least-privilege report: infra/\\[x\\] (config a\\_b.yml)"


def test_all_clear_comment_says_so(monkeypatch):
    monkeypatch.chdir(GH)
    cfg = Config(disable=("unused-actions",))
    report = analyse(["infra"], ["baselines"], cfg)
    body = comment_body(report, marker(None, ["infra"]), "t", notes=["a note"])
    assert body.splitlines()[:2] == [marker(None, ["infra"]), "> a note"]
    assert "Gate passed**: no findings" in body


def test_comment_budget_counts_the_marker_and_notes(monkeypatch):
    monkeypatch.chdir(GH)
    report = analyse(["infra"], ["baselines"], Config())
    full = comment_body(report, "<!-- m -->", "t")
    note = "é" * (MAX_BODY_CHARS - len(full) + 100)  # with this note the full report no longer fits
    body = comment_body(report, "<!-- m -->", "t", "https://example/run", notes=[note])
    assert len(body) <= MAX_BODY_CHARS and len(body.encode()) <= MAX_BODY_BYTES
    assert note in body and "[job summary](https://example/run)" in body
