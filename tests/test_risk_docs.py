"""docs/risk.md is generated from the risk data, the severity rules and the checks: it cannot drift."""
from __future__ import annotations

import importlib.util
from dataclasses import replace

from conftest import ROOT
from iamgate.judge import risk

_spec = importlib.util.spec_from_file_location("render_risk_docs", ROOT / "scripts" / "render_risk_docs.py")
render_risk_docs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render_risk_docs)


def test_docs_risk_md_is_up_to_date():
    current = (ROOT / "docs" / "risk.md").read_text(encoding="utf-8")
    assert current == render_risk_docs.render(), "docs/risk.md is stale: run python scripts/render_risk_docs.py"
    assert render_risk_docs.main(["--check"]) == 0


def test_docs_name_every_combination_list_action_and_severity_rule():
    text = render_risk_docs.render()
    data = risk.load()
    assert all(f"| `{c.id}` |" in text for c in data.combinations)
    assert all(f"`{a}`" in text for lst in data.lists.values() for a in lst.actions)
    rows = render_risk_docs.severity_rows()
    assert ("critical", "privilege-escalation", "an escalation combination is granted and completed by an unused "
            "action (or completed by a new action)") in rows
    assert {r[0] for r in rows if r[1] == "unused-actions"} == {"high", "medium", "low"}
    assert {r[0] for r in rows if r[1] == "new-grants"} == {"high", "medium", "low"}  # one rule, new or unused


def test_a_change_in_the_data_makes_the_docs_stale(monkeypatch, capsys):
    data = risk.load()
    changed = replace(data, combinations=data.combinations[:-1])
    monkeypatch.setattr(risk, "load", lambda: changed)
    assert render_risk_docs.main(["--check"]) == 1
    assert "stale" in capsys.readouterr().err
