"""Counts by (identity, event, error, region, ...) -> one baseline per principal ARN.

The same counts come from the local reader (per file, merged) and from Athena's GROUP BY, so both
engines share this step. It runs in the parent after the readers: one pass over the keys groups them by
identity, event and error (a key's region and resources only add to its group), then what a group means
is decided once per group, never per key or event (issue 18).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from operator import itemgetter

from ..model import Baseline, UsedAction
from ._ct_res import ResourceFilter, bounded
from ..reference.catalog import Catalog, glob_match, load_catalog
from ._ct_map import (
    AMBIGUOUS,
    NO_IAM,
    PERMISSIONLESS,
    UNMAPPED,
    EventMapper,
    is_access_denied,
    unobservable_data_actions,
)

SIGNAL = "cloudtrail"
_ASSUMED = re.compile(r"^arn:([^:]+):sts::(\d*):assumed-role/([^/]+)")

# principal classes that are kept apart from IaC principals
SERVICE, SERVICE_LINKED, NO_IDENTITY, OTHER = "aws-service", "service-linked-role", "no-identity", "other"


def attribute(itype: str | None, iarn: str | None, issuer: str | None, invoked: str | None) -> tuple[str, str]:
    """(class, principal ARN or label). class "principal" is an IAM role or user iamgate can match."""
    if itype is None and iarn is None:
        return NO_IDENTITY, "record without userIdentity"
    if itype == "AWSService":
        return SERVICE, invoked or "unknown service"
    arn = issuer
    if itype == "AssumedRole" and not arn and iarn:
        m = _ASSUMED.match(iarn)  # no sessionContext: the role ARN without its path
        if m:
            arn = f"arn:{m.group(1)}:iam::{m.group(2)}:role/{m.group(3)}"
    if itype in ("AssumedRole", "FederatedUser") and arn:
        if ":role/aws-service-role/" in arn:
            return SERVICE_LINKED, arn
        return "principal", arn
    if itype in ("IAMUser", "Role") and iarn:
        return "principal", iarn
    return OTHER, f"{itype or 'unknown type'}: {iarn or '-'}"


def normalise_time(t: str | None) -> str | None:
    if not t or len(t) < 19:
        return None
    return t[:10] + "T" + t[11:19] + "Z"


@dataclass
class _Principal:
    used: dict = field(default_factory=dict)  # action -> {"count", "last_seen", "regions", "errors"}
    denied: dict = field(default_factory=dict)  # action -> {"count", "last_seen"}
    unmapped: Counter = field(default_factory=Counter)  # "source:name (reason)" -> count
    events: int = 0
    data_services: set = field(default_factory=set)  # services whose data events this principal made
    regions: int = 0  # where its events were logged: region bits (`_Regions`)


@dataclass(frozen=True)
class CloudTrailSummary:
    baselines: tuple[Baseline, ...]
    documents: dict  # principal ARN -> the iamgate.baseline/v1 extras: regions, errors, notes
    events: int
    files: int
    window: tuple[str | None, str | None]
    mapped_events: int
    unmapped: tuple[tuple[str, int], ...]  # ("eventSource eventName: reason", count), most common first
    no_iam_events: int
    kept_apart: tuple[tuple[str, str, int], ...]  # (class, who, events)
    data_events_observed: frozenset[str]
    categories: dict  # service -> sorted event categories seen
    notes: tuple[str, ...] = ()

    @property
    def api_events(self) -> int:
        return self.mapped_events + sum(c for _, c in self.unmapped)

    @property
    def mapped_share(self) -> float:
        return self.mapped_events / self.api_events if self.api_events else 1.0


def _resolve(mapping, detail: str, by_request: dict) -> tuple[tuple[str, ...], str]:
    """Actions of an any_of event, chosen by its request detail; () when the request does not say."""
    if mapping.kind == UNMAPPED:
        return (), mapping.reason
    if mapping.kind != AMBIGUOUS:
        return mapping.actions, ""
    chosen = tuple(dict.fromkeys(by_request[t].lower() for t in detail.split(",") if t in by_request))
    chosen = tuple(a for a in chosen if a in mapping.actions)
    return chosen, "" if chosen else "needs one of " + ", ".join(mapping.actions) + "; the request does not say which"


def _label(source, name, why: str) -> str:
    return f"{source or '(no eventSource)'} {name or '(no eventName)'}: {why}"


def summarise(counts: dict, *, files: int, catalog: Catalog | None = None, mapper: EventMapper | None = None,
              principal_glob: str | None = None, notes: tuple[str, ...] = (),
              engine: str = "local", coverage: dict | None = None) -> CloudTrailSummary:
    """`coverage`: (account, region) -> [first, last] event time of the logs read; each baseline's
    window is then the span of the logs of its principal's account, not of all the logs."""
    catalog = catalog or load_catalog()
    meaning = EventMeanings(mapper or EventMapper(catalog), catalog)
    principals: dict[str, _Principal] = {}
    kept_apart: Counter = Counter()
    unmapped: Counter = Counter()
    mapped = no_iam = 0
    on_resources = ResourceFilter()
    who_of: dict = {}  # identity -> (class, who, kept by --principal)
    if not _canonical_times(counts):
        counts = _normalised_times(counts)
    regions_of = _Regions()
    groups = _groups(counts, regions_of)
    events = sum(map(itemgetter(0), groups.values()))
    first = min(filter(None, map(itemgetter(1), groups.values())), default=None)
    last = max(filter(None, map(itemgetter(2), groups.values())), default=None)
    denied_error: dict = {}  # errorCode -> is_access_denied
    # Keys of one identity, event and error mean the same: decided once per group, not per key. Groups are
    # taken in the order of their first key, so that actions and labels are listed in the same order.
    for (itype, iarn, issuer, invoked, source, name, error, etype, cat, detail), group in groups.items():
        count, t0, t1, region_bits, found = group
        skip, actions, why, is_data = meaning(source, name, etype, detail, cat)
        ident = who_of.get((itype, iarn, issuer, invoked))
        if ident is None:
            ident = who_of[(itype, iarn, issuer, invoked)] = identity(itype, iarn, issuer, invoked, principal_glob)
        klass, who, wanted = ident
        if skip:
            no_iam += count
            continue
        if klass != "principal":
            kept_apart[(klass, who)] += count
            if actions:
                mapped += count
            else:
                unmapped[_label(source, name, why)] += count
            continue
        if not wanted:
            continue
        p = principals.get(who)
        if p is None:
            p = principals[who] = _Principal()
        p.events += count
        p.regions |= region_bits
        if is_data:
            p.data_services.update(a.partition(":")[0] for a in actions)
        if not actions:
            label = _label(source, name, why)
            unmapped[label] += count
            p.unmapped[label] += count
            continue
        mapped += count
        denied = denied_error.get(error)
        if denied is None:
            denied = denied_error[error] = is_access_denied(error)
        if denied:
            for a in actions:
                _widen(p.denied, a, count, t0, t1)
            continue
        for a in actions:
            slot = _widen(p.used, a, count, t0, t1)
            slot["regions"] |= region_bits
            if error:
                slot["errors"] += count
            # an action's resources are known only where every one of its events named one
            if slot["arns"] is not None:
                arns = [on_resources(a, f) for f in found] if found is not None else None  # each distinct once
                if arns is None or not all(arns):
                    slot["arns"] = None
                else:
                    slot["arns"] = slot["arns"].union(*arns)
    window = (first, last)
    source_entry = {"kind": SIGNAL, "events": events, "files": files} if engine == "local" else {
        "kind": SIGNAL, "events": events, "engine": engine}
    baselines, documents = [], {}
    for arn, p in sorted(principals.items()):
        used = {a: _used(s) for a, s in p.used.items()}
        denied = {a: {"count": s["count"], "last_seen": s["last_seen"]} for a, s in p.denied.items()}
        start, end = account_window(arn, regions_of.names(p.regions), coverage, window)
        baselines.append(Baseline(principal_arn=arn, window_start=start, window_end=end,
                                  # Data events are logged per resource (bucket, table, function): the
                                  # trail logging some of a service's data events says nothing about the
                                  # resources this principal uses, unless its own data events show up.
                                  sources=(source_entry,), used=used,
                                  data_events_observed=frozenset(p.data_services),
                                  denied=denied))
        documents[arn] = {
            "regions": {a: sorted(regions_of.names(s["regions"], named=True)) for a, s in p.used.items()},
            "errors": {a: s["errors"] for a, s in p.used.items() if s["errors"]},
            "notes": [f"unmapped: {k} ({c} events)" for k, c in p.unmapped.most_common()],
        }
    return CloudTrailSummary(
        baselines=tuple(baselines), documents=documents, events=events, files=files, window=window,
        mapped_events=mapped, unmapped=tuple(unmapped.most_common()), no_iam_events=no_iam,
        kept_apart=tuple((k, w, c) for (k, w), c in kept_apart.most_common()),
        data_events_observed=frozenset(meaning.data_services),
        categories={s: sorted(c) for s, c in sorted(meaning.categories.items())}, notes=tuple(notes))


