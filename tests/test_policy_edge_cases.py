"""Edge cases where a wrong reading would hide risk: unresolved NotAction/Condition, wide ARNs."""
from __future__ import annotations

import json
import textwrap

from conftest import run_cli
from iamgate.formats.json import expanded


def check_json(tmp_path, text: str, *args: str) -> dict:
    (tmp_path / "t.yaml").write_text(textwrap.dedent(text))
    r = run_cli("check", "t.yaml", "--format", "json", *args, cwd=tmp_path)
    assert r.returncode in (0, 1, 2) and "Traceback" not in r.stderr, r.stderr
    return expanded(json.loads(r.stdout))


ROLE = """\
Parameters:
  Excluded: {Type: String}
  Cond: {Type: String}
Resources:
  B: {Type: AWS::S3::Bucket}
  R:
    Type: AWS::IAM::Role
    Properties:
      Policies:
        - PolicyName: p
          PolicyDocument:
            Statement:
%s
"""


def statements(*lines: str) -> str:
    return ROLE % "\n".join("              " + line for line in lines)


def test_unresolved_not_action_is_read_as_excluding_less(tmp_path, catalog):
    rep = check_json(tmp_path, statements('- {Effect: Allow, NotAction: [!Ref Excluded, "iam:*"], Resource: "*"}'))
    granted = rep["principals"][0]["actions"]["granted"]
    assert len(granted) == len(catalog.all_actions) - len(catalog.service_actions("iam"))
    assert any("NotAction cannot be resolved" in u["message"] and "grants more" in u["message"]
               for u in rep["unresolved"])


def test_unresolved_condition_keeps_a_deny_conditional(tmp_path):
    rep = check_json(tmp_path, statements('- {Effect: Allow, Action: "s3:*", Resource: "*"}',
                                          '- {Effect: Deny, Action: "s3:Delete*", Resource: "*", Condition: !Ref Cond}'))
    assert "s3:deleteobject" in rep["principals"][0]["actions"]["granted"]
    assert any("Condition cannot be resolved" in u["message"] for u in rep["unresolved"])


def test_getatt_inside_a_condition_reaches_the_json_report(tmp_path):
    rep = check_json(tmp_path, statements(
        '- {Effect: Allow, Action: "s3:GetObject", Resource: "*", Condition: {ArnEquals: {"aws:SourceArn": !GetAtt B.Arn}}}'))
    st = rep["principals"][0]["policies"][0]["statements"][0]
    assert st["condition"] == {"ArnEquals": {"aws:SourceArn": "${B.Arn}"}}


def test_wide_arn_patterns_count_as_every_resource(tmp_path):
    rep = check_json(tmp_path, statements('- {Effect: Allow, Action: "*", Resource: "arn:*"}',
                                          '- {Effect: Allow, Action: "iam:PassRole", Resource: "arn:aws:iam::*:role/*"}'))
    checks = {f["check"]: f["severity"] for f in rep["findings"]}
    assert checks["admin-wildcard"] == "critical" and checks["passrole-wildcard"] == "high"
    narrow = check_json(tmp_path, statements(
        '- {Effect: Allow, Action: "iam:PassRole", Resource: "arn:aws:iam::*:role/app-*"}'))
    assert "passrole-wildcard" not in {f["check"] for f in narrow["findings"]}
