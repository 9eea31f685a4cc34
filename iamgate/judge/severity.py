"""Severity of an unused action by its access level (the README's severity table)."""
from __future__ import annotations

from functools import lru_cache
from itertools import compress, repeat
from operator import contains

from ..reference.catalog import Catalog, derivation, drop_sorted

LEVEL_SEVERITY = {"Permissions management": "high", "Write": "medium", "Tagging": "low", "Read": "low", "List": "low"}
_ORDER = ("info", "low", "medium", "high", "critical")


@lru_cache(maxsize=None)
def level_severity(level: str) -> str:
    """The severity of a catalog access level, compound ones ("Permissions management, Write") by their most
    severe part."""
    levels = [lv.strip() for lv in level.split(",") if lv.strip()]
    if not levels:
        return "low"
    return max((LEVEL_SEVERITY.get(lv, "low") for lv in levels), key=_ORDER.index)


def by_access_level(catalog: Catalog, action: str) -> str:
    return level_severity(catalog.access_level(action))


@lru_cache(maxsize=4)
def access_level_sets(catalog: Catalog) -> dict[str, tuple[frozenset[str], list[str]]]:
    """severity -> every catalog action with that severity, as a set and sorted (large grants are
    filtered from the sorted list, which is faster than sorting them)."""
    out: dict[str, set[str]] = {}
    for service, actions in catalog.services.items():
        for name, level in actions.items():
            out.setdefault(level_severity(level), set()).add(f"{service}:{name}")
    return {sev: (frozenset(acts), sorted(acts)) for sev, acts in out.items()}


_SPLIT: dict[tuple, tuple] = {}  # ids of a shared large set and the catalog -> (the set, the catalog, its split)


def split_by_access_level(catalog: Catalog, actions) -> dict[str, list[str]]:
    """Sorted actions per severity; unknown patterns count as low."""
    known = derivation(actions)
    if known is not None:  # a shared set less a few: split once, those few dropped from each list
        root, removed = known
        hit = _SPLIT.get((id(root), id(catalog)))
        if hit is None or hit[0] is not root or hit[1] is not catalog:
            if len(_SPLIT) >= 64:
                _SPLIT.clear()
            hit = _SPLIT[(id(root), id(catalog))] = (root, catalog, _split(catalog, root))
        levels = access_level_sets(catalog)
        unknown = removed - catalog.all_actions  # listed as low
        out = {sev: drop_sorted(acts, (removed & levels[sev][0] if sev in levels else removed) |
                                (unknown if sev == "low" else frozenset()))
               for sev, acts in hit[2].items()}
        return {sev: acts for sev, acts in out.items() if acts}
    return _split(catalog, actions)


def _split(catalog: Catalog, actions) -> dict[str, list[str]]:
    acts = actions if isinstance(actions, (set, frozenset)) else frozenset(actions)
    big = len(acts) >= 3000  # a NotAction grant: ~10,000 unused actions
    out = {}
    found = 0
    for sev, (members, ordered) in access_level_sets(catalog).items():
        hit = list(compress(ordered, map(contains, repeat(acts), ordered))) if big else sorted(acts & members)
        if hit:
            out[sev] = hit
            found += len(hit)
    if found < len(acts):  # patterns the catalog does not know
        rest = acts - catalog.all_actions
        out["low"] = sorted(out.get("low", []) + list(rest))
    return out