class EventMeanings:
    """What an event (source, name, type, request detail, category) means: (needs no IAM action, actions,
    why none, is a data event). Decided once per distinct event; collects the event categories seen per
    service and the services whose data events were seen."""

    def __init__(self, mapper: EventMapper, catalog: Catalog):
        self.mapper, self.data_actions = mapper, unobservable_data_actions(catalog)
        self.categories: dict[str, set] = {}
        self.data_services: set[str] = set()
        self._of: dict = {}

    def __call__(self, source, name, etype, detail, cat) -> tuple[bool, tuple[str, ...], str, bool]:
        ev = self._of.get((source, name, etype, detail, cat))
        if ev is None:
            mapper = self.mapper
            m = mapper.map(source, name, etype)
            actions, why = _resolve(m, detail or "", mapper.by_request(source, name))
            service = actions[0].partition(":")[0] if actions else mapper.prefix(source) if source else None
            if service and cat:
                self.categories.setdefault(service, set()).add(cat)
            is_data = bool(actions) and (cat == "Data" or (cat is None and any(a in self.data_actions
                                                                               for a in actions)))
            if is_data:
                self.data_services.update(a.partition(":")[0] for a in actions)
            ev = self._of[(source, name, etype, detail, cat)] = (m.kind in (NO_IAM, PERMISSIONLESS), actions, why,
                                                                 is_data)
        return ev


