"""Verdicts per action and per usage source, from AWS's own `SupportedBy` flags (iamgate.reference.support)."""
from __future__ import annotations

import pytest

from iamgate.judge import verdicts as ev
from iamgate.reference import support
from iamgate.usage.baseline_format import merge
from iamgate.judge.verdicts import Observability, SourceView, coverage, decide, evaluate
from iamgate.model import Baseline, Location, Policy, Principal, Statement, UsedAction

ROLE = "arn:aws:iam::111122223333:role/app"
DATA = support.shipped()


@pytest.fixture(scope="module")
def obs(catalog):
    return Observability(catalog, support=DATA)


def role(*actions, not_actions=()):
    st = Statement("Allow", tuple(actions), tuple(not_actions), ("*",), location=Location("t.json", 1))
    return Principal("App", "role", name="app", policies=(Policy("p", (st,)),))


def aa(**kw):
    return Baseline(ROLE, sources=({"kind": "access-analyzer", "complete": True},), **kw)


def la(**kw):
    return Baseline(ROLE, sources=({"kind": "last-accessed"},), **kw)


def ct(**kw):
    return Baseline(ROLE, sources=({"kind": "cloudtrail", "events": 10},), **kw)


def test_star_with_access_analyzer_only_agrees_with_the_generation_flag(catalog, obs):
    """Done-when: of every action the data lists, the unseen ones reported unused are exactly those whose
    generation flag is true; no action absent from the data is unused."""
    b = aa(used={"s3:listallmybuckets": UsedAction(signals=("access-analyzer",))})
    r = evaluate(role("*"), b, catalog, obs)
    unused = set(r.actions("unused"))
    listed = catalog.all_actions & DATA.listed
    unseen = listed - {"s3:listallmybuckets"}
    assert unused & listed == unseen & DATA.generation  # 100% agreement over every listed action
    assert not unused - listed  # nothing the data does not list
    absent = catalog.all_actions - DATA.listed
    assert absent, "the catalog is newer than the data: some actions must be absent"
    no_data = r.groups["unobservable"][f"no AWS support data for this action (data of {DATA.date}); "
                                       "run `iamgate data update`"]
    assert no_data == absent
    # the cited table says why where it can (data events, iam:PassRole); the flags alone decide
    unobservable = r.groups["unobservable"]
    assert set().union(*unobservable.values()) == (unseen - DATA.generation) | absent
    assert unobservable["data event: Access Analyzer does not report data events"] == (
        (unseen - DATA.generation) & Observability(catalog, support=DATA).data_events)
    assert "s3:getobject" in unobservable["data event: Access Analyzer does not report data events"]
    assert "acm:deletecertificate" not in set().union(*unobservable.values())
    # the examples, both ways
    for action in ("cloudwatch:putmetricalarm", "cloudwatch:deletealarms", "cloudformation:createresource"):
        assert action in r.actions("unobservable")
    assert "acm:deletecertificate" in unused


def test_last_accessed_tracked_untracked_and_never_accessed(obs):
    assert "sqs:addpermission" in DATA.last_accessed and "sqs:createqueue" in DATA.last_accessed
    assert "sqs:tagqueue" not in DATA.last_accessed  # untracked
    assert "sns:publish" not in DATA.last_accessed  # untracked, but its service was never accessed
    b = la(used={"sqs:createqueue": UsedAction(last_seen="2026-11-01T00:00:00Z", signals=("last-accessed",))},
           not_accessed_services=frozenset({"sns"}))
    assert decide("sqs:createqueue", b, obs) == ("used", "observed (last-accessed)")
    assert decide("sqs:addpermission", b, obs) == ("unused", "not observed in the window")
    assert decide("sqs:tagqueue", b, obs) == ("unobservable", "IAM last accessed does not track this action")
    assert decide("sqs:receivemessage", b, obs) == ("unobservable",
                                                    "data event: IAM last accessed does not report data events")
    never = "service never accessed in the tracking period (last accessed)"
    assert decide("sns:publish", b, obs) == ("unused", never)
    assert decide("sns:createtopic", b, obs) == ("unused", never)
    assert decide("iam:passrole", la(not_accessed_services=frozenset({"iam"})), obs)[0] == "unobservable"


def test_last_accessed_service_accessed_through_untracked_actions_only(obs):
    # last accessed saw the service used, but none of its tracked actions: those were not used
    b = la(service_level_only=frozenset({"sqs"}))
    assert decide("sqs:addpermission", b, obs) == ("unused", "not observed in the window")
    assert decide("sqs:tagqueue", b, obs) == ("unobservable", "service-level usage only")
    # merged with Access Analyzer, its own service-level template stays in charge
    assert decide("sqs:addpermission", merge([aa(service_level_only=frozenset({"sqs"})), la()]), obs)[0] == \
        "unobservable"


