"""Verdicts from an unused-access baseline (`iamgate usage unused-access` writes it): the judge stage.

A finding lists what is unused; what was used is the rest of the deployed grant the analyzer
judged. So the deployed policies recorded in the baseline are expanded with iamgate's catalog and
`judge` decides over them (see `judge` for the rules); `iamgate.judge.verdicts` calls `decide` before
the other sources of the baseline. `recommendation_lines` shows AWS's recommended policy beside
iamgate's fix (`iamgate fix`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Iterable

from ..model import UNOBSERVABLE, UNUSED, UNUSED_ACCESS_KIND, USED, Baseline, Policy, Principal, UnusedAccessEvidence
from ..sources.policy_document import parse_policy
from . import grants

KIND = UNUSED_ACCESS_KIND  # the baseline source kind these verdicts are for


@dataclass(frozen=True)
class Judgement:
    """What this source decided (verdict -> reason -> actions) and what it leaves (reason -> actions)."""
    groups: dict = field(default_factory=dict)
    remainder: dict = field(default_factory=dict)

    @property
    def left(self) -> frozenset:
        return frozenset().union(*self.remainder.values())


def judge(granted: frozenset, ev: UnusedAccessEvidence, deployed: frozenset | None, too_new: frozenset,
          tracked: frozenset, service_actions: Callable[[Iterable[str]], frozenset],
          not_by_service: frozenset = frozenset()) -> Judgement:
    """The verdicts an unused-access baseline decides for `granted` (lowercase actions).

    - not analysed (no `analyzedAt`, or the principal is newer than the tracking period): nothing
      decided here; every action is left with that reason (no-usage-data when no other source has it);
    - an action reported unused: unused; a service reported unused at service level: all of its
      deployed actions unused, except `not_by_service` (never attributed to a service's use, such
      as `iam:PassRole`); `UnusedIAMRole`: the whole deployed grant unused;
    - a deployed action AWS tracks at action level (`tracked`: the last-accessed flag) and did not
      report: used, unless its service was reported unused (a `not_by_service` one: unobservable);
      an untracked one of a service not reported: unobservable (service-level usage only);
    - an action the deployed grant lacks (a new grant), or granted only by a policy newer than the
      tracking period (`too_new`): not judged, left for the other sources.
    """
    groups: dict[str, dict[str, frozenset]] = {}
    remainder: dict[str, frozenset] = {}

    def put(verdict: str, reason: str, actions) -> None:
        if actions:
            groups.setdefault(verdict, {})[reason] = frozenset(actions)

    def leave(reason: str, actions) -> None:
        if actions:
            remainder[reason] = frozenset(actions)

    period = f"{ev.tracking_days}-day tracking period"
    if ev.analyzed_at is None:
        leave(f"not analysed by the unused-access analyzer: {ev.not_analysed or 'no analysis yet'}", granted)
        return Judgement(groups, remainder)
    rest = granted
    hit = rest & ev.unused_actions.keys()
    put(UNUSED, f"reported unused by Access Analyzer ({period})", hit)
    rest -= hit
    if deployed is None:
        leave("the deployed grant was not read, so only actions reported unused are judged", rest)
        return Judgement(groups, remainder)
    judged = deployed - too_new
    if ev.unused_role:
        put(UNUSED, f"role not used at all in the {period} (UnusedIAMRole)", rest & judged)
        rest -= judged
    spared = frozenset()  # of a service reported unused, yet not decided by it: never used either
    if ev.unused_services:
        of_unused = rest & judged & service_actions(ev.unused_services)
        spared = of_unused & not_by_service
        put(UNUSED, f"service not used in the {period} (Access Analyzer, service level)", of_unused - spared)
        rest -= of_unused - spared
    hit = (rest & judged & tracked) - spared
    put(USED, f"not reported unused by Access Analyzer ({period}, tracked per action)", hit)
    rest -= hit
    hit = rest & judged
    put(UNOBSERVABLE, "service-level usage only", hit)
    rest -= hit
    leave("granted by a policy newer than the tracking period: not analysed yet", rest & deployed)
    leave("not in the deployed grant the analyzer judged (a new grant)", rest - deployed)
    return Judgement(groups, remainder)


def deployed_grant(ev: UnusedAccessEvidence, catalog, window_start: str | None) -> tuple[frozenset, frozenset]:
    """(everything the deployed policies grant, what only policies newer than `window_start` grant)."""
    return _deployed_grant(json.dumps(ev.deployed_policies or (), sort_keys=True), catalog, window_start)


@lru_cache(maxsize=1024)  # keyed by the policies' text: principals with the same policies share it
def _deployed_grant(policies: str, catalog, window_start: str | None) -> tuple[frozenset, frozenset]:
    old, new = [], []
    for p in json.loads(policies):
        parsed = parse_policy(p.get("document"), f"deployed:{p.get('arn') or p.get('name')}")
        policy = Policy(str(p.get("name")), tuple(parsed.statements))
        created = p.get("created")
        (new if created and window_start and created > window_start else old).append(policy)
    everything = grants.compute(Principal("deployed", "role", policies=tuple(old + new)), catalog).actions
    if not new:
        return everything, frozenset()
    judged = grants.compute(Principal("deployed", "role", policies=tuple(old)), catalog).actions
    return everything, everything - judged


def decide(granted: frozenset, baseline: Baseline, obs) -> Judgement:
    """`judge` for a baseline with an unused-access section, with iamgate's catalog and support data
    (`obs`: an `iamgate.judge.verdicts.Observability`). Actions the config lists as unobservable stay
    unobservable whatever AWS reports: `Decider.groups` takes them out before it calls this."""
    ev = baseline.unused_access
    deployed, too_new = (None, frozenset()) if ev.deployed_policies is None else deployed_grant(
        ev, obs.catalog, baseline.window_start)
    return judge(granted, ev, deployed, too_new, obs.support.last_accessed, obs.services, obs.always_unobservable)


# -- AWS's recommendation beside iamgate's fix -----------------------------------------------------

def _is_policy(p: dict, ref: str | None) -> bool:
    """Whether a recommendation step's `existingPolicyId` (a managed policy ARN, or an inline policy's name) is p."""
    if not ref:
        return False
    return ref == p.get("arn") or (not p.get("arn") and str(p.get("name", "")).rsplit("/", 1)[-1] == ref)


def recommended_grant(ev: UnusedAccessEvidence, catalog) -> frozenset | None:
    """What the principal would be granted after AWS's recommended steps (None: no recommendation)."""
    rec = ev.recommendation or {}
    steps = [s for s in rec.get("steps") or () if s.get("action") in ("CREATE_POLICY", "DETACH_POLICY")]
    if not steps or ev.deployed_policies is None:
        return None
    docs = []
    for p in ev.deployed_policies:
        step = next((s for s in steps if _is_policy(p, s.get("existing_policy"))), None)
        if step is None:
            docs.append(p.get("document"))
        elif step["action"] == "CREATE_POLICY" and step.get("policy"):
            docs.append(step["policy"])
    policies = tuple(Policy("recommended", tuple(parse_policy(d, "recommended").statements)) for d in docs)
    return grants.compute(Principal("recommended", "role", policies=policies), catalog).actions


