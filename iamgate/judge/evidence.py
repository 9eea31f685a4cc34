"""The judge over all its evidence (design.md, "What the judge sees"): a principal's deployments, its grant
history and each baseline's observation history -> one verdict per granted action.

In design.md's order: unknown; new (granted by this change: judged by its risk alone, never unused);
no-usage-data when no deployment has a baseline. Then per deployment, `verdicts.Decider` decides used,
unobservable and unused from the baseline's sources, and the time rules follow: an action is used only
when seen within `max-idle` of the baseline's end; an observable action not seen is `too_recent` while it
was granted and watched for less than `min-observation`; else unused, with the real period. Across
deployments the most cautious verdict wins (`model.CAUTION`); a named deployment without a baseline makes
what the others call unused no-usage-data. Everything is decided over sets of actions: a grant can hold
22,000 of them.
"""
from __future__ import annotations

import datetime as dt
from typing import Iterable

from ..model import (
    CAUTION,
    NEW,
    NO_DATA,
    TOO_RECENT,
    UNKNOWN,
    UNUSED,
    USED,
    Baseline,
    Deployment,
    Evidence,
    GrantHistory,
    PrincipalResult,
    UsedAction,
)
from ..reference.catalog import Catalog
from . import grants as grants_mod

NEW_REASON = "granted by this change: nothing can have used it yet"
NO_BASELINE = "no baseline for this principal"
HISTORY_NOTE = ("grant history unknown: each grant is judged as if granted before the baseline's window; "
                "check out with fetch-depth: 0 so the history can tell when each action was granted")
Groups = dict[str, dict[str, frozenset]]


def day(text) -> dt.date | None:
    """The UTC day of an ISO-8601 date or timestamp (`2026-08-24`, `2026-08-24T00:00:00Z`)."""
    if not text:
        return None
    try:
        return dt.date.fromisoformat(str(text)[:10])
    except ValueError:
        return None


def watched(b: Baseline) -> list[tuple[dt.date, dt.date]]:
    """The days the baseline's working sources watched, merged: its coverage intervals, else its window."""
    spans = []
    kinds = b.source_kinds
    for kind, intervals in (b.coverage or {}).items():
        if kinds and kind not in kinds:  # a source that failed watched nothing
            continue
        spans += [(day(i.start), day(i.end)) for i in intervals]
    spans = [(s, e) for s, e in spans if s and e and s < e]
    if not spans and day(b.window_start) and day(b.window_end):
        spans = [(day(b.window_start), day(b.window_end))]
    merged: list[tuple[dt.date, dt.date]] = []
    for s, e in sorted(spans):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((s, e))
    return merged


def baseline_end(b: Baseline) -> dt.date | None:
    """The end of what the baseline saw: its window's end, else its last coverage interval's."""
    spans = watched(b)
    return day(b.window_end) or (spans[-1][1] if spans else None)


def days_watched(spans, since: dt.date | None, end: dt.date) -> int:
    """Days of `spans` after `since` (the grant day; None: before them all) and before `end`."""
    return sum(max(0, (min(e, end) - max(s, since or s)).days) for s, e in spans)


def last_seen(used: UsedAction | None) -> dt.date | None:
    """The last day any source saw the action (None: no date recorded)."""
    if used is None:
        return None
    days = [day(used.last_seen)] + [day(u.last_seen) for u in (used.by_source or {}).values()]
    days = [d for d in days if d]
    return max(days) if days else None


def by_grant_day(actions: frozenset, history: GrantHistory | None) -> dict[dt.date | None, frozenset]:
    """The actions by the day they were granted continuously since (None: unknown, or before the history)."""
    out: dict[dt.date | None, frozenset] = {}
    taken: set = set()
    if history is not None and history.known:
        for when, acts in history.since:
            hit = (actions & acts) - taken  # `&` walks the smaller set: no copy of a large grant
            if hit and day(when):
                out[day(when)] = out.get(day(when), frozenset()) | hit
                taken |= hit
    rest = actions - taken if taken else actions
    if rest:
        out[None] = rest
    return out


def _put(groups: Groups, verdict: str, reason: str, actions) -> None:
    if actions:
        reasons = groups.setdefault(verdict, {})
        had = reasons.get(reason)
        reasons[reason] = frozenset(actions) if had is None else had | actions  # no copy of a first set


def timed(groups: Groups, b: Baseline, aged: frozenset, history: GrantHistory | None, min_days: int,
          max_idle: int) -> Groups:
    """One deployment's verdicts with the time rules applied: max-idle on what was used, min-observation on
    what was not, and the real period in each unused reason. `aged`: unused by an unused-access analyzer,
    which applies AWS's own age rule (a permission is judged once it existed for the whole tracking period)."""
    end = baseline_end(b)
    if end is None:  # no window and no coverage: nothing to time
        return groups
    out: Groups = {v: dict(r) for v, r in groups.items() if v not in (USED, UNUSED)}
    stale: dict[dt.date, set] = {}
    for reason, acts in groups.get(USED, {}).items():
        idle = set()
        for a in acts:
            seen = last_seen(b.used.get(a))
            if seen is not None and (end - seen).days > max_idle:
                stale.setdefault(seen, set()).add(a)
                idle.add(a)
        _put(out, USED, reason, acts - idle if idle else acts)
    unused = groups.get(UNUSED, {})
    spans = watched(b)
    first = spans[0][0] if spans else None
    dated = history is not None and history.known and history.since
    if not stale and not dated and days_watched(spans, None, end) >= min_days:
        if unused:  # watched long enough, no grant dates, nothing idle: the baseline's verdicts stand
            out[UNUSED] = dict(unused)
        return out
    candidates = frozenset().union(*unused.values(), *map(frozenset, stale.values())) - aged
    for reason, acts in unused.items():
        _put(out, UNUSED, reason, acts & aged)
    for granted_on, acts in by_grant_day(candidates, history).items():
        n = days_watched(spans, granted_on, end)
        if n < min_days:
            since = f"granted {granted_on}" if granted_on else (f"watched since {first}" if first else "not watched")
            after = max(end, granted_on) if granted_on else end  # granted after the baseline's end: from then
            _put(out, TOO_RECENT, f"{since}; judged from {after + dt.timedelta(days=min_days - n)}", acts)
            continue
        fresh = granted_on is not None and first is not None and granted_on > first
        since_granted = f"never used in the {n} days since it was granted on {granted_on}"
        for seen, idle in stale.items():
            hit = acts & idle
            if hit:  # last used before a removal and re-grant: its age restarted at the grant
                _put(out, UNUSED, since_granted if fresh and granted_on > seen else
                     f"last used {seen}, {(end - seen).days} days ago", hit)
                acts = acts - hit
        for reason, unseen in unused.items():
            hit = acts & unseen
            if hit:
                _put(out, UNUSED, since_granted if fresh else reason, hit)
    return out


