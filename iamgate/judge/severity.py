"""Severity of an unused action by its access level (the README's severity table)."""
from __future__ import annotations

from functools import lru_cache

from ..reference.catalog import Catalog

LEVEL_SEVERITY = {"Permissions management": "high", "Write": "medium", "Tagging": "low", "Read": "low", "List": "low"}
_ORDER = ("info", "low", "medium", "high", "critical")


@lru_cache(maxsize=None)
def by_access_level(catalog: Catalog, action: str) -> str:
    levels = catalog.access_levels(action)
    if not levels:
        return "low"
    return max((LEVEL_SEVERITY.get(lv, "low") for lv in levels), key=_ORDER.index)


@lru_cache(maxsize=4)
def access_level_sets(catalog: Catalog) -> dict[str, frozenset[str]]:
    """severity -> every catalog action with that severity, for set operations over large grants."""
    out: dict[str, set[str]] = {}
    for action in catalog.all_actions:
        out.setdefault(by_access_level(catalog, action), set()).add(action)
    return {sev: frozenset(acts) for sev, acts in out.items()}


def split_by_access_level(catalog: Catalog, actions) -> dict[str, list[str]]:
    """Sorted actions per severity; unknown patterns count as low."""
    acts = set(actions)
    out = {}
    for sev, members in access_level_sets(catalog).items():
        hit = acts & members
        if hit:
            out[sev] = catalog.sort(hit)
            acts -= hit
    if acts:
        out.setdefault("low", []).extend(sorted(acts))
    return out
