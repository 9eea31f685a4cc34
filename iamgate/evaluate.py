"""Stage 3: a principal's grants + its baseline -> a verdict for every granted action.

The order is fixed (see the README): unknown, no-usage-data, used, service-level only,
unobservable by nature, not covered by the usage source, unused.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from functools import cached_property, lru_cache
from importlib import resources

from . import grants as grants_mod
from .catalog import Catalog
from .model import Baseline, Principal, PrincipalResult

USED, UNUSED, UNOBSERVABLE, UNKNOWN, NO_DATA = "used", "unused", "unobservable", "unknown", "no-usage-data"
VERDICTS = (USED, UNUSED, UNOBSERVABLE, UNKNOWN, NO_DATA)

REASONS = {
    "data-event": "data event: management-event usage never shows it",
    "not-logged": "authorization-only permission: never logged as a call of its own",
    "permissionless": "needs no permission: never recorded as usage",
    "config": "configured as unobservable",
}
# Usage sources whose coverage is limited to Access Analyzer's list of action-level services.
LIMITED_COVERAGE_KINDS = {"access-analyzer", "last-accessed"}


def _data(name: str) -> dict:
    try:
        return json.loads(resources.files("iamgate").joinpath(f"data/{name}").read_text())
    except FileNotFoundError:
        return {}


@dataclass(frozen=True)
class Unobservable:
    reason: str  # key of REASONS
    service: str


class Observability:
    """What each usage source can and cannot see, from cited data files plus the config."""

    def __init__(self, catalog: Catalog, extra: tuple[str, ...] = ()):
        self.catalog = catalog
        self._services: dict[frozenset, frozenset] = {}
        by_reason: dict[str, set[str]] = {}
        for entry in _data("unobservable.json").get("entries", []):
            by_reason.setdefault(entry["reason"], set()).update(catalog.expand(entry["pattern"]).actions)
        configured: set[str] = set()
        for pattern in extra:
            configured |= catalog.expand(pattern).actions
        self.configured = frozenset(configured)
        self.data_events = frozenset(by_reason.pop("data-event", set())) - self.configured
        self.by_reason = {r: frozenset(a) - self.configured for r, a in by_reason.items()}
        # never attributed to a service's use, so "never accessed" does not decide them
        self.always_unobservable = frozenset().union(*(self.by_reason.get(r, frozenset())
                                                       for r in ("not-logged", "permissionless")))
        aa = _data("access_analyzer_services.json")
        self.action_level_services = frozenset(s.lower() for s in aa.get("action_level", []))
        self._uncovered_all = frozenset().union(*(acts for svc, acts in catalog._by_service.items()
                                                  if svc not in self.action_level_services))

    @cached_property
    def by_action(self) -> dict[str, Unobservable]:
        """The curated table per action: why a source cannot see it."""
        out = {a: Unobservable("data-event", a.partition(":")[0]) for a in self.data_events}
        for reason, actions in self.by_reason.items():
            out.update({a: Unobservable(reason, a.partition(":")[0]) for a in actions})
        out.update({a: Unobservable("config", a.partition(":")[0]) for a in self.configured})
        return out

    def services(self, services) -> frozenset:
        key = frozenset(services)
        hit = self._services.get(key)
        if hit is None:
            hit = self._services[key] = frozenset().union(*(self.catalog.service_actions(s) for s in key))
        return hit

    def natural_sets(self, baseline: Baseline):
        """(reason, actions) a source can never see; data events only where it saw none for the service."""
        yield REASONS["config"], self.configured
        data = self.data_events
        if baseline.data_events_observed:
            data = data - self.services(baseline.data_events_observed)
        yield REASONS["data-event"], data
        for reason, actions in self.by_reason.items():
            yield REASONS.get(reason, reason), actions

    def uncovered(self, baseline: Baseline) -> frozenset:
        """Actions of services the baseline's sources do not see at action level."""
        kinds = baseline.source_kinds
        if not kinds or not kinds <= LIMITED_COVERAGE_KINDS or not self.action_level_services:
            return frozenset()
        seen_elsewhere = {a.partition(":")[0] for a, u in baseline.used.items()
                          if set(u.signals) - {"access-analyzer"}}
        return self._uncovered_all - self.services(seen_elsewhere) if seen_elsewhere else self._uncovered_all


