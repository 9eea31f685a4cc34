"""Stage 3: a principal's grants + one baseline -> a verdict for every granted action.

The order is fixed (see the README): unknown, no-usage-data, used, configured as unobservable,
service never accessed (unused), service-level only, then per action and per usage source: unused where
any source of the baseline would have reported it, else unobservable with each source's reason.
`Decider` decides this for one baseline; `evidence.judge` runs it per deployment, applies the time rules
(new, too_recent, max-idle) and takes the most cautious verdict across deployments. `evaluate` is `judge`
with a single baseline.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib import resources
from typing import Callable

from ..model import (
    NEW,
    NO_DATA,
    TOO_RECENT,
    UNKNOWN,
    UNOBSERVABLE,
    UNUSED,
    USED,
    VERDICTS,
    Baseline,
    Deployment,
    Evidence,
    GrantHistory,
    Principal,
    PrincipalResult,
)
from ..reference import support as support_mod
from ..reference.catalog import Catalog, less
from ..reference.support import ActionSupport
from .unused_access import KIND
from .unused_access import decide as decide_unused_access

REASONS = {
    "data-event": "data event: {source} has no data events of this service for this principal",
    "data-event-unreported": "data event: {source} does not report data events",
    "not-logged": "authorization-only permission: {source} never logs it as a call of its own",
    "permissionless": "needs no permission: {source} never records it as usage",
    "config": "configured as unobservable",
}
NOT_REPORTED_BY_ACCESS_ANALYZER = "Access Analyzer does not report this action"
NOT_TRACKED_BY_LAST_ACCESSED = "IAM last accessed does not track this action"
NO_SUPPORT_DATA = "no AWS support data for this action (data of {date}); run `iamgate data update`"
SERVICE_LEVEL = "service-level usage only"
NEVER_ACCESSED = "service never accessed in the tracking period (last accessed)"
NOT_OBSERVED = "not observed in the window"
ALL_SOURCES_FAILED = "every usage source of the baseline failed"
# How the blind-spot summary counts each reason ("392 unobservable: 301 data events, ..."): (prefix, label)
SHORT_REASONS = (("data event:", "data event"), ("authorization-only permission:", "authorization-only permission"),
                 ("needs no permission:", "permissionless call"), (REASONS["config"], "configured as unobservable"),
                 (NOT_REPORTED_BY_ACCESS_ANALYZER, "not reported by Access Analyzer"),
                 (NOT_TRACKED_BY_LAST_ACCESSED, "not tracked by IAM last accessed"),
                 ("no AWS support data", "without AWS support data"), (SERVICE_LEVEL, "service-level usage only"))
COUNTED = {"data event", "authorization-only permission", "permissionless call"}  # nouns: plural after 2+


def _data(name: str) -> dict:
    try:
        return json.loads(resources.files("iamgate").joinpath(f"data/{name}").read_text())
    except FileNotFoundError:
        return {}


@dataclass(frozen=True)
class Unobservable:
    reason: str  # key of REASONS
    service: str


@dataclass(frozen=True)
class SourceView:
    """What one usage source of a baseline would have reported, had the principal used it."""
    covered: frozenset[str]
    blind: tuple[tuple[str, frozenset], ...] = ()  # (reason, actions) for what it cannot see, first match wins
    otherwise: str = "not covered by the usage source"  # the reason for any other action it cannot see


# Baseline source kind -> its view. A new usage source kind registers its own with `@coverage(kind)`;
# a kind without one is read as CloudTrail (every management event).
COVERAGE: dict[str, Callable[["Observability", Baseline], SourceView]] = {}
SOURCE_NAMES = {"access-analyzer": "Access Analyzer", "last-accessed": "IAM last accessed",
                "cloudtrail": "CloudTrail"}


def coverage(kind: str):
    def register(fn):
        COVERAGE[kind] = fn
        return fn
    return register


class Observability:
    """What each usage source can and cannot see: AWS's per-action support data (`iamgate.reference.support`),
    cited data files, and the config."""

    def __init__(self, catalog: Catalog, extra: tuple[str, ...] = (), support: ActionSupport | None = None):
        self.catalog = catalog
        self.support = support if support is not None else support_mod.load()
        self._services: dict[frozenset, frozenset] = {}
        self._views: dict[tuple, SourceView] = {}
        self.shared: dict[tuple, tuple] = {}  # Decider: a large grant's verdicts, split once (`_shared_steps`)
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
        # catalog actions AWS's data does not list (newer than the data): no source's flags cover them
        self.unlisted = catalog.all_actions - self.support.listed
        self.no_data_reason = NO_SUPPORT_DATA.format(date=self.support.date or "unknown date")

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

    def view(self, kind: str, baseline: Baseline) -> SourceView:
        fn = COVERAGE.get(kind)
        return fn(self, baseline) if fn else _management_events(self, baseline, kind)

    def cached_view(self, key: tuple, build: Callable[[], SourceView]) -> SourceView:
        hit = self._views.get(key)
        if hit is None:
            hit = self._views[key] = build()
        return hit

    def never_accessed(self, baseline: Baseline) -> frozenset:
        """Actions of services last accessed shows never accessed: unused, whatever the per-action flags
        (service-level tracking covers every action AWS's data lists for the service)."""
        return (self.services(baseline.not_accessed_services) & self.support.listed) - self.always_unobservable


def _curated(obs: Observability, name: str, data_reason: str, data_events: frozenset) -> tuple:
    """(reason, actions) from the cited table, naming the source: why it cannot see them."""
    return ((REASONS[data_reason].format(source=name), data_events),
            *((REASONS[r].format(source=name), obs.by_reason[r]) for r in ("not-logged", "permissionless")
              if r in obs.by_reason))


def _flagged(obs: Observability, kind: str, covered: frozenset, otherwise: str) -> SourceView:
    """A source whose coverage is one of AWS's SupportedBy flags; the cited table only explains, in the
    reason, why an action it does not cover is missing (a data event, `iam:PassRole`, ...)."""
    name = SOURCE_NAMES[kind]
    return obs.cached_view((kind,), lambda: SourceView(
        covered, ((obs.no_data_reason, obs.unlisted), *_curated(obs, name, "data-event-unreported", obs.data_events)),
        otherwise))


@coverage("access-analyzer")
def _access_analyzer(obs: Observability, baseline: Baseline) -> SourceView:
    """Policy generation reports exactly the actions whose `IAM Access Analyzer Policy Generation` flag is true."""
    return _flagged(obs, "access-analyzer", obs.support.generation, NOT_REPORTED_BY_ACCESS_ANALYZER)


@coverage("last-accessed")
def _last_accessed(obs: Observability, baseline: Baseline) -> SourceView:
    """Action last accessed tracks exactly the actions whose `IAM Action Last Accessed` flag is true
    (a never-accessed service is decided before, at service level)."""
    return _flagged(obs, "last-accessed", obs.support.last_accessed, NOT_TRACKED_BY_LAST_ACCESSED)


@coverage("unused-access")
def _unused_access(obs: Observability, baseline: Baseline) -> SourceView:
    """An unused-access analyzer decides the deployed grant it judged, before the other sources
    (usage/unused_access.py); what it leaves (a new grant) it never saw."""
    return SourceView(frozenset(), otherwise="not in the deployed grant the unused-access analyzer judged")


@coverage("cloudtrail")
def _management_events(obs: Observability, baseline: Baseline, kind: str = "cloudtrail") -> SourceView:
    """CloudTrail read directly: every management event; data events only of services whose data events
    were logged for this principal; never authorization-only or permissionless grants."""
    name = SOURCE_NAMES.get(kind, kind or "the baseline")

    def build() -> SourceView:
        blind = _curated(obs, name, "data-event", obs.data_events - obs.services(baseline.data_events_observed))
        return SourceView(obs.catalog.all_actions - frozenset().union(*(acts for _, acts in blind)), blind)
    return obs.cached_view(("management-events", name, baseline.data_events_observed), build)


_COMBINED: dict[str, tuple[str, ...]] = {}  # a reason joined from several sources' -> its parts


def short_reason(reason: str) -> str:
    """The blind-spot label of an unobservable reason; one per source for a reason naming several."""
    labels = [next((short for prefix, short in SHORT_REASONS if part.startswith(prefix)), part)
              for part in _COMBINED.get(reason, (reason,))]
    return " / ".join(dict.fromkeys(labels))


def _counted(label: str, n: int) -> str:
    """`2 data events`, `1 data event`; phrases such as `not reported by Access Analyzer` as they are."""
    return " / ".join(part + ("s" if n != 1 and part in COUNTED else "") for part in label.split(" / "))


@dataclass(frozen=True)
class Judged:
    """How much of a principal's grant the gate could judge (used or unused), and why not the rest."""
    granted: int
    judged: int
    unobservable: tuple[tuple[str, int], ...] = ()  # (short reason, actions), most first
    no_usage_data: int = 0
    unknown: int = 0  # patterns not in the catalog (not counted as granted actions)
    new: int = 0  # granted by this change: judged by risk alone
    too_recent: int = 0  # granted or watched for less than min-observation

    @property
    def percent(self) -> int:
        return 100 * self.judged // self.granted if self.granted else 100  # rounded down: 99.6% is not 100%

    def text(self) -> str:
        if not self.granted:
            out = "no granted actions to judge"
            return out + (f"; {self.unknown:,} unknown action pattern{'s' if self.unknown != 1 else ''}"
                          if self.unknown else "")
        out = f"judged {self.judged:,} of {self.granted:,} granted actions ({self.percent}%)"
        hidden = sum(n for _, n in self.unobservable)
        if hidden:
            out += f"; {hidden:,} unobservable: " + ", ".join(f"{n:,} {_counted(label, n)}"
                                                              for label, n in self.unobservable)
        if self.new:
            out += f"; {self.new:,} new (granted by this change)"
        if self.too_recent:
            out += f"; {self.too_recent:,} too recent to judge"
        if self.no_usage_data:
            out += f"; {self.no_usage_data:,} without usage data"
        if self.unknown:
            out += f"; {self.unknown:,} unknown action pattern{'s' if self.unknown != 1 else ''}"
        return out

    def as_dict(self) -> dict:
        return {"granted": self.granted, "judged": self.judged, "percent": self.percent,
                "unobservable": dict(self.unobservable), "no_usage_data": self.no_usage_data,
                "unknown": self.unknown, "new": self.new, "too_recent": self.too_recent, "summary": self.text()}


def judged(result: PrincipalResult) -> Judged:
    groups = result.groups
    count = {v: sum(len(a) for a in groups.get(v, {}).values()) for v in VERDICTS}
    hidden: dict[str, int] = {}
    for reason, acts in groups.get(UNOBSERVABLE, {}).items():
        label = short_reason(reason)
        hidden[label] = hidden.get(label, 0) + len(acts)
    return Judged(granted=sum(n for v, n in count.items() if v != UNKNOWN),
                  judged=count[USED] + count[UNUSED], no_usage_data=count[NO_DATA], unknown=count[UNKNOWN],
                  new=count[NEW], too_recent=count[TOO_RECENT],
                  unobservable=tuple(sorted(hidden.items(), key=lambda kv: (-kv[1], kv[0]))))


SHARED_FROM = 1000  # grants this large (NotAction, `*`) are split once per distinct set, not per principal


@lru_cache(maxsize=1)
def default_observability(catalog: Catalog) -> Observability:
    return Observability(catalog)


class Decider:
    """The verdict order for one principal, decided over sets of actions rather than one by one."""

    def __init__(self, baseline: Baseline | None, obs: Observability):
        self.baseline, self.obs = baseline, obs
        self.aged = frozenset()  # unused by an unused-access analyzer: AWS's own age rule already applied

    def __call__(self, action: str) -> tuple[str, str]:
        for verdict, reasons in self.groups(frozenset({action})).items():
            for reason in reasons:
                return verdict, reason
        raise AssertionError("every action gets a verdict")

    def views(self) -> list[SourceView]:
        """One view per source that reported; a failed source covers nothing. None at all when every
        source failed; a baseline that names no source is read as CloudTrail."""
        b = self.baseline
        kinds = list(dict.fromkeys(s.get("kind", "") for s in b.working_sources))
        if not kinds and not b.sources:
            kinds = [""]
        return [self.obs.view(kind, b) for kind in kinds]

    def groups(self, granted: frozenset) -> dict[str, dict[str, frozenset]]:
        out: dict[str, dict[str, frozenset]] = {}

        def put(verdict: str, reason: str, actions) -> None:
            if actions:  # two steps may give one reason (service-level usage only): keep both sets
                reasons = out.setdefault(verdict, {})
                had = reasons.get(reason)  # no copy of a NotAction grant's ~20,000 actions when there is none
                reasons[reason] = had | frozenset(actions) if had else frozenset(actions)

        b, obs = self.baseline, self.obs
        if b is None:
            put(NO_DATA, "no baseline for this principal", granted)
            return out
        used = granted.intersection(b.used)  # walks the baseline's few used actions, not the grant
        by_signals: dict[tuple, list[str]] = {}
        for a in used:
            by_signals.setdefault(b.used[a].signals, []).append(a)
        for signals, acts in sorted(by_signals.items()):
            put(USED, f"observed ({', '.join(signals) or 'baseline'})", acts)
        shared = self._shared_steps(granted) if b.unused_access is None and len(granted) >= SHARED_FROM else None
        if shared is not None:
            # a large grant (NotAction, `*`) split once for every principal granted the same set under
            # baselines of the same shape; this baseline's few used actions are taken out of the parts
            for verdict, reason, acts in shared:
                put(verdict, reason, less(acts, used) if not used.isdisjoint(acts) else acts)
            return out
        rest = granted - used
        configured = rest & obs.configured
        put(UNOBSERVABLE, REASONS["config"], configured)
        rest = rest - configured if configured else rest
        if b.unused_access is not None:  # an unused-access analyzer decides what it judged (unused_access_verdicts.py)
            judged = decide_unused_access(rest, b, obs)
            self.aged = frozenset().union(*judged.groups.get(UNUSED, {}).values())
            for verdict, reasons in judged.groups.items():
                for reason, acts in reasons.items():
                    put(verdict, reason, acts)
            if b.source_kinds <= {KIND}:  # no other source: what it leaves has no usage data
                for reason, acts in judged.remainder.items():
                    put(NO_DATA, reason, acts)
                return out
            rest = judged.left
        for step in self._steps(rest, self.views()):
            put(*step)
        return out

    def _shared_steps(self, granted: frozenset) -> list[tuple[str, str, frozenset]] | None:
        """The verdicts of `granted` after the used ones (configured, then `_steps`) as if nothing was used,
        remembered per (granted set, what of the baseline they depend on): only membership tests split the
        grant, so each part minus this baseline's used actions is what it would have been. None where a
        source's view is made afresh per baseline (nothing to share)."""
        b, obs, views = self.baseline, self.obs, self.views()
        kept = {id(v) for v in obs._views.values()}
        if not all(id(v) in kept for v in views):
            return None
        key = (id(granted), tuple(map(id, views)), b.not_accessed_services, b.service_level_only,
               b.source_kinds == {"last-accessed"})
        hit = obs.shared.get(key)
        if hit is None:
            configured = granted & obs.configured
            steps = [(UNOBSERVABLE, REASONS["config"], configured)]
            steps += self._steps(granted - configured if configured else granted, views)
            if len(obs.shared) >= 64:
                obs.shared.clear()
            hit = obs.shared[key] = (granted, views, steps)  # the objects whose ids are the key stay alive
        return hit[2]

    def _steps(self, rest: frozenset, views: list[SourceView]) -> list[tuple[str, str, frozenset]]:
        """(verdict, reason, actions) for what is neither used nor configured: service never accessed,
        service-level only, then not observed where a source covers it, else unobservable with each reason."""
        b, obs = self.baseline, self.obs
        out = []
        if b.not_accessed_services:
            never = rest & obs.never_accessed(b)
            out.append((UNUSED, NEVER_ACCESSED, never))
            rest -= never
        if b.service_level_only:
            service_level = rest & obs.services(b.service_level_only)
            if b.source_kinds == {"last-accessed"}:  # no tracked action accessed: the tracked ones were not used
                service_level -= obs.support.last_accessed
            out.append((UNOBSERVABLE, SERVICE_LEVEL, service_level))
            rest -= service_level
        # observable where any source of the baseline covers the action; the reason names each source that does not
        if not views:  # every source failed: nothing could have seen what was not observed
            return out + [(NO_DATA, ALL_SOURCES_FAILED, rest)]
        unseen = rest
        for view in views:
            unseen = unseen - view.covered
            if not unseen:
                break
        out.append((UNUSED, NOT_OBSERVED, rest - unseen))
        return out + [(UNOBSERVABLE, reason, acts) for reason, acts in _reasons(unseen, views).items()]


def _reasons(unseen: frozenset, views: list[SourceView]) -> dict[str, frozenset]:
    """Unseen actions by reason: each source's own reason, joined with "; " where they differ."""
    if not unseen:
        return {}
    parts: dict[tuple, frozenset] = {(): unseen}
    for view in views:
        split: dict[tuple, frozenset] = {}
        for key, acts in parts.items():
            for reason, blind in view.blind:
                hit = acts & blind
                if hit:
                    split[key + (reason,)] = hit
                    acts = acts - hit
            if acts:
                split[key + (view.otherwise,)] = acts
        parts = split
    out: dict[str, frozenset] = {}
    for key, acts in parts.items():
        key = tuple(dict.fromkeys(key))
        reason = "; ".join(key)
        if len(key) > 1:
            _COMBINED[reason] = key
        out[reason] = out[reason] | acts if reason in out else acts
    return out


def failed_source_notes(baseline: Baseline | None) -> list[str]:
    """A note per failed usage source of the baseline: what the principal's verdicts rest on instead."""
    if baseline is None:
        return []
    rest = ("its verdicts rest on the other sources" if baseline.working_sources else
            "no other source: its grants have no usage data")
    return [f"{SOURCE_NAMES.get(s.get('kind', ''), s.get('kind') or 'a usage source')} failed: {s['error']}; {rest}"
            for s in baseline.failed_sources]


def decide(action: str, baseline: Baseline | None, obs: Observability) -> tuple[str, str]:
    return Decider(baseline, obs)(action)


def deployment_of(baseline: Baseline) -> Deployment:
    """The one deployment a single matched baseline stands for."""
    return Deployment(baseline.deployment or baseline.account or baseline.principal_arn, baseline.account, baseline,
                      "matched")


def evaluate(principal: Principal, baseline: Baseline | None, catalog: Catalog,
             obs: Observability | None = None, history: GrantHistory | None = None) -> PrincipalResult:
    """`judge` with one deployment: the given baseline (none: no usage data), default time rules."""
    from .evidence import judge
    return judge(Evidence(principal, (deployment_of(baseline),) if baseline is not None else (), history),
                 catalog, obs)
