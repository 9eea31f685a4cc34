"""Severity of an unused action by its access level (the README's severity table)."""
from __future__ import annotations

from .catalog import Catalog

LEVEL_SEVERITY = {"Permissions management": "high", "Write": "medium", "Tagging": "low", "Read": "low", "List": "low"}
_ORDER = ("info", "low", "medium", "high", "critical")


def by_access_level(catalog: Catalog, action: str) -> str:
    levels = catalog.access_levels(action)
    if not levels:
        return "low"
    return max((LEVEL_SEVERITY.get(lv, "low") for lv in levels), key=_ORDER.index)