def test_merged_access_analyzer_and_cloudtrail(obs):
    merged = merge([aa(used={"kms:decrypt": UsedAction(signals=("access-analyzer",))}),
                    ct(used={"sqs:sendmessage": UsedAction(count=3, signals=("cloudtrail",))})])
    assert decide("kms:decrypt", merged, obs)[0] == "used"
    assert decide("sqs:sendmessage", merged, obs) == ("used", "observed (cloudtrail)")
    # Access Analyzer never reports it, CloudTrail sees every management event: observable, so unused
    assert "cloudwatch:putmetricalarm" not in DATA.generation
    assert decide("cloudwatch:putmetricalarm", merged, obs) == ("unused", "not observed in the window")
    # a data event neither source saw: the reason names both
    verdict, reason = decide("s3:getobject", merged, obs)
    assert verdict == "unobservable"
    assert reason == ("data event: Access Analyzer does not report data events; "
                      "data event: CloudTrail has no data events of this service for this principal")
    assert ev.short_reason(reason) == "data event"
    # reported by neither, for different reasons
    verdict, reason = decide("cloudwatch:putmetricalarm", merge([aa(), la()]), obs)
    assert (verdict, reason) == ("unused", "not observed in the window")  # last accessed tracks it
    verdict, reason = decide("sqs:listmessagemovetasks", merge([aa(), la()]), obs)
    assert reason == "Access Analyzer does not report this action; IAM last accessed does not track this action"
    assert ev.short_reason(reason) == "not reported by Access Analyzer / not tracked by IAM last accessed"
    # the principal's own s3 data events were logged: CloudTrail covers them
    logged = merge([aa(), ct(data_events_observed=frozenset({"s3"}))])
    assert decide("s3:getobject", logged, obs) == ("unused", "not observed in the window")
    assert decide("iam:passrole", merged, obs)[0] == "unobservable"


def test_an_action_newer_than_the_data(catalog):
    data = support.ActionSupport("2020-01-01", "test", "test", frozenset({"sqs:sendmessage"}),
                                 frozenset({"sqs:sendmessage"}), frozenset({"sqs:sendmessage"}))
    o = Observability(catalog, support=data)
    reason = "no AWS support data for this action (data of 2020-01-01); run `iamgate data update`"
    for b in (aa(), la(), merge([aa(), la()])):
        assert decide("sqs:deletequeue", b, o) == ("unobservable", reason)
        assert decide("sqs:sendmessage", b, o)[0] == "unused"
    # never-accessed services are decided on what the data lists too
    assert decide("sqs:deletequeue", la(not_accessed_services=frozenset({"sqs"})), o) == ("unobservable", reason)
    # CloudTrail read directly does not depend on the data: every management event is seen
    assert decide("sqs:deletequeue", ct(), o)[0] == "unused"


def test_a_new_source_kind_is_one_registration(obs):
    @coverage("test-only-kind")
    def _view(o, baseline):
        return SourceView(frozenset({"sqs:sendmessage"}), otherwise="the test source does not see this action")
    try:
        b = Baseline(ROLE, sources=({"kind": "test-only-kind"},))
        assert decide("sqs:sendmessage", b, obs)[0] == "unused"
        assert decide("sqs:deletequeue", b, obs) == ("unobservable", "the test source does not see this action")
        # unknown kinds are read as management events, named in the reason
        other = Baseline(ROLE, sources=({"kind": "someday"},))
        assert decide("sqs:deletequeue", other, obs)[0] == "unused"
        assert decide("s3:getobject", other, obs)[1].startswith("data event: someday ")
    finally:
        del ev.COVERAGE["test-only-kind"]


def test_judged_summary(catalog, obs):
    b = aa(used={"sqs:sendmessage": UsedAction(signals=("access-analyzer",))})
    r = evaluate(role("sqs:SendMessage", "sqs:AddPermission", "sqs:GetQueueAttributes", "s3:GetObject",
                      "sqs:ListMessageMoveTasks", "sqs:Nope"), b, catalog, obs)
    j = r.judged
    assert (j.granted, j.judged, j.percent, j.unknown) == (5, 2, 40, 1)
    assert j.text() == ("judged 2 of 5 granted actions (40%); 3 unobservable: 2 data events, "
                        "1 not reported by Access Analyzer; 1 unknown action pattern")
    assert j.as_dict()["unobservable"] == {"data event": 2, "not reported by Access Analyzer": 1}
    none = evaluate(role("sqs:SendMessage"), None, catalog, obs).judged
    assert none.text() == "judged 0 of 1 granted actions (0%); 1 without usage data"


def test_percent_never_rounds_up_to_complete():
    assert ev.Judged(granted=1000, judged=999).percent == 99
    assert ev.Judged(granted=0, judged=0).text() == "no granted actions to judge"
    assert ev.Judged(granted=0, judged=0, unknown=2).text() == "no granted actions to judge; 2 unknown action patterns"
