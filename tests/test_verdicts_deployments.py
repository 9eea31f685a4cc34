"""One principal, many deployments (issue 21): each deployment decides, the most cautious verdict wins."""
from __future__ import annotations

import pytest

from iamgate.judge.evidence import judge
from iamgate.judge.verdicts import Observability, evaluate
from iamgate.model import (
    CAUTION,
    Baseline,
    Deployment,
    Evidence,
    Location,
    Policy,
    Principal,
    Statement,
    UsedAction,
)
from iamgate.reference import support

START, END = "2026-08-24T00:00:00Z", "2026-11-22T00:00:00Z"


@pytest.fixture(scope="module")
def obs(catalog):
    return Observability(catalog, support=support.shipped())


def worker(*actions):
    st = Statement("Allow", tuple(actions), (), ("*",), location=Location("worker.yaml", 9))
    return Principal("Worker", "role", name="worker", policies=(Policy("p", (st,)),))


def ct(account, used=(), data_events=(), start=START):
    return Baseline(f"arn:aws:iam::{account}:role/worker", window_start=start, window_end=END,
                    sources=({"kind": "cloudtrail", "events": 10},), data_events_observed=frozenset(data_events),
                    used={a: UsedAction(1, "2026-11-20T00:00:00Z", ("cloudtrail",)) for a in used})


STAGING = Deployment("staging", "111111111111", ct("111111111111", used=("sqs:createqueue",)), "name")
PROD = Deployment("prod", "222222222222", ct("222222222222", used=("sqs:deletequeue",)), "name")
ACTIONS = ("sqs:createqueue", "sqs:deletequeue", "sqs:purgequeue")


def test_used_in_any_deployment_is_used_and_says_where(catalog, obs):
    r = judge(Evidence(worker(*ACTIONS), (STAGING, PROD)), catalog, obs)
    assert r.actions("used") == ["sqs:createqueue", "sqs:deletequeue"]
    assert r.actions("unused") == ["sqs:purgequeue"]  # neither used it
    assert r.where_used("sqs:createqueue") == ("staging",) and r.where_used("sqs:deletequeue") == ("prod",)
    assert r.where_used("sqs:purgequeue") == ()
    assert [d.name for d in r.judged_in] == ["staging", "prod"]
    assert r.baseline is STAGING.baseline  # the first deployment's, for the stages that read one
    both = judge(Evidence(worker("sqs:createqueue"), (STAGING, Deployment("prod", "222222222222", ct(
        "222222222222", used=("sqs:createqueue",))))), catalog, obs)
    assert both.used_in == {("staging", "prod"): frozenset({"sqs:createqueue"})}


def test_unobservable_in_one_deployment_is_not_unused(catalog, obs):
    """prod logged S3 data events (it would have seen GetObject), staging did not: not unused."""
    seen = Deployment("prod", "2", ct("222222222222", data_events=("s3",)))
    blind = Deployment("staging", "1", ct("111111111111"))
    alone = judge(Evidence(worker("s3:getobject"), (seen,)), catalog, obs)
    assert alone.actions("unused") == ["s3:getobject"]
    r = judge(Evidence(worker("s3:getobject"), (seen, blind)), catalog, obs)
    assert r.actions("unobservable") == ["s3:getobject"] and not r.actions("unused")
    r = judge(Evidence(worker("s3:getobject"), (blind, seen)), catalog, obs)  # order does not matter
    assert r.actions("unobservable") == ["s3:getobject"]


def test_too_recent_in_one_deployment_is_not_unused(catalog, obs):
    young = Deployment("dev", "3", ct("333333333333", start="2026-11-12T00:00:00Z"))
    r = judge(Evidence(worker("sqs:purgequeue"), (PROD, young)), catalog, obs)
    assert r.actions("too_recent") == ["sqs:purgequeue"]
    assert r.groups["too_recent"] == {"watched since 2026-11-12; judged from 2026-12-12": frozenset(
        {"sqs:purgequeue"})}


def test_a_named_deployment_without_baseline_leaves_unused_without_usage_data(catalog, obs):
    r = judge(Evidence(worker(*ACTIONS), (STAGING, Deployment("prod", "222222222222"))), catalog, obs)
    assert r.actions("used") == ["sqs:createqueue"]  # used anywhere is still used
    assert r.groups["no-usage-data"] == {"prod has no baseline": frozenset({"sqs:deletequeue", "sqs:purgequeue"})}
    assert not r.actions("unused")
    none = judge(Evidence(worker(*ACTIONS), (Deployment("staging"), Deployment("prod"))), catalog, obs)
    assert none.groups == {"no-usage-data": {"staging and prod have no baseline": frozenset(ACTIONS)}}
    assert none.baseline is None


