"""CloudTrail event -> IAM action(s), from the cited table in data/cloudtrail_mapping.json.

Resolution order is the table's `description`. Every mapped action is checked against the
catalog: an event whose action the catalog does not know is *unmapped*, never dropped.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from ..reference.catalog import Catalog, load_catalog

ACTIONS, PERMISSIONLESS, NO_IAM, UNMAPPED, AMBIGUOUS = "actions", "permissionless", "no-iam", "unmapped", "ambiguous"


@dataclass(frozen=True)
class EventMapping:
    kind: str  # one of the constants above
    actions: tuple[str, ...] = ()  # lowercase "svc:action"
    any_of: bool = False  # the event needs one of `actions`, chosen by the request
    reason: str = ""


@lru_cache(maxsize=1)
def mapping_table() -> dict:
    return json.loads(resources.files("iamgate").joinpath("data/cloudtrail_mapping.json").read_text())


@lru_cache(maxsize=1)
def denied_error_codes() -> frozenset[str]:
    return frozenset(e["error_code"] for e in mapping_table().get("access_denied_error_codes", ()))


def is_access_denied(error_code: str | None) -> bool:
    if not error_code:
        return False
    codes = denied_error_codes()
    return error_code in codes or error_code.removeprefix("Client.") in codes


def unobservable_data_actions(catalog: Catalog) -> frozenset[str]:
    """Actions that CloudTrail logs only as data events (data/unobservable.json, reason data-event)."""
    data = json.loads(resources.files("iamgate").joinpath("data/unobservable.json").read_text())
    out: set[str] = set()
    for entry in data.get("entries", ()):
        if entry.get("reason") == "data-event":
            out |= catalog.expand(entry["pattern"]).actions
    return frozenset(out)


class EventMapper:
    """Maps (eventSource, eventName, eventType); one answer per distinct triple, cached."""

    def __init__(self, catalog: Catalog | None = None, table: dict | None = None):
        self.catalog = catalog or load_catalog()
        t = table or mapping_table()
        self.prefixes = {host: e["prefix"] for host, e in t.get("event_sources", {}).items()}
        self.names = t.get("event_names", {})
        self.patterns: dict[str, list] = {}
        for p in t.get("event_name_patterns", ()):
            self.patterns.setdefault(p["event_source"], []).append((re.compile(p["regex"]), p["actions"]))
        sfx = t.get("api_version_suffix") or {}
        self.suffix_sources = frozenset(sfx.get("event_sources", ()))
        self.suffix_re = re.compile(sfx["regex"]) if sfx.get("regex") else None
        self.permissionless = {(e["event_source"], e["event_name"]): e.get("reason", "needs no permission")
                               for e in t.get("permissionless", ())}
        self.no_iam = {(e["event_source"], e["event_name"]): e.get("reason", "not an IAM-authorized call")
                       for e in t.get("no_iam_action", ())}
        self.no_iam_types = {e["event_type"]: e.get("reason", "") for e in t.get("no_iam_event_types", ())}
        self._cache: dict[tuple, EventMapping] = {}

    def by_request(self, event_source: str | None, event_name: str | None) -> dict:
        """For an any_of event: request token (PartiQL verb, transact item kind) -> action."""
        return self.names.get(event_source or "", {}).get(event_name or "", {}).get("by_request") or {}

    def detail_events(self) -> frozenset[tuple[str, str]]:
        """(eventSource, eventName) whose request parameters the reader must look at."""
        return frozenset((src, name) for src, names in self.names.items() for name, e in names.items()
                         if e.get("by_request"))

    def prefix(self, event_source: str) -> str:
        return self.prefixes.get(event_source) or event_source.split(".", 1)[0]

    def map(self, event_source: str | None, event_name: str | None, event_type: str | None = None) -> EventMapping:
        key = (event_source, event_name, event_type)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = self._map(event_source, event_name, event_type)
        return hit

    def _map(self, source, name, event_type) -> EventMapping:
        if event_type in self.no_iam_types:
            return EventMapping(NO_IAM, reason=f"eventType {event_type}: {self.no_iam_types[event_type]}")
        if not source or not name:
            return EventMapping(UNMAPPED, reason="record has no eventSource or eventName")
        if (source, name) in self.permissionless:
            return EventMapping(PERMISSIONLESS, reason=self.permissionless[(source, name)])
        if (source, name) in self.no_iam:
            return EventMapping(NO_IAM, reason=self.no_iam[(source, name)])
        prefix = self.prefix(source)
        if self.suffix_re is not None and source in self.suffix_sources:
            name = self.suffix_re.sub("", name)
        entry = self.names.get(source, {}).get(name)
        any_of = False
        if entry:
            actions = entry["actions"]
            any_of = entry.get("mode") == "any_of"
        else:
            actions = None
            for rx, templates in self.patterns.get(source, ()):
                m = rx.fullmatch(name)
                if m:
                    actions = [m.expand(a) for a in templates]
                    break
            if actions is None:
                actions = [f"{prefix}:{name}"]
        lowered = tuple(a.lower() for a in actions)
        missing = [a for a in lowered if a not in self.catalog]
        if missing and not (any_of and len(missing) < len(lowered)):
            return EventMapping(UNMAPPED, lowered, any_of, "not in the action catalog: " + ", ".join(
                self.catalog.canonical(a) for a in missing))
        lowered = tuple(a for a in lowered if a in self.catalog)
        return EventMapping(AMBIGUOUS if any_of else ACTIONS, lowered, any_of)