def identity(itype, iarn, issuer, invoked, principal_glob: str | None) -> tuple[str, str, bool]:
    """(class, who, kept by --principal) of a userIdentity."""
    klass, who = attribute(itype, iarn, issuer, invoked)
    return klass, who, not principal_glob or glob_match(principal_glob, who) or glob_match(
        principal_glob, who.rsplit("/", 1)[-1])


_GROUP = itemgetter(0, 1, 2, 3, 4, 5, 6, 8, 9, 10)  # a key without its region and resources


class _Regions(dict):
    """region -> a bit of its own: a group's regions are one int, not a set per group (fewer objects for
    the garbage collector to walk); `names` turns bits back into regions, once per distinct bits."""

    def __init__(self):
        super().__init__()
        self._names: dict = {}  # (bits, named) -> frozenset

    def __missing__(self, region):
        bit = self[region] = 1 << len(self)
        return bit

    def names(self, bits: int, named: bool = False) -> frozenset:
        """The regions of `bits`; `named`: without None and "" (records without awsRegion)."""
        out = self._names.get((bits, named))
        if out is None:
            out = self._names[(bits, named)] = frozenset(r for r, b in self.items() if bits & b and (r or not named))
        return out


def _groups(counts: dict, regions: _Regions) -> dict:
    """(identity, event, error) -> [count, first, last, region bits, {resources} or None where a key names
    none], in the order of their first key. The one step per key: a lookup and a few compares."""
    out: dict = {}
    get = out.get
    for key, (n, t0, t1) in counts.items():
        group = get(g := _GROUP(key))
        found = key[11]
        if group is None:
            out[g] = [n, t0, t1, regions[key[7]], {found} if found else None]
            continue
        group[0] += n
        if t0 is not None and (group[1] is None or t0 < group[1]):
            group[1] = t0
        if t1 is not None and (group[2] is None or t1 > group[2]):
            group[2] = t1
        group[3] |= regions[key[7]]
        if not found:
            group[4] = None
        elif group[4] is not None:
            group[4].add(found)
    return out


