"""Counts by (identity, event, error, region, ...) -> one baseline per principal ARN.

The same counts come from the local reader (per file, merged) and from Athena's GROUP BY, so both
engines share this step. Mapping runs once per distinct key, never per event.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

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


def _later(a, b):
    return b if a is None or (b is not None and b > a) else a


def _earlier(a, b):
    return b if a is None or (b is not None and b < a) else a


@dataclass
class _Principal:
    used: dict = field(default_factory=dict)  # action -> {"count", "last_seen", "regions", "errors"}
    denied: dict = field(default_factory=dict)  # action -> {"count", "last_seen"}
    unmapped: Counter = field(default_factory=Counter)  # "source:name (reason)" -> count
    events: int = 0
    data_services: set = field(default_factory=set)  # services whose data events this principal made
    regions: set = field(default_factory=set)  # where its events were logged


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
    mapper = mapper or EventMapper(catalog)
    data_actions = unobservable_data_actions(catalog)
    principals: dict[str, _Principal] = {}
    kept_apart: Counter = Counter()
    unmapped: Counter = Counter()
    categories: dict[str, set] = {}
    data_services: set[str] = set()
    first = last = None
    events = mapped = no_iam = 0
    on_resources = ResourceFilter()
    events_of: dict = {}  # (source, name, type, detail, category) -> what the event means: once per distinct
    who_of: dict = {}  # identity -> (class, who, kept by --principal)
    for key, (count, t0, t1) in counts.items():
        itype, iarn, issuer, invoked, source, name, error, region, etype, cat, detail, found = key
        events += count
        t0, t1 = normalise_time(t0), normalise_time(t1)
        first, last = _earlier(first, t0), _later(last, t1)
        ev = events_of.get((source, name, etype, detail, cat))
        if ev is None:
            m = mapper.map(source, name, etype)
            actions, why = _resolve(m, detail or "", mapper.by_request(source, name))
            service = actions[0].partition(":")[0] if actions else mapper.prefix(source) if source else None
            if service and cat:
                categories.setdefault(service, set()).add(cat)
            is_data = bool(actions) and (cat == "Data" or (cat is None and any(a in data_actions for a in actions)))
            if is_data:
                data_services.update(a.partition(":")[0] for a in actions)
            ev = events_of[(source, name, etype, detail, cat)] = (m.kind in (NO_IAM, PERMISSIONLESS), actions, why,
                                                                  is_data)
        skip, actions, why, is_data = ev
        ident = who_of.get((itype, iarn, issuer, invoked))
        if ident is None:
            klass, who = attribute(itype, iarn, issuer, invoked)
            wanted = not principal_glob or glob_match(principal_glob, who) or glob_match(
                principal_glob, who.rsplit("/", 1)[-1])
            ident = who_of[(itype, iarn, issuer, invoked)] = (klass, who, wanted)
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
        p.regions.add(region)
        if is_data:
            p.data_services.update(a.partition(":")[0] for a in actions)
        if not actions:
            label = _label(source, name, why)
            unmapped[label] += count
            p.unmapped[label] += count
            continue
        mapped += count
        target = p.denied if is_access_denied(error) else p.used
        for a in actions:
            slot = target.setdefault(a, {"count": 0, "last_seen": None, "first_seen": None})
            slot["count"] += count
            slot["last_seen"] = _later(slot["last_seen"], t1)
            slot["first_seen"] = _earlier(slot["first_seen"], t0)
            if target is p.used:
                if region:
                    slot.setdefault("regions", set()).add(region)
                if error:
                    slot["errors"] = slot.get("errors", 0) + count
                # an action's resources are known only where every one of its events named one
                if slot.get("arns", ()) is not None:
                    arns = on_resources(a, found) if found else ()
                    if arns:
                        slot.setdefault("arns", set()).update(arns)
                    else:
                        slot["arns"] = None
    window = (first, last)
    source_entry = {"kind": SIGNAL, "events": events, "files": files} if engine == "local" else {
        "kind": SIGNAL, "events": events, "engine": engine}
    baselines, documents = [], {}
    for arn, p in sorted(principals.items()):
        used = {a: _used(s) for a, s in p.used.items()}
        denied = {a: {"count": s["count"], "last_seen": s["last_seen"]} for a, s in p.denied.items()}
        start, end = account_window(arn, p.regions, coverage, window)
        baselines.append(Baseline(principal_arn=arn, window_start=start, window_end=end,
                                  # Data events are logged per resource (bucket, table, function): the
                                  # trail logging some of a service's data events says nothing about the
                                  # resources this principal uses, unless its own data events show up.
                                  sources=(source_entry,), used=used,
                                  data_events_observed=frozenset(p.data_services),
                                  denied=denied))
        documents[arn] = {
            "regions": {a: sorted(s.get("regions", ())) for a, s in p.used.items()},
            "errors": {a: s["errors"] for a, s in p.used.items() if s.get("errors")},
            "notes": [f"unmapped: {k} ({c} events)" for k, c in p.unmapped.most_common()],
        }
    return CloudTrailSummary(
        baselines=tuple(baselines), documents=documents, events=events, files=files, window=window,
        mapped_events=mapped, unmapped=tuple(unmapped.most_common()), no_iam_events=no_iam,
        kept_apart=tuple((k, w, c) for (k, w), c in kept_apart.most_common()),
        data_events_observed=frozenset(data_services),
        categories={s: sorted(c) for s, c in sorted(categories.items())}, notes=tuple(notes))


def _used(slot: dict) -> UsedAction:
    arns, more, prefix = bounded(slot["arns"]) if slot.get("arns") else ((), 0, None)
    return UsedAction(slot["count"], slot["last_seen"], (SIGNAL,), first_seen=slot.get("first_seen"),
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
        else:  # _earlier/_later inlined: this runs once per key and file
            slot[0] += c
            if t0 is not None and (slot[1] is None or t0 < slot[1]):
                slot[1] = t0
            if t1 is not None and (slot[2] is None or t1 > slot[2]):
                slot[2] = t1