def _names(deployments: Iterable[Deployment]) -> str:
    names = [d.name for d in deployments]
    return (", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]) + \
        (" have" if len(names) > 1 else " has")


def combine(per: list[tuple[Deployment, Groups]], missing: tuple[Deployment, ...]) -> Groups:
    """The most cautious verdict of the deployments, per action; unused only where every deployment with a
    baseline saw it unused, and none lacks a baseline."""
    if len(per) == 1 and not missing:
        return per[0][1]
    out: Groups = {}
    decided: frozenset = frozenset()
    order = list(CAUTION) + sorted({v for _, g in per for v in g} - set(CAUTION))
    for verdict in order:
        mine = frozenset().union(*(acts for _, g in per for acts in g.get(verdict, {}).values())) - decided
        if not mine:
            continue
        if verdict == UNUSED and missing:
            _put(out, NO_DATA, f"{_names(missing)} no baseline", mine)
        else:
            left = mine
            for _, g in per:
                for reason, acts in g.get(verdict, {}).items():
                    hit = acts & left
                    _put(out, verdict, reason, hit)
                    left -= hit
        decided |= mine
    return out


def used_where(per: list[tuple[Deployment, Groups]], used: frozenset) -> dict[tuple[str, ...], frozenset]:
    """Deployment names -> the used actions seen used in exactly those deployments."""
    parts: dict[tuple[str, ...], frozenset] = {(): used}
    for d, g in per:
        mine = frozenset().union(*g.get(USED, {}).values())
        split: dict[tuple[str, ...], frozenset] = {}
        for names, acts in parts.items():
            for key, hit in ((names + (d.name,), acts & mine), (names, acts - mine)):
                if hit:
                    split[key] = split.get(key, frozenset()) | hit
        parts = split
    return {k: v for k, v in parts.items() if k}


def baseline_notes(b: Baseline, catalog: Catalog) -> list[str]:
    from .verdicts import failed_source_notes
    notes = []
    unknown_used = sorted(a for a in b.used if a not in catalog)
    if unknown_used:
        notes.append("baseline lists actions not in the catalog: " + ", ".join(unknown_used))
    if not b.complete:
        notes.append("the usage source reported its result as incomplete")
    return notes + failed_source_notes(b)


def judge(evidence: Evidence, catalog: Catalog, obs=None) -> PrincipalResult:
    """Every granted action of the evidence's principal, decided from all of its evidence."""
    from .verdicts import Decider, default_observability
    obs = obs or default_observability(catalog)
    p, history = evidence.principal, evidence.history
    g = grants_mod.compute(p, catalog)
    new = g.actions & history.new if history is not None and history.new else frozenset()
    rest = g.actions - new if new else g.actions
    judged_in = tuple(d for d in evidence.deployments if d.baseline is not None)
    missing = tuple(d for d in evidence.deployments if d.baseline is None)
    groups: Groups = {}
    per: list[tuple[Deployment, Groups]] = []
    if not judged_in:
        _put(groups, NO_DATA, f"{_names(missing)} no baseline" if missing else NO_BASELINE, rest)
    else:
        for d in judged_in:
            mine = rest
            if d.principal is not None and d.principal is not p:  # resolved differently in this deployment
                mine = rest & grants_mod.compute(d.principal, catalog).actions
            decider = Decider(d.baseline, obs)
            got = decider.groups(mine)
            per.append((d, timed(got, d.baseline, decider.aged, history, evidence.min_observation_days,
                                 evidence.max_idle_days)))
        groups = combine(per, missing)
    if new:
        groups[NEW] = {NEW_REASON: new}
    if g.unknown:
        groups[UNKNOWN] = {"not in the action catalog": frozenset(g.unknown)}
    notes = []
    for d in judged_in:
        prefix = f"{d.name}: " if len(judged_in) > 1 else ""
        notes += [prefix + n for n in baseline_notes(d.baseline, catalog)]
    if history is not None and not history.known:
        notes.append(history.note or HISTORY_NOTE)
    used = frozenset().union(*groups.get(USED, {}).values())
    return PrincipalResult(p, judged_in[0].baseline if judged_in else None, groups, tuple(g.allows),
                           {k: tuple(v) for k, v in g.unknown.items()}, tuple(g.deny_notes), tuple(notes),
                           granted_actions=g.actions, deployments=tuple(evidence.deployments),
                           used_in=used_where(per, used) if per else {}, history=history)
