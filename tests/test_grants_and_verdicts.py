"""Grants (Allow minus covering, unconditional Deny) and the verdict order."""
from __future__ import annotations

from iamgate.judge import grants
from iamgate.judge.verdicts import Observability, decide, evaluate
from iamgate.model import Baseline, Location, Policy, Principal, Statement, UsedAction


def st(effect="Allow", actions=(), not_actions=(), resources=("*",), not_resources=(), condition=None, line=1):
    return Statement(effect, tuple(actions), tuple(not_actions), tuple(resources), tuple(not_resources),
                     condition or {}, None, Location("t.json", line))


def principal(*stmts):
    return Principal("P", "role", name="p", policies=(Policy("p", tuple(stmts)),))


def granted(catalog, *stmts):
    return grants.compute(principal(*stmts), catalog)


def test_allow_expands_and_unknown_is_kept_apart(catalog):
    g = granted(catalog, st(actions=["s3:GetObject", "s3:Nope", "zzz:*"]))
    assert set(g.actions) == {"s3:getobject"}
    assert set(g.unknown) == {"s3:nope", "zzz:*"}


def test_not_action_is_catalog_minus_listed(catalog):
    g = granted(catalog, st(not_actions=["iam:*"]))
    assert len(g.actions) == len(catalog.all_actions) - len(catalog.service_actions("iam"))


def test_unconditional_covering_deny_removes(catalog):
    g = granted(catalog, st(actions=["s3:*"], resources=["arn:aws:s3:::b/*"]),
                st("Deny", actions=["s3:Delete*"], resources=["arn:aws:s3:::b/*"]))
    assert "s3:deleteobject" not in g.actions and "s3:deleteobject" in g.denied
    assert "s3:getobject" in g.actions


def test_deny_star_resource_covers_everything(catalog):
    g = granted(catalog, st(actions=["iam:CreateUser"], resources=["arn:aws:iam::1:user/x"]),
                st("Deny", actions=["iam:*"], resources=["*"]))
    assert not g.actions


def test_deny_on_a_wider_glob_covers_a_narrower_allow(catalog):
    g = granted(catalog, st(actions=["s3:PutObject"], resources=["arn:aws:s3:::b/logs/*"]),
                st("Deny", actions=["s3:PutObject"], resources=["arn:aws:s3:::b/*"]))
    assert not g.actions


def test_narrower_deny_leaves_the_grant_with_a_note(catalog):
    g = granted(catalog, st(actions=["s3:PutObject"], resources=["arn:aws:s3:::b/*"]),
                st("Deny", actions=["s3:PutObject"], resources=["arn:aws:s3:::b/secret/*"], line=9))
    assert "s3:putobject" in g.actions
    (acts, note), = g.deny_notes
    assert "s3:putobject" in acts and "narrower resources" in note and "t.json:9" in note


def test_deny_question_mark_does_not_cover_a_star(catalog):
    g = granted(catalog, st(actions=["s3:PutObject"], resources=["arn:aws:s3:::b/a*"]),
                st("Deny", actions=["s3:PutObject"], resources=["arn:aws:s3:::b/a?"]))
    assert "s3:putobject" in g.actions


def test_conditional_deny_does_not_remove(catalog):
    g = granted(catalog, st(actions=["ec2:RunInstances"]),
                st("Deny", actions=["ec2:*"], condition={"StringNotEquals": {"aws:RequestedRegion": "eu-west-1"}}))
    assert "ec2:runinstances" in g.actions
    assert any("ec2:runinstances" in acts and "conditional Deny" in n for acts, n in g.deny_notes)


def test_deny_with_not_action_and_not_resource(catalog):
    g = granted(catalog, st(actions=["s3:GetObject", "kms:Decrypt"], resources=["arn:aws:s3:::b/x"]),
                st("Deny", not_actions=["kms:*"], not_resources=["arn:aws:s3:::other/*"]))
    assert set(g.actions) == {"kms:decrypt"}  # s3 denied (NotAction), resource outside NotResource


def test_deny_with_an_unresolved_not_action_removes_nothing(catalog):
    # `Deny NotAction: [!Ref Keep]`: the unknown entry may exclude anything (`*`), so the Deny may deny nothing
    deny = Statement("Deny", (), (), ("*",), location=Location("t.json", 5), not_action_unresolved=True)
    g = granted(catalog, st(actions=["iam:*"]), deny)
    assert g.actions == catalog.service_actions("iam") and not g.denied
    (acts, note), = g.deny_notes
    assert acts == g.actions and "NotAction cannot be resolved" in note and "t.json:5" in note