@lru_cache(maxsize=1)
def default_observability(catalog: Catalog) -> Observability:
    return Observability(catalog)


class Decider:
    """The verdict order for one principal, decided over sets of actions rather than one by one."""

    def __init__(self, baseline: Baseline | None, obs: Observability):
        self.baseline, self.obs = baseline, obs

    def __call__(self, action: str) -> tuple[str, str]:
        for verdict, reasons in self.groups(frozenset({action})).items():
            for reason in reasons:
                return verdict, reason
        raise AssertionError("every action gets a verdict")

    def groups(self, granted: frozenset) -> dict[str, dict[str, frozenset]]:
        out: dict[str, dict[str, frozenset]] = {}

        def put(verdict: str, reason: str, actions) -> None:
            if actions:
                out.setdefault(verdict, {})[reason] = frozenset(actions)

        b, obs = self.baseline, self.obs
        if b is None:
            put(NO_DATA, "no baseline for this principal", granted)
            return out
        used = granted & b.used.keys()
        by_signals: dict[tuple, list[str]] = {}
        for a in used:
            by_signals.setdefault(b.used[a].signals, []).append(a)
        for signals, acts in sorted(by_signals.items()):
            put(USED, f"observed ({', '.join(signals) or 'baseline'})", acts)
        rest = granted - used
        if b.unused_access is not None:  # an unused-access analyzer decides what it judged (usage/unused_access.py)
            from .usage.unused_access import KIND, decide as decide_unused_access
            judged = decide_unused_access(rest, b, obs)
            for verdict, reasons in judged.groups.items():
                for reason, acts in reasons.items():
                    put(verdict, reason, acts)
            if b.source_kinds <= {KIND}:  # no other source: what it leaves has no usage data
                for reason, acts in judged.remainder.items():
                    put(NO_DATA, reason, acts)
                return out
            rest = judged.left
        if b.not_accessed_services:
            never = (rest & obs.services(b.not_accessed_services)) - obs.always_unobservable
            put(UNUSED, "service never accessed in the tracking period (last accessed)", never)
            rest -= never
        if b.service_level_only:
            service_level = rest & obs.services(b.service_level_only)
            put(UNOBSERVABLE, "service-level usage only", service_level)
            rest -= service_level
        for reason, actions in obs.natural_sets(b):
            hit = rest & actions
            put(UNOBSERVABLE, reason, hit)
            rest -= hit
        uncovered = obs.uncovered(b)
        if uncovered:
            hit = rest & uncovered
            put(UNOBSERVABLE, "not covered by the usage source", hit)
            rest -= hit
        put(UNUSED, "not observed in the window", rest)
        return out


def decide(action: str, baseline: Baseline | None, obs: Observability) -> tuple[str, str]:
    return Decider(baseline, obs)(action)


def evaluate(principal: Principal, baseline: Baseline | None, catalog: Catalog,
             obs: Observability | None = None) -> PrincipalResult:
    obs = obs or default_observability(catalog)
    g = grants_mod.compute(principal, catalog)
    groups = Decider(baseline, obs).groups(g.actions)
    if g.unknown:
        groups[UNKNOWN] = {"not in the action catalog": frozenset(g.unknown)}
    notes = []
    if baseline is not None:
        unknown_used = sorted(a for a in baseline.used if a not in catalog)
        if unknown_used:
            notes.append("baseline lists actions not in the catalog: " + ", ".join(unknown_used))
        if not baseline.complete:
            notes.append("the usage source reported its result as incomplete")
    return PrincipalResult(principal, baseline, groups, tuple(g.allows),
                           {k: tuple(v) for k, v in g.unknown.items()}, tuple(g.deny_notes), tuple(notes),
                           granted_actions=g.actions)