def test_caution_order_is_the_designs():
    assert CAUTION == ("used", "unobservable", "too_recent", "no-usage-data", "unused")


def test_evaluate_is_judge_with_one_deployment(catalog, obs):
    b = STAGING.baseline
    old = evaluate(worker(*ACTIONS), b, catalog, obs)
    assert old.groups == judge(Evidence(worker(*ACTIONS), (STAGING,)), catalog, obs).groups
    assert [d.account for d in old.deployments] == ["111111111111"] and old.baseline is b
    assert evaluate(worker(*ACTIONS), None, catalog, obs).groups == {
        "no-usage-data": {"no baseline for this principal": frozenset(ACTIONS)}}


def test_a_deployment_resolved_differently_judges_only_what_it_grants(catalog, obs):
    """A deployment whose own resolution lacks an action does not vote on it."""
    narrower = Deployment("prod", "222222222222", ct("222222222222"), principal=worker("sqs:createqueue"))
    r = judge(Evidence(worker("sqs:createqueue", "sqs:deletequeue"), (STAGING, narrower)), catalog, obs)
    assert r.actions("used") == ["sqs:createqueue"]
    assert r.actions("unused") == ["sqs:deletequeue"]  # staging saw it unused; prod does not grant it


def test_an_unused_access_baseline_and_a_cloudtrail_one_never_contradict(catalog, obs):
    """The analyzer keeps AWS's age rule; across the two, the most cautious verdict wins."""
    from iamgate.model import UnusedAccessEvidence
    ua = UnusedAccessEvidence("arn:aws:access-analyzer:us-east-1:111111111111:analyzer/a", 90,
                              "2026-11-21T00:00:00Z", unused_actions={"sqs:purgequeue": None})
    analyzer = Deployment("staging", "111111111111", Baseline(
        "arn:aws:iam::111111111111:role/worker", window_start=START, window_end=END,
        sources=({"kind": "unused-access"},), unused_access=ua))
    young = Deployment("prod", "222222222222", ct("222222222222", start="2026-11-12T00:00:00Z"))
    r = judge(Evidence(worker("sqs:purgequeue"), (analyzer,)), catalog, obs)
    assert r.actions("unused") == ["sqs:purgequeue"]  # its window is long enough, and AWS aged it anyway
    r = judge(Evidence(worker("sqs:purgequeue"), (analyzer, young)), catalog, obs)
    assert r.actions("too_recent") == ["sqs:purgequeue"]  # prod watched 10 days: not unused anywhere yet
    used = Deployment("prod", "222222222222", ct("222222222222", used=("sqs:purgequeue",)))
    r = judge(Evidence(worker("sqs:purgequeue"), (analyzer, used)), catalog, obs)
    assert r.actions("used") == ["sqs:purgequeue"] and r.where_used("sqs:purgequeue") == ("prod",)


def test_resource_scope_takes_the_union_of_every_deployment_and_none_where_one_has_no_baseline(catalog, obs):
    """Resources used in staging and in prod are both needed; a named deployment without a baseline may use
    any resource, so no narrowing is vouched for (the deployments and resources issues together)."""
    from checks import Analysis
    from checks.resource_scope import ResourceScope
    from dataclasses import replace as dc_replace

    def with_arn(d, arn):
        used = {"sqs:purgequeue": UsedAction(1, "2026-11-20T00:00:00Z", ("cloudtrail",), resources=(arn,))}
        return dc_replace(d, baseline=dc_replace(d.baseline, used=used))
    q1, q2 = "arn:aws:sqs:us-east-1:111111111111:jobs", "arn:aws:sqs:us-east-1:222222222222:jobs"
    both = (with_arn(STAGING, q1), with_arn(PROD, q2))
    r = judge(Evidence(worker("sqs:purgequeue"), both), catalog, obs)
    found = list(ResourceScope().run(Analysis((r,), (), catalog)))
    assert [f.resources for f in found] == [(q1, q2)]
    missing = (*both, Deployment("dev", "333333333333", None, "named deployment dev"))
    r = judge(Evidence(worker("sqs:purgequeue"), missing), catalog, obs)
    assert list(ResourceScope().run(Analysis((r,), (), catalog))) == []
