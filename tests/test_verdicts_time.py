"""Verdicts that know time (issues 20 and 22): new, too_recent, max-idle and the real unused period,
decided from hand-made evidence (grant history, baselines with coverage intervals and first/last seen)."""
from __future__ import annotations

import pytest

from iamgate.judge.evidence import judge
from iamgate.judge.verdicts import Observability, evaluate
from iamgate.model import (
    Baseline,
    Deployment,
    Evidence,
    GrantHistory,
    Interval,
    Location,
    Policy,
    Principal,
    SourceUse,
    Statement,
    UsedAction,
)
from iamgate.reference import support

ROLE = "arn:aws:iam::111122223333:role/app"
END = "2026-12-02T00:00:00Z"  # the baselines' end


@pytest.fixture(scope="module")
def obs(catalog):
    return Observability(catalog, support=support.shipped())


def role(*actions):
    st = Statement("Allow", tuple(actions), (), ("arn:aws:sqs:*:*:q",), location=Location("t.json", 3))
    return Principal("App", "role", name="app", policies=(Policy("p", (st,)),))


def ct(start="2026-06-05T00:00:00Z", end=END, coverage=None, **kw):
    return Baseline(ROLE, window_start=start, window_end=end, sources=({"kind": "cloudtrail", "events": 10},),
                    coverage=coverage or {}, **kw)


def ev(principal, *baselines, history=None, min_days=30, max_idle=90, named=()):
    deps = tuple(Deployment(f"d{i}", "111122223333", b) for i, b in enumerate(baselines))
    deps += tuple(Deployment(n) for n in named)
    return Evidence(principal, deps, history, min_days, max_idle)


def verdict_of(result, action):
    for v, reasons in result.groups.items():
        for reason, acts in reasons.items():
            if action in acts:
                return v, reason
    raise AssertionError(f"{action} has no verdict")


HISTORY = GrantHistory(True, new=frozenset({"sqs:deletequeue"}),
                       since=(("2026-11-28", frozenset({"sqs:purgequeue"})),
                              ("2026-09-23", frozenset({"sqs:setqueueattributes"})),
                              ("2026-05-16", frozenset({"sqs:createqueue"}))))


def test_new_is_never_unused_and_ages_decide_the_rest(catalog, obs):
    """A PR adds deletequeue; purgequeue was granted 4 days before the end, setqueueattributes 70 days, createqueue
    200 days: new, too_recent with the day it becomes judgeable, then unused with the real period."""
    p = role("sqs:deletequeue", "sqs:purgequeue", "sqs:setqueueattributes", "sqs:createqueue")
    r = judge(ev(p, ct(), history=HISTORY), catalog, obs)
    assert r.actions("new") == ["sqs:deletequeue"]
    assert verdict_of(r, "sqs:deletequeue")[0] == "new"
    assert verdict_of(r, "sqs:purgequeue") == ("too_recent", "granted 2026-11-28; judged from 2026-12-28")
    assert verdict_of(r, "sqs:setqueueattributes") == ("unused",
                                                "never used in the 70 days since it was granted on 2026-09-23")
    assert verdict_of(r, "sqs:createqueue") == ("unused", "not observed in the window")  # before the window
    assert "sqs:deletequeue" not in r.actions("unused") and "sqs:purgequeue" not in r.actions("unused")
    assert r.judged.new == 1 and r.judged.too_recent == 1 and "1 too recent to judge" in r.judged.text()
    # new even with no baseline at all: judged by its risk alone, not no-usage-data
    bare = judge(Evidence(p, (), HISTORY), catalog, obs)
    assert bare.actions("new") == ["sqs:deletequeue"] and "sqs:deletequeue" not in bare.actions("no-usage-data")


def test_a_new_action_stays_new_even_when_a_baseline_saw_it(catalog, obs):
    b = ct(used={"sqs:deletequeue": UsedAction(1, "2026-12-01T00:00:00Z", ("cloudtrail",))})
    r = judge(ev(role("sqs:deletequeue"), b, history=HISTORY), catalog, obs)
    assert r.actions("new") == ["sqs:deletequeue"] and not r.actions("used")


def test_too_recent_from_the_watch_time_when_the_grant_is_old(catalog, obs):
    """Coverage intervals, not the window, say how long the baseline watched: 10 + 12 days with a gap."""
    cov = {"cloudtrail": (Interval("2026-10-01T00:00:00Z", "2026-10-11T00:00:00Z"),
                          Interval("2026-11-20T00:00:00Z", END))}
    r = judge(ev(role("sqs:setqueueattributes"), ct(coverage=cov)), catalog, obs)
    assert verdict_of(r, "sqs:setqueueattributes") == ("too_recent", "watched since 2026-10-01; judged from 2026-12-10")
    # the same with min-observation 20 days: watched 22, so unused
    r = judge(ev(role("sqs:setqueueattributes"), ct(coverage=cov), min_days=20), catalog, obs)
    assert verdict_of(r, "sqs:setqueueattributes")[0] == "unused"
    # a grant 15 days before the end, in the covered part: 12 days granted and watched
    hist = GrantHistory(True, since=(("2026-11-17", frozenset({"sqs:setqueueattributes"})),))
    r = judge(ev(role("sqs:setqueueattributes"), ct(coverage=cov), history=hist, min_days=12), catalog, obs)
    assert verdict_of(r, "sqs:setqueueattributes") == ("unused",
                                                "never used in the 12 days since it was granted on 2026-11-17")


