"""New grants are judged by their risk alone, with the one rule that ranks unused actions (issue 20 item 4);
too_recent is never a failing finding."""
from __future__ import annotations

import pytest

from iamgate.config import Config
from iamgate.judge.evidence import judge
from iamgate.judge.verdicts import Observability
from iamgate.model import (
    Baseline,
    Deployment,
    Evidence,
    GrantHistory,
    Location,
    Policy,
    Principal,
    Statement,
)
from iamgate.pipeline import Report, run_checks
from iamgate.reference import support

ROLE = "arn:aws:iam::111122223333:role/app"


@pytest.fixture(scope="module")
def obs(catalog):
    return Observability(catalog, support=support.shipped())


def role(*actions, resource="*"):
    st = Statement("Allow", tuple(actions), (), (resource,), location=Location("t.yaml", 7))
    return Principal("App", "role", name="app", policies=(Policy("p", (st,)),))


BASELINE = Baseline(ROLE, window_start="2026-06-01T00:00:00Z", window_end="2026-12-01T00:00:00Z",
                    sources=({"kind": "cloudtrail", "events": 1},))


def gate(catalog, obs, principal, new, fail_on="high", history=None, baseline=BASELINE):
    history = history or GrantHistory(True, new=frozenset(new))
    deps = (Deployment("prod", "111122223333", baseline),) if baseline else ()
    r = judge(Evidence(principal, deps, history), catalog, obs)
    findings, suppressed = run_checks([r], [], catalog, Config(fail_on=fail_on))
    return r, Report(catalog=catalog.info(), results=(r,), findings=tuple(findings), fail_on=fail_on)


def test_a_new_resource_exposure_grant_fails_the_gate(catalog, obs):
    r, rep = gate(catalog, obs, role("s3:putbucketpolicy"), {"s3:putbucketpolicy"})
    assert r.actions("new") == ["s3:putbucketpolicy"] and not r.actions("unused")
    f = next(f for f in rep.findings if f.check == "resource-exposure")
    assert f.severity == "high" and f.message == "1 new action (resource exposure)"
    assert f.reason.startswith("new grant;") and rep.result == "fail"


def test_new_or_old_getsecretvalue_on_star_is_data_exfiltration(catalog, obs):
    """The same risk whether new or unused: medium, failing at fail-on medium."""
    _, new = gate(catalog, obs, role("secretsmanager:getsecretvalue"), {"secretsmanager:getsecretvalue"},
                  fail_on="medium")
    _, old = gate(catalog, obs, role("secretsmanager:getsecretvalue"), set(), fail_on="medium")
    assert [(f.check, f.severity, f.actions) for f in new.findings] == \
        [(f.check, f.severity, f.actions) for f in old.findings] == \
        [("data-exfiltration", "medium", ("secretsmanager:getsecretvalue",))]
    assert "new action" in new.findings[0].message and "unused action" in old.findings[0].message
    assert new.result == old.result == "fail"
    # on one secret it is no exfiltration risk: its access level (Read: low) ranks it
    _, narrow = gate(catalog, obs, role("secretsmanager:getsecretvalue", resource="arn:aws:secretsmanager:*:*:"
                                        "secret:db"), {"secretsmanager:getsecretvalue"}, fail_on="medium")
    assert [(f.check, f.severity) for f in narrow.findings] == [("new-grants", "low")] and narrow.result == "pass"


def test_a_new_admin_grant_fails(catalog, obs):
    _, rep = gate(catalog, obs, role("*"), catalog.all_actions)
    assert any(f.check == "admin-wildcard" and f.severity == "critical" for f in rep.findings)
    assert rep.result == "fail"


def test_a_new_escalation_is_critical_naming_the_new_action(catalog, obs):
    _, rep = gate(catalog, obs, role("iam:createaccesskey"), {"iam:createaccesskey"}, baseline=None)
    f = next(f for f in rep.findings if f.check == "privilege-escalation")
    assert f.severity == "critical" and "completed by new iam:CreateAccessKey" in f.message
    assert rep.result == "fail"


