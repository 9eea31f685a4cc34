"""`iamgate check` end to end on a deploy role with every kind of risk: ranked, once each, with reasons."""
from __future__ import annotations

import json

from conftest import FIXTURES, ROOT, run_cli
from iamgate.formats.json import expanded

APP = FIXTURES / "risk" / "app"


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_a_deploy_role_is_ranked_by_risk_with_each_action_once():
    r = run_cli("check", str(APP / "infra"), "--baselines", str(APP / "baselines"), "--config",
                str(APP / "iamgate.yml"), "--format", "json", cwd=ROOT)
    assert r.returncode == 1, r.stderr
    rep = expanded(json.loads(r.stdout))
    template = (APP / "infra" / "template.yaml").read_text()
    got = {(f["check"], f["severity"], tuple(f["actions"]), f["line"]) for f in rep["findings"]}
    assert got == {
        ("privilege-escalation", "critical", ("lambda:updatefunctioncode",), line_of(template, "Sid: Functions")),
        ("passrole-wildcard", "high", ("iam:passrole",), line_of(template, "Sid: PassAnyRole")),
        ("credential-exposure", "high", ("ec2:getpassworddata",), line_of(template, "Sid: Config")),
        ("resource-exposure", "high", ("s3:putbucketpolicy",), line_of(template, "Sid: Bucket")),
        ("data-exfiltration", "medium", ("ssm:getparameter",), line_of(template, "Sid: Config")),
        # PassRole is unobservable and CreateFunction used: shown, not critical
        ("privilege-escalation", "info", (), line_of(template, "Sid: PassAnyRole")),
        ("allowlist-expired", "medium", ("s3:PutBucketPolicy",), None),
    }
    assert all(f["reason"] for f in rep["findings"])  # every finding names its check and its reason
    quiet = next(f for f in rep["findings"] if f["check"] == "privilege-escalation" and f["severity"] == "info")
    assert quiet["message"].endswith("(every action used, unobservable or allowlisted): PassExistingRoleToNewLambda")
    # the active allowlist entry suppresses, and nothing is left to unused-actions
    assert [(f["check"], f["actions"]) for f in rep["suppressed"]] == [("unused-actions", ["ec2:describeinstances"])]
    assert rep["gate"]["result"] == "fail"
