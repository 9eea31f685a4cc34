"""Stage 3: a principal's grants + its baseline -> a verdict for every granted action.

The order is fixed (see the README): unknown, no-usage-data, used, service-level only,
unobservable by nature, not covered by the usage source, unused.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from . import grants as grants_mod
from .catalog import Catalog
from .model import Baseline, Principal, PrincipalResult, Verdict

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
        self.by_action: dict[str, Unobservable] = {}
        for entry in _data("unobservable.json").get("entries", []):
            for a in catalog.expand(entry["pattern"]).actions:
                self.by_action.setdefault(a, Unobservable(entry["reason"], a.partition(":")[0]))
        for pattern in extra:
            for a in catalog.expand(pattern).actions:
                self.by_action[a] = Unobservable("config", a.partition(":")[0])
        aa = _data("access_analyzer_services.json")
        self.action_level_services = frozenset(s.lower() for s in aa.get("action_level", []))

    def natural(self, action: str, baseline: Baseline) -> str | None:
        """Why a source can never see `action` (data event, PassRole, permissionless), if so."""
        u = self.by_action.get(action)
        if u is None:
            return None
        if u.reason == "data-event" and u.service in baseline.data_events_observed:
            return None
        return REASONS.get(u.reason, u.reason)

    def covered(self, service: str, baseline: Baseline) -> bool:
        kinds = baseline.source_kinds
        if not kinds or not kinds <= LIMITED_COVERAGE_KINDS or not self.action_level_services:
            return True
        if service in self.action_level_services:
            return True
        return any(a.partition(":")[0] == service and set(u.signals) - {"access-analyzer"}
                   for a, u in baseline.used.items())


@lru_cache(maxsize=1)
def default_observability(catalog: Catalog) -> Observability:
    return Observability(catalog)


def decide(action: str, baseline: Baseline | None, obs: Observability) -> tuple[str, str]:
    if baseline is None:
        return NO_DATA, "no baseline for this principal"
    if action in baseline.used:
        signals = ", ".join(baseline.used[action].signals) or "baseline"
        return USED, f"observed ({signals})"
    service = action.partition(":")[0]
    natural = obs.natural(action, baseline)
    if service in baseline.not_accessed_services and natural not in (REASONS["not-logged"], REASONS["permissionless"]):
        return UNUSED, "service never accessed in the tracking period (last accessed)"
    if service in baseline.service_level_only:
        return UNOBSERVABLE, "service-level usage only"
    if natural:
        return UNOBSERVABLE, natural
    if not obs.covered(service, baseline):
        return UNOBSERVABLE, "not covered by the usage source"
    return UNUSED, "not observed in the window"


def evaluate(principal: Principal, baseline: Baseline | None, catalog: Catalog,
             obs: Observability | None = None) -> PrincipalResult:
    obs = obs or default_observability(catalog)
    g = grants_mod.compute(principal, catalog)
    verdicts = []
    for pattern, stmts in sorted(g.unknown.items()):
        verdicts.append(Verdict(pattern, UNKNOWN, "not in the action catalog",
                                tuple(dict.fromkeys(s.location for s in stmts if s.location)), tuple(stmts)))
    for action in sorted(g.actions):
        stmts = g.actions[action]
        verdict, reason = decide(action, baseline, obs)
        verdicts.append(Verdict(action, verdict, reason,
                                tuple(dict.fromkeys(s.location for s in stmts if s.location)), tuple(stmts),
                                "; ".join(g.notes.get(action, ()))))
    notes = []
    if baseline is not None:
        unknown_used = sorted(a for a in baseline.used if a not in catalog)
        if unknown_used:
            notes.append("baseline lists actions not in the catalog: " + ", ".join(unknown_used))
        if not baseline.complete:
            notes.append("the usage source reported its result as incomplete")
    return PrincipalResult(principal, baseline, tuple(verdicts), tuple(notes))
