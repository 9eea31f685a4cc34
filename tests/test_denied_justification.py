"""A PR that adds exactly a grant the principal was denied shows "justified by N denied calls"."""
from __future__ import annotations

from conftest import write_json
from iamgate.config import Config
from iamgate.diff import compare_reports
from iamgate.formats.markdown import MarkdownReport
from iamgate.pipeline import analyse


def policy(actions):
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}


def test_new_grant_justified_by_denied_calls(tmp_path):
    write_json(tmp_path / "base" / "p.json", policy(["s3:ListBucket"]))
    write_json(tmp_path / "head" / "p.json", policy(["s3:ListBucket", "s3:GetObject", "s3:DeleteBucket"]))
    write_json(tmp_path / "b" / "app.json", {
        "schema": "iamgate.baseline/v1", "principal_arn": "arn:aws:iam::1:role/app",
        "sources": [{"kind": "cloudtrail"}], "data_events_observed": ["s3"],
        "used": {"s3:listbucket": {"count": 9}},
        "denied": {"s3:getobject": {"count": 37, "last_seen": "2026-11-02T00:00:00Z"}}})
    cfg = Config(principals={"p.json": "app"})
    head = analyse([str(tmp_path / "head" / "p.json")], [str(tmp_path / "b")], cfg, base=str(tmp_path / "head"))
    base = analyse([str(tmp_path / "base" / "p.json")], [str(tmp_path / "b")], cfg, base=str(tmp_path / "base"))
    comp = compare_reports(head, base, "main", "abc", {})
    # one risk model: GetObject on * is data exfiltration (medium), DeleteBucket is Write (medium): one row
    (g,) = comp.new_grants
    assert set(g.actions) == {"s3:getobject", "s3:deletebucket"} and g.severity == "medium"
    assert g.justified == ("s3:getobject",) and g.denied_calls == 37
    from dataclasses import replace
    text = MarkdownReport(replace(head, comparison=comp, new_keys=comp.new_keys)).render()
    assert "justified by 37 denied calls" in text
