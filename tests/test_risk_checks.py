"""The risk checks and their ranking: one finding per unused action, at the most severe check that applies."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from iamgate.judge import risk
from iamgate.config import AllowEntry, Config
from iamgate.judge.verdicts import evaluate
from iamgate.model import Baseline, Location, Policy, Principal, Statement, UsedAction
from iamgate.pipeline import run_checks
from iamgate.judge.severity import by_access_level, split_by_access_level

TODAY = dt.date(2026, 11, 27)
ARN = "arn:aws:iam::111122223333:role/app"


def st(actions=(), effect="Allow", resources=("*",), condition=None, not_resources=(), line=1):
    return Statement(effect, tuple(actions), (), tuple(resources), tuple(not_resources), condition or {}, None,
                     Location("t.json", line))


def check(catalog, *policies, used=(), baseline=True, config=None):
    """Findings for one principal whose policies are lists of statements."""
    p = Principal("App", "role", name="app", location=Location("t.json", 1),
                  policies=tuple(Policy(f"p{i}", tuple(sts)) for i, sts in enumerate(policies)))
    b = Baseline(ARN, sources=({"kind": "cloudtrail"},), used={a: UsedAction(1) for a in used}) if baseline else None
    findings, suppressed = run_checks([evaluate(p, b, catalog)], [], catalog, config or Config(), TODAY)
    return findings, suppressed


def by_check(findings) -> dict:
    out: dict = {}
    for f in findings:
        out.setdefault(f.check, []).append(f)
    return out


def reported_actions(findings, check_id) -> set:
    return {a for f in findings if f.check == check_id for a in f.actions}


# -- the data file -----------------------------------------------------------------------------
def test_risk_data_loads_and_every_action_is_in_the_catalog(catalog):
    data = risk.load()
    assert len(data.combinations) >= 100
    assert risk.missing_from_catalog(data, catalog) == []
    assert all(c.sources and set(c.sources) <= set(data.sources) for c in data.combinations)
    for key in ("credentials_exposure", "resource_exposure", "data_exfiltration"):
        assert data.lists[key].actions and data.lists[key].source in data.sources


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["privilege_escalation"].append(dict(d["privilege_escalation"][0])), "duplicate id"),
    (lambda d: d["privilege_escalation"][0].update(actions=["IAM:CreateAccessKey"]), "not a lowercase action"),
    (lambda d: d["privilege_escalation"][0].update(sources=["blog"]), "not all cited"),
    (lambda d: d["privilege_escalation"][1].update(actions=d["privilege_escalation"][0]["actions"]), "same actions"),
    (lambda d: d.pop("data_exfiltration"), "data_exfiltration.actions"),
])
def test_malformed_risk_data_is_a_clear_error(mutate, message):
    from importlib import resources
    data = json.loads(resources.files("iamgate").joinpath("data/risk.json").read_text())
    mutate(data)
    with pytest.raises(risk.RiskDataError, match=message):
        risk.parse(data)


def test_missing_from_catalog_names_the_entry(catalog):
    data = risk.parse({"sources": {"x": "cite"}, "privilege_escalation": [
        {"id": "Fake", "actions": ["iam:nosuchaction"], "sources": ["x"]}],
        **{k: {"source": "x", "actions": []} for k in ("credentials_exposure", "resource_exposure",
                                                        "data_exfiltration")}})
    assert risk.missing_from_catalog(data, catalog) == ["Fake: iam:nosuchaction"]


# -- privilege escalation ------------------------------------------------------------------------
def test_combination_across_policies_completed_by_an_unused_action_is_critical(catalog):
    findings, _ = check(catalog, [st(["iam:PassRole"], resources=["arn:aws:iam::1:role/fn"], line=3)],
                        [st(["lambda:CreateFunction"], line=7)])
    (f,) = by_check(findings)["privilege-escalation"]
    assert f.severity == "critical" and f.combination and f.reason == risk.COMPLETED_BY_UNUSED
    assert f.actions == ("iam:passrole", "lambda:createfunction")
    assert f.keys() == [("App", "privilege-escalation", ("iam:passrole", "lambda:createfunction"))]
    assert f.location == Location("t.json", 7)  # the statement granting the unused action
    assert "completed by unused lambda:CreateFunction" in f.message  # AWS case, for people
    # ranked once: the completing action is not reported again, lower, by unused-actions
    assert "lambda:createfunction" not in reported_actions(findings, "unused-actions")


def test_fully_used_combination_is_one_info_finding(catalog):
    findings, _ = check(catalog, [st(["iam:PassRole", "lambda:CreateFunction"])], used=["lambda:createfunction"])
    (f,) = by_check(findings)["privilege-escalation"]
    assert f.severity == "info" and f.reason == risk.IN_USE and f.actions == ()
    assert "PassExistingRoleToNewLambda" in f.message


def test_without_a_baseline_combinations_are_not_judged(catalog):
    findings, _ = check(catalog, [st(["iam:CreateAccessKey"])], baseline=False)
    (f,) = by_check(findings)["privilege-escalation"]
    assert f.severity == "info" and f.reason == risk.NOT_JUDGED


@pytest.mark.parametrize("deny, fires", [
    (st(["iam:CreateAccessKey"], effect="Deny"), False),  # covering, unconditional: not granted
    (st(["iam:Create*"], effect="Deny", resources=["arn:aws:iam::*:user/*"]), False),  # covers the allow below
    (st(["iam:CreateAccessKey"], effect="Deny", condition={"Bool": {"aws:MultiFactorAuthPresent": "false"}}), True),
    (st(["iam:CreateAccessKey"], effect="Deny", resources=["arn:aws:iam::1:user/admin"]), True),  # narrower
])
def test_denies_decide_whether_the_combination_is_granted(catalog, deny, fires):
    findings, _ = check(catalog, [st(["iam:CreateAccessKey"], resources=["arn:aws:iam::1:user/*"])], [deny])
    critical = [f for f in findings if f.check == "privilege-escalation" and f.severity == "critical"]
    assert bool(critical) is fires


def test_a_superset_of_the_same_severity_is_folded_into_its_subset(catalog):
    findings, _ = check(catalog, [st(["iam:CreateAccessKey", "iam:DeleteAccessKey"])])
    (f,) = [f for f in findings if f.check == "privilege-escalation"]
    assert f.actions == ("iam:createaccesskey",) and "also enables CreateAndRotateAccessKey" in f.message
    # the superset's extra action is not claimed: removing CreateAccessKey breaks both paths
    assert "iam:deleteaccesskey" in reported_actions(findings, "unused-actions")


def test_a_superset_completed_by_its_own_unused_action_is_reported_separately(catalog):
    findings, _ = check(catalog, [st(["iam:CreateAccessKey", "iam:DeleteAccessKey"])], used=["iam:createaccesskey"])
    esc = by_check(findings)["privilege-escalation"]
    assert {(f.severity, f.actions) for f in esc} == {
        ("critical", ("iam:createaccesskey", "iam:deleteaccesskey")), ("info", ())}
    assert "CreateAccessKey" in next(f.message for f in esc if f.severity == "info")


def test_not_action_grants_every_combination_outside_it(catalog):
    not_s3 = Statement("Allow", (), ("s3:*",), ("*",), (), {}, None, Location("t.json", 1))
    findings, _ = check(catalog, [not_s3])
    critical = [f for f in findings if f.check == "privilege-escalation" and f.severity == "critical"]
    named = {f.message.split()[3] for f in critical}
    assert {"PassExistingRoleToNewLambda", "CreateAccessKey"} <= named
    data = risk.load()
    roots = set(named) | {x for f in critical if "also enables " in f.message
                          for x in f.message.split("also enables ")[1].split(", ")}
    # every combination without an s3 action is reported, as its own finding or folded into a subset
    assert roots == {c.id for c in data.combinations if not any(a.startswith("s3:") for a in c.actions)}


# -- allowlisting --------------------------------------------------------------------------------
def test_allowlisting_the_completing_action_makes_the_combination_info(catalog):
    config = Config(allowlist=(AllowEntry("lambda:Create*", "deploys functions", "app", dt.date(2027, 1, 1)),))
    findings, suppressed = check(catalog, [st(["iam:PassRole", "lambda:CreateFunction"])], config=config)
    esc = by_check(findings)["privilege-escalation"]
    assert [f.severity for f in esc] == ["info"]
    assert not any(f.severity == "critical" for f in findings)


def test_an_expired_allowlist_entry_no_longer_helps_and_is_reported(catalog):
    config = Config(allowlist=(AllowEntry("lambda:CreateFunction", "migration", "App", dt.date(2026, 1, 1)),))
    findings, suppressed = check(catalog, [st(["iam:PassRole", "lambda:CreateFunction"])], config=config)
    checks = by_check(findings)
    assert checks["privilege-escalation"][0].severity == "critical"
    (expired,) = checks["allowlist-expired"]
    assert "2026-01-01" in expired.message and "migration" in expired.message and not suppressed


def test_allowlist_for_another_principal_does_not_apply(catalog):
    config = Config(allowlist=(AllowEntry("lambda:*", "other team", "billing-*"),))
    findings, _ = check(catalog, [st(["iam:PassRole", "lambda:CreateFunction"])], config=config)
    assert by_check(findings)["privilege-escalation"][0].severity == "critical"


# -- iam:PassRole ------------------------------------------------------------------------------
@pytest.mark.parametrize("statement, fires", [
    (st(["iam:PassRole"]), True),
    (st(["iam:*"]), True),
    (st(["iam:PassRole"], resources=["arn:aws:iam::111122223333:role/*"]), True),
    (st(["iam:PassRole"], resources=["arn:aws:iam::*:*"]), True),
    (st(["iam:PassRole"], resources=[], not_resources=["arn:aws:iam::1:role/admin"]), True),
    (st(["iam:PassRole"], resources=["arn:aws:iam::111122223333:role/lambda-*"]), False),
    (st(["iam:PassRole"], condition={"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}), False),
    (st(["iam:PassRole"], condition={"StringLike": {"IAM:passedToService": "*.amazonaws.com"}}), True),  # every service: no restriction (issue 19)
    (st(["iam:PassRole"], condition={"StringEquals": {"aws:RequestedRegion": "eu-west-1"}}), True),
    (st(["iam:GetRole"]), False),
])
def test_passrole_on_every_role_without_passed_to_service(catalog, statement, fires):
    findings, _ = check(catalog, [statement])
    hits = by_check(findings).get("passrole-wildcard", [])
    assert bool(hits) is fires
    if fires:
        (f,) = hits
        assert f.severity == "high" and f.actions == ("iam:passrole",) and f.location == Location("t.json", 1)


def test_passrole_denied_or_guarded_by_a_deny_does_not_fire(catalog):
    allow = st(["iam:PassRole"])
    findings, _ = check(catalog, [allow], [st(["iam:PassRole"], effect="Deny")])
    assert "passrole-wildcard" not in by_check(findings)
    guard = st(["iam:Pass*"], effect="Deny",
               condition={"StringNotEquals": {"iam:PassedToService": "lambda.amazonaws.com"}})
    findings, _ = check(catalog, [allow], [guard])
    assert "passrole-wildcard" not in by_check(findings)


def test_passrole_in_two_statements_is_one_finding_naming_both(catalog):
    findings, _ = check(catalog, [st(["iam:PassRole"], line=2), st(["iam:PassRole"], line=9)])
    (f,) = by_check(findings)["passrole-wildcard"]
    assert f.location.line == 2 and "t.json:9" in f.message


# -- exposure and exfiltration ---------------------------------------------------------------------
def test_unused_credential_exposure_is_high_and_not_repeated_by_unused_actions(catalog):
    findings, _ = check(catalog, [st(["ec2:GetPasswordData", "ecr:GetAuthorizationToken", "ec2:DescribeInstances"])],
                        used=["ecr:getauthorizationtoken"])
    (f,) = by_check(findings)["credential-exposure"]
    assert f.severity == "high" and f.actions == ("ec2:getpassworddata",)  # Read by access level: low
    assert reported_actions(findings, "unused-actions") == {"ec2:describeinstances"}


def test_unused_resource_exposure_is_high(catalog):
    findings, _ = check(catalog, [st(["s3:PutBucketPolicy", "ram:CreateResourceShare"])], used=["s3:putbucketpolicy"])
    (f,) = by_check(findings)["resource-exposure"]
    assert f.severity == "high" and f.actions == ("ram:createresourceshare",)  # only Write by access level
    assert "unused-actions" not in by_check(findings)


@pytest.mark.parametrize("resources, not_resources, check_id, severity", [
    (["*"], [], "data-exfiltration", "medium"),
    ([], ["arn:aws:ssm:*:*:parameter/public/*"], "data-exfiltration", "medium"),
    (["arn:aws:ssm:eu-west-1:111122223333:parameter/orders/*"], [], "unused-actions", "low"),
])
def test_data_exfiltration_reads_on_every_resource_are_medium(catalog, resources, not_resources, check_id, severity):
    findings, _ = check(catalog, [st(["ssm:GetParameter"], resources=resources, not_resources=not_resources)])
    (f,) = [f for f in findings if "ssm:getparameter" in f.actions]
    assert (f.check, f.severity) == (check_id, severity)


def test_a_disabled_risk_check_hands_its_actions_back_to_unused_actions(catalog):
    statements = [st(["iam:CreateAccessKey", "ec2:GetPasswordData"])]
    findings, _ = check(catalog, statements)
    assert reported_actions(findings, "credential-exposure") == {"ec2:getpassworddata"}
    assert "iam:createaccesskey" not in reported_actions(findings, "credential-exposure")  # ranked critical first
    findings, _ = check(catalog, statements, config=Config(disable=("privilege-escalation", "credential-exposure")))
    assert reported_actions(findings, "unused-actions") == {"iam:createaccesskey", "ec2:getpassworddata"}
    assert {f.severity for f in findings if f.check == "unused-actions"} == {"medium", "low"}  # Write, Read


def test_every_unused_action_is_reported_exactly_once(catalog):
    findings, _ = check(catalog, [st(["iam:*", "s3:*", "ec2:*", "lambda:*", "sts:*", "ssm:*"])],
                        used=["s3:getobject", "lambda:invokefunction"])
    esc = {a for f in findings if f.check == "privilege-escalation" and f.severity == "critical"
           for a in f.actions}
    single = [a for f in findings if f.check in ("credential-exposure", "resource-exposure", "data-exfiltration",
                                                    "unused-actions") for a in f.actions]
    assert len(single) == len(set(single))
    assert esc and not (set(single) & {"iam:createaccesskey", "iam:putrolepolicy"})  # claimed by critical combos


# -- access levels -----------------------------------------------------------------------------
def test_compound_access_levels_rank_by_their_most_severe_part(catalog):
    assert catalog.access_levels("s3:putbucketpolicy") == ("Permissions management", "Write")
    assert by_access_level(catalog, "s3:putbucketpolicy") == "high"
    tag = next(a for a in sorted(catalog.all_actions) if catalog.access_levels(a) == ("Tagging", "Write"))
    assert by_access_level(catalog, tag) == "medium"
    assert split_by_access_level(catalog, ["s3:getobject", "s3:putobject", "zzz:nope"]) == {
        "low": ["s3:getobject", "zzz:nope"], "medium": ["s3:putobject"]}