def test_allow_with_not_resource_is_only_covered_by_star_deny(catalog):
    g = granted(catalog, st(actions=["s3:GetObject"], resources=[], not_resources=["arn:aws:s3:::x/*"]),
                st("Deny", actions=["s3:GetObject"], resources=["arn:aws:s3:::y/*"]))
    assert "s3:getobject" in g.actions


def test_action_granted_by_two_statements_survives_a_deny_covering_one(catalog):
    g = granted(catalog, st(actions=["s3:GetObject"], resources=["arn:aws:s3:::a/*"]),
                st(actions=["s3:GetObject"], resources=["arn:aws:s3:::b/*"], line=2),
                st("Deny", actions=["s3:GetObject"], resources=["arn:aws:s3:::a/*"], line=3))
    assert [s.location.line for s, acts in g.allows if "s3:getobject" in acts] == [2]


# -- verdicts ------------------------------------------------------------------

def base(**kw):
    defaults = dict(principal_arn="arn:aws:iam::1:role/p", sources=({"kind": "access-analyzer", "complete": True},))
    defaults.update(kw)
    return Baseline(**defaults)


def test_verdict_order(catalog):
    obs = Observability(catalog, extra=("ses:SendEmail",))
    b = base(used={"kms:decrypt": UsedAction(signals=("access-analyzer",))}, service_level_only=frozenset({"support"}),
             not_accessed_services=frozenset({"sns"}))
    assert decide("kms:decrypt", None, obs)[0] == "no-usage-data"
    assert decide("kms:decrypt", b, obs) == ("used", "observed (access-analyzer)")
    assert decide("sns:createtopic", b, obs)[0] == "unused"  # service never accessed (last accessed)
    assert decide("support:describecases", b, obs) == ("unobservable", "service-level usage only")
    assert decide("s3:getobject", b, obs)[0] == "unobservable"  # data event
    assert decide("iam:passrole", b, obs)[0] == "unobservable"
    # AWS's data says policy generation reports it: a grant Access Analyzer never saw is unused
    assert decide("sts:getcalleridentity", b, obs) == ("unused", "not observed in the window")
    assert decide("sts:getcalleridentity", base(sources=({"kind": "cloudtrail"},)), obs) == (
        "unobservable", "needs no permission: CloudTrail never records it as usage")
    assert decide("ses:sendemail", b, obs) == ("unobservable", "configured as unobservable")
    assert decide("kms:encrypt", b, obs) == ("unused", "not observed in the window")


def test_data_events_become_observable_when_the_source_saw_them(catalog):
    obs = Observability(catalog)
    b = base(sources=({"kind": "cloudtrail"},), data_events_observed=frozenset({"s3"}))
    assert decide("s3:getobject", b, obs)[0] == "unused"
    assert decide("dynamodb:getitem", b, obs)[0] == "unobservable"


def test_access_analyzer_covers_exactly_the_generation_flag(catalog):
    obs = Observability(catalog)
    assert decide("cloudwatch:putmetricalarm", base(), obs) == ("unobservable", "Access Analyzer does not report "
                                                                                "this action")
    assert decide("acm:deletecertificate", base(), obs) == ("unused", "not observed in the window")
    # CloudTrail sees every service's management events
    assert decide("cloudwatch:putmetricalarm", base(sources=({"kind": "cloudtrail"},)), obs)[0] == "unused"


def test_unknown_comes_first_and_whole_service_absent_is_unused(catalog):
    p = principal(st(actions=["sqs:DeleteQueue", "sqs:Bogus"]))
    r = evaluate(p, base(), catalog)
    verdicts = {v.action: v.verdict for v in r.verdicts}
    assert verdicts == {"sqs:bogus": "unknown", "sqs:deletequeue": "unused"}


def test_unknown_actions_in_the_baseline_are_noted(catalog):
    b = base(used={"s3:listallamzn-s3-demo-buckets": UsedAction()})
    r = evaluate(principal(st(actions=["s3:ListAllMyBuckets"])), b, catalog)
    assert any("s3:listallamzn-s3-demo-buckets" in n for n in r.notes)
    assert r.actions("unused") == ["s3:listallmybuckets"]


def test_an_unresolved_not_action_is_noted_as_read_the_way_that_grants_more():
    from iamgate.sources.policy_document import Unknown, parse_policy
    notes = {}
    for effect in ("Allow", "Deny"):
        doc = {"Statement": [{"Effect": effect, "NotAction": [Unknown("a parameter", "${Keep}", 3)], "Resource": "*"}]}
        (line, note), = parse_policy(doc, "t.json", 1).unknowns
        notes[effect] = note
    assert "excluding only the known entries" in notes["Allow"]
    assert "denying nothing" in notes["Deny"] and "excluding only" not in notes["Deny"]