def recommendation_lines(result, dropped, catalog, limit: int = 8) -> list[str]:
    """AWS's recommended policy for a principal beside iamgate's fix, and where the two differ (by action)."""
    b = result.baseline
    ev = b.unused_access if b is not None else None
    aws = recommended_grant(ev, catalog) if ev is not None else None
    if aws is None:
        return []
    rec = ev.recommendation
    name = result.principal.id
    lines = [f"{name}: AWS Access Analyzer recommends (finding {rec.get('finding_id')}):"]
    for s in rec["steps"]:
        target = s.get("existing_policy") or "a new policy"
        if s["action"] == "DETACH_POLICY":
            lines.append(f"  detach {target}")
        else:
            lines.append(f"  replace {target} with {json.dumps(s.get('policy'), separators=(',', ':'))}")
    deployed, _ = deployed_grant(ev, catalog, b.window_start)
    ours = (result.granted - frozenset(dropped)) & deployed  # AWS judged the deployed grant only
    aws_keeps, we_keep = sorted((aws & result.granted) - ours), sorted(ours - aws)

    def short(acts):
        return ", ".join(acts[:limit]) + (f" and {len(acts) - limit} more" if len(acts) > limit else "")
    if not aws_keeps and not we_keep:
        lines.append(f"{name}: AWS's recommendation and iamgate's fix keep the same actions")
    if aws_keeps:
        lines.append(f"{name}: differs: AWS keeps {len(aws_keeps)} action(s) iamgate drops: {short(aws_keeps)}")
    if we_keep:
        lines.append(f"{name}: differs: iamgate keeps {len(we_keep)} action(s) AWS drops (iamgate keeps what it "
                     f"cannot judge unused): {short(we_keep)}")
    return lines