def test_a_new_tagging_grant_alone_passes_at_high(catalog, obs):
    r, rep = gate(catalog, obs, role("sqs:tagqueue", resource="arn:aws:sqs:*:*:q"), {"sqs:tagqueue"})
    # the catalog lists tagging actions as Tagging and Write: ranked by the most severe part, medium
    assert [(f.check, f.severity, f.actions) for f in rep.findings] == [("new-grants", "medium", ("sqs:tagqueue",))]
    assert rep.findings[0].message == "1 new action granted by this change"
    assert rep.result == "pass"


def test_too_recent_is_never_a_failing_finding(catalog, obs):
    hist = GrantHistory(True, since=(("2026-11-28", frozenset({"s3:putbucketpolicy", "iam:createaccesskey"})),))
    r, rep = gate(catalog, obs, role("s3:putbucketpolicy", "iam:createaccesskey"), set(), history=hist,
                  fail_on="low")
    assert r.actions("too_recent") == ["iam:createaccesskey", "s3:putbucketpolicy"]
    assert not any(set(f.actions) & {"s3:putbucketpolicy"} for f in rep.findings)
    assert not any(f.severity == "critical" for f in rep.findings)  # the escalation is not completed by it
    assert rep.failing == ()


def test_fix_keeps_new_and_too_recent_actions_even_inside_a_rewritten_wildcard(catalog, obs):
    from iamgate.fix.plan import plan
    from iamgate.model import UsedAction
    b = Baseline(ROLE, window_start="2026-06-01T00:00:00Z", window_end="2026-12-01T00:00:00Z",
                 sources=({"kind": "cloudtrail", "events": 1},),
                 used={"sqs:createqueue": UsedAction(1, "2026-11-30T00:00:00Z", ("cloudtrail",))})
    history = GrantHistory(True, new=frozenset({"sqs:deletequeue"}),
                           since=(("2026-11-25", frozenset({"sqs:purgequeue"})),))
    r = judge(Evidence(role("sqs:*"), (Deployment("prod", "111122223333", b),), history), catalog, obs)
    assert r.actions("new") == ["sqs:deletequeue"] and r.actions("too_recent") == ["sqs:purgequeue"]
    rem = plan([r], catalog)
    (fix,) = rem.statements
    kept = catalog.expand_all(list(fix.actions)).actions
    assert {"sqs:createqueue", "sqs:deletequeue", "sqs:purgequeue"} <= kept
    assert not kept & set(r.actions("unused"))
    assert "sqs:DeleteQueue" not in fix.dropped and "sqs:PurgeQueue" not in fix.dropped
    reasons = rem.principals[0].kept
    assert any(k.startswith("new (") for k in reasons) and any(k.startswith("too recent (granted 2026-11-25")
                                                                for k in reasons)


def test_the_comment_new_grants_rank_as_the_findings_do(catalog, obs):
    """Issue 20: GetSecretValue on * added by a PR was "low" in the New grants section and data exfiltration
    in the findings; both now come from one rule."""
    from iamgate.diff import compare_reports
    from iamgate.formats.markdown import MarkdownReport
    old = role("sqs:tagqueue")
    head_p = role("sqs:tagqueue", "secretsmanager:getsecretvalue")
    _, head = gate(catalog, obs, head_p, {"secretsmanager:getsecretvalue"}, fail_on="medium")
    _, base = gate(catalog, obs, old, set(), fail_on="medium")
    comp = compare_reports(head, base, "main", "0" * 40, {})
    assert [(g.actions, g.severity) for g in comp.new_grants] == [(("secretsmanager:getsecretvalue",), "medium")]
    finding = next(f for f in head.findings if "secretsmanager:getsecretvalue" in f.actions)
    assert (finding.check, finding.severity) == ("data-exfiltration", "medium")
    from dataclasses import replace
    text = MarkdownReport(replace(head, comparison=comp, new_keys=comp.new_keys)).render()
    row = next(line for line in text.splitlines() if line.startswith("| App |") and "GetSecretValue" in line)
    assert "medium" in row