def _canonical_times(counts: dict) -> bool:
    """Every time already as `normalise_time` gives it (`YYYY-MM-DDTHH:MM:SSZ`), as the local reader's
    CloudTrail times are: then raw times compare as normalised ones do."""
    for _, t0, t1 in counts.values():
        if t0 is not None and (len(t0) != 20 or t0[10] != "T" or t0[19] != "Z"):
            return False
        if t1 is not None and (len(t1) != 20 or t1[10] != "T" or t1[19] != "Z"):
            return False
    return True


def _normalised_times(counts: dict) -> dict:
    """`counts` with its times normalised (Athena's, fractional seconds, ...), once per distinct time."""
    norm: dict = {None: None}
    for _, t0, t1 in counts.values():
        for t in (t0, t1):
            if t not in norm:
                norm[t] = normalise_time(t)
    return {k: (c, norm[t0], norm[t1]) for k, (c, t0, t1) in counts.items()}


def _widen(target: dict, action: str, count: int, t0: str | None, t1: str | None) -> dict:
    """Add a group's events to an action's slot in `target` (used or denied). `regions`: region bits;
    `arns`: the resources it was used on, None where some of its events named none."""
    slot = target.get(action)
    if slot is None:
        slot = target[action] = {"count": count, "last_seen": t1, "first_seen": t0, "regions": 0, "errors": 0,
                                 "arns": frozenset()}
        return slot
    slot["count"] += count
    if t1 is not None and (slot["last_seen"] is None or t1 > slot["last_seen"]):
        slot["last_seen"] = t1
    if t0 is not None and (slot["first_seen"] is None or t0 < slot["first_seen"]):
        slot["first_seen"] = t0
    return slot


_SIGNALS = (SIGNAL,)


def _used(slot: dict) -> UsedAction:
    if not slot["arns"]:  # positional: a third faster than by keyword, for thousands of actions
        return UsedAction(slot["count"], slot["last_seen"], _SIGNALS, slot["first_seen"])
    arns, more, prefix = bounded(slot["arns"])
    return UsedAction(slot["count"], slot["last_seen"], _SIGNALS, first_seen=slot["first_seen"],
                      resources=arns, resources_more=more, resources_prefix=prefix)


def account_window(arn: str, regions: set, coverage: dict | None, default: tuple) -> tuple[str | None, str | None]:
    """The span of the logs that cover the principal's account in the regions its events came from
    (an account seen in one minute of logs gets that minute; a role seen only in a region logged for
    a day gets that day); else its account's logs in any region; `default` where coverage is unknown."""
    account = arn.split(":")[4] if arn.count(":") >= 5 else None
    mine = [v for (acct, region), v in (coverage or {}).items() if acct == account]
    spans = [v for (acct, region), v in (coverage or {}).items() if acct == account and region in regions] or mine
    if not spans:
        return default
    starts = [normalise_time(t0) for t0, _ in spans if t0]
    ends = [normalise_time(t1) for _, t1 in spans if t1]
    return (min(filter(None, starts), default=default[0]), max(filter(None, ends), default=default[1]))


def merge_counts(into: dict, counts: dict) -> None:
    for key, (c, t0, t1) in counts.items():
        slot = into.get(key)
        if slot is None:
            into[key] = [c, t0, t1]
        else:  # this runs once per key and file
            slot[0] += c
            if t0 is not None and (slot[1] is None or t0 < slot[1]):
                slot[1] = t0
            if t1 is not None and (slot[2] is None or t1 > slot[2]):
                slot[2] = t1