def test_a_short_window_without_coverage_is_too_recent(catalog, obs):
    r = judge(ev(role("sqs:setqueueattributes"), ct(start="2026-11-25T00:00:00Z")), catalog, obs)
    assert verdict_of(r, "sqs:setqueueattributes") == ("too_recent", "watched since 2026-11-25; judged from 2026-12-25")
    assert r.judged.judged == 0


def test_max_idle_decides_an_action_last_seen_150_days_before_the_end(catalog, obs):
    """Issue 22: seen 2026-07-05 (150 days before the end): used with max-idle 365d, unused with 60d,
    naming the day it was last used; the last day comes from any source's record."""
    use = UsedAction(3, "2026-06-20T00:00:00Z", ("cloudtrail",), first_seen="2026-06-10T00:00:00Z",
                     by_source={"cloudtrail": SourceUse(3, "2026-06-10T00:00:00Z", "2026-07-05T10:00:00Z")})
    b = ct(start="2026-01-01T00:00:00Z", used={"sqs:purgequeue": use})
    assert judge(ev(role("sqs:purgequeue"), b, max_idle=365), catalog, obs).actions("used") == ["sqs:purgequeue"]
    r = judge(ev(role("sqs:purgequeue"), b, max_idle=60), catalog, obs)
    assert verdict_of(r, "sqs:purgequeue") == ("unused", "last used 2026-07-05, 150 days ago")
    # a grant re-added 10 days ago restarts its age: too recent, not unused
    hist = GrantHistory(True, since=(("2026-11-22", frozenset({"sqs:purgequeue"})),))
    r = judge(ev(role("sqs:purgequeue"), b, history=hist, max_idle=60), catalog, obs)
    assert verdict_of(r, "sqs:purgequeue") == ("too_recent", "granted 2026-11-22; judged from 2026-12-22")


def test_without_history_todays_verdicts_and_a_note(catalog, obs):
    unknown = GrantHistory(False, note="grant history unknown: a shallow clone; check out with fetch-depth: 0")
    p = role("sqs:setqueueattributes", "sqs:purgequeue")
    r = judge(ev(p, ct(), history=unknown), catalog, obs)
    plain = evaluate(p, ct(), catalog, obs)
    assert r.groups == plain.groups and r.actions("unused") == ["sqs:purgequeue", "sqs:setqueueattributes"]
    assert any("history" in n for n in r.notes) and not any("history" in n for n in plain.notes)
    # known=False without a note of its own still says so
    r = judge(ev(p, ct(), history=GrantHistory(False)), catalog, obs)
    assert any("history" in n and "fetch-depth: 0" in n for n in r.notes)


def test_unused_access_keeps_aws_age_rule(catalog, obs):
    """Unused by an unused-access analyzer is AWS's own verdict (it waits for the whole tracking period):
    a short baseline window does not turn it into too_recent."""
    from iamgate.model import UnusedAccessEvidence
    ua = UnusedAccessEvidence("arn:aws:access-analyzer:us-east-1:111122223333:analyzer/a", 90,
                              "2026-12-01T00:00:00Z", unused_actions={"sqs:purgequeue": None})
    b = Baseline(ROLE, window_start="2026-11-25T00:00:00Z", window_end=END,
                 sources=({"kind": "unused-access"},), unused_access=ua)
    r = judge(ev(role("sqs:purgequeue"), b), catalog, obs)
    assert r.actions("unused") == ["sqs:purgequeue"]


def test_the_unused_finding_states_the_real_period(catalog, obs):
    from iamgate.config import Config
    from iamgate.pipeline import run_checks
    use = UsedAction(3, "2026-07-05T00:00:00Z", ("cloudtrail",))
    b = ct(start="2026-01-01T00:00:00Z", used={"sqs:purgequeue": use})
    p = role("sqs:purgequeue", "sqs:deletequeue", "sqs:createqueue")
    hist = GrantHistory(True, since=(("2026-09-23", frozenset({"sqs:deletequeue"})),))
    r = judge(ev(p, b, history=hist, max_idle=60), catalog, obs)
    findings, _ = run_checks([r], [], catalog, Config())
    messages = sorted(f.message for f in findings if f.check == "unused-actions")
    assert messages == ["1 granted action last used 2026-07-05, 150 days ago",
                        "1 granted action never used between 2026-01-01 and 2026-12-02",
                        "1 granted action never used in the 70 days since it was granted on 2026-09-23"]


def test_a_grant_after_the_baseline_end_is_judged_from_its_own_day(catalog, obs):
    hist = GrantHistory(True, since=(("2026-12-05", frozenset({"sqs:purgequeue"})),))
    r = judge(ev(role("sqs:purgequeue"), ct(), history=hist), catalog, obs)
    assert verdict_of(r, "sqs:purgequeue") == ("too_recent", "granted 2026-12-05; judged from 2027-01-04")


def test_last_used_before_a_re_grant_counts_from_the_grant(catalog, obs):
    """Used in July, removed, granted again in September: 70 days unused since the grant, not "last used"."""
    b = ct(start="2026-01-01T00:00:00Z", used={"sqs:purgequeue": UsedAction(1, "2026-07-05T00:00:00Z")})
    hist = GrantHistory(True, since=(("2026-09-23", frozenset({"sqs:purgequeue"})),))
    r = judge(ev(role("sqs:purgequeue"), b, history=hist, max_idle=60), catalog, obs)
    assert verdict_of(r, "sqs:purgequeue") == ("unused", "never used in the 70 days since it was granted on 2026-09-23")
