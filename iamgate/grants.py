"""What a principal is granted: expanded Allow actions minus what an unconditional Deny removes."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from .catalog import Catalog, Expansion
from .model import Principal, Statement


@dataclass
class Grants:
    actions: dict[str, list[Statement]] = field(default_factory=dict)  # action -> allowing statements
    unknown: dict[str, list[Statement]] = field(default_factory=dict)  # pattern matching nothing -> statements
    notes: dict[str, list[str]] = field(default_factory=dict)  # action -> why a Deny did not remove it
    denied: set[str] = field(default_factory=set)  # removed by an unconditional, covering Deny


def statement_actions(stmt: Statement, catalog: Catalog) -> Expansion:
    if stmt.not_actions:
        return catalog.expand_not_actions(stmt.not_actions)
    return catalog.expand_all(stmt.actions)


@lru_cache(maxsize=4096)
def _resource_rx(pattern: str) -> re.Pattern:
    # A Deny pattern covers an Allow pattern if it matches the Allow's text, where the Allow's
    # own `*` can only be matched by a `*` of the Deny (a `?` covers one literal character).
    out = []
    for ch in pattern:
        out.append(".*" if ch == "*" else "[^*]" if ch == "?" else re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def _covers(deny_pattern: str, allow_resource: str) -> bool:
    return deny_pattern == "*" or _resource_rx(deny_pattern).fullmatch(allow_resource) is not None


def deny_covers(deny: Statement, allow: Statement) -> bool:
    """Does the Deny apply to every resource the Allow grants?"""
    if deny.resources:
        if "*" in deny.resources:
            return True
        if allow.not_resources or not allow.resources:
            return False
        return all(any(_covers(d, r) for d in deny.resources) for r in allow.resources)
    if deny.not_resources:
        # Deny everything except NotResource: covers literal allow resources outside it.
        if allow.not_resources or not allow.resources:
            return False
        return all("*" not in r and "?" not in r and not any(_covers(n, r) for n in deny.not_resources)
                   for r in allow.resources)
    return False


def compute(principal: Principal, catalog: Catalog) -> Grants:
    g = Grants()
    allows: list[tuple[Statement, frozenset[str]]] = []
    denies: list[tuple[Statement, frozenset[str]]] = []
    for policy in principal.policies:
        for stmt in policy.statements:
            exp = statement_actions(stmt, catalog)
            if stmt.is_allow:
                for pattern in exp.unknown:
                    g.unknown.setdefault(pattern, []).append(stmt)
                allows.append((stmt, exp.actions))
            else:
                denies.append((stmt, exp.actions))
    for stmt, actions in allows:
        removed: set[str] = set()
        for deny, denied in denies:
            hit = actions & denied
            if not hit:
                continue
            if not deny.condition and deny_covers(deny, stmt):
                removed |= hit
            else:
                why = "a conditional Deny" if deny.condition else "a Deny on narrower resources"
                where = f" ({deny.location})" if deny.location else ""
                for a in hit:
                    g.notes.setdefault(a, []).append(f"{why}{where} may restrict it")
        for a in actions - removed:
            g.actions.setdefault(a, []).append(stmt)
        g.denied |= removed
    g.denied -= g.actions.keys()
    for a in g.actions:
        if a in g.notes:
            g.notes[a] = list(dict.fromkeys(g.notes[a]))
    return g
