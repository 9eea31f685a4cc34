"""What a principal is granted: expanded Allow actions minus what an unconditional Deny removes."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from ..model import Principal, Statement
from ..reference.catalog import Catalog, Expansion


@dataclass
class Grants:
    allows: list[tuple[Statement, frozenset[str]]] = field(default_factory=list)  # in order, after Denies
    unknown: dict[str, list[Statement]] = field(default_factory=dict)  # pattern matching nothing -> statements
    deny_notes: list[tuple[frozenset[str], str]] = field(default_factory=list)  # why a Deny did not remove them
    denied: frozenset[str] = frozenset()  # removed by an unconditional, covering Deny

    actions: frozenset[str] = frozenset()  # everything granted


# Synthetic ARNs of different shapes, in the pattern's own partition and account where it fixes them:
# a resource pattern that matches all of them names everything (of that kind).
_ANY_RESOURCE_PROBES = ("arn:{p}:s3:::bucket/key", "arn:{p}:iam::{a}:role/path/name",
                        "arn:{p}:ec2:us-east-1:{a}:instance/i-0", "arn:{p}:sqs:us-east-1:{a}:queue")
_ANY_ROLE_PROBES = ("arn:{p}:iam::{a}:role/name", "arn:{p}:iam::{a}:role/path/name")


# An unresolved part of a resource (`${AWS::AccountId}` from Fn::Sub, `${var.x}`, an IAM policy variable
# such as `${aws:PrincipalAccount}`) stands for any value: an Allow on it covers every value, and a Deny
# covers an Allow only if it covers it for every value (issue 19).
_PLACEHOLDER = re.compile(r"\$\{[^{}]*\}")


# A placeholder for a resource the same code creates (`${Bucket.Arn}` from Fn::GetAtt, `${aws_s3_bucket.b.arn}`)
# is one ARN, unknown only until deploy; an input with no value (a parameter, `${var.x}`) or an IAM policy
# variable may be anything, `*` included.
_RESOURCE_REF = re.compile(r"^\$\{(?:(?!(?:var|local|each|count|path|terraform|self)\.)[A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z0-9.]+)?|(?:aws_|data\.|module\.)[^{}]*)\}$")


def any_value(pattern: str, keep_references: bool = False) -> str:
    """The resource pattern with each unresolved part read as `*` (any value); with `keep_references`, a
    placeholder for a resource of the same code stays as it is (it names one resource)."""
    if "${" not in pattern:
        return pattern
    return _PLACEHOLDER.sub(lambda m: m.group() if keep_references and _RESOURCE_REF.match(m.group()) else "*",
                            pattern)


def has_placeholder(pattern: str) -> bool:
    return _PLACEHOLDER.search(pattern) is not None


def _matches_all(pattern: str, probes) -> bool:
    from ..reference.catalog import glob_match
    pattern = any_value(pattern, keep_references=True)
    parts = pattern.strip().split(":", 5)
    literal = lambda i, default: parts[i] if len(parts) > i and parts[i] and not any(  # noqa: E731
        c in parts[i] for c in "*?") else default
    values = {"p": literal(1, "aws"), "a": literal(4, "123456789012")}
    return all(glob_match(pattern.strip(), probe.format(**values)) for probe in probes)


def on_every_resource(stmt: Statement) -> bool:
    """`Resource: *`, `arn:*`, or a NotResource: the statement does not narrow what it applies to."""
    return bool(stmt.not_resources) or any(_matches_all(r, _ANY_RESOURCE_PROBES) for r in stmt.resources)


def on_every_role(stmt: Statement) -> bool:
    """The resources take in every role of the account: `*`, `arn:aws:iam::*:*`, `arn:aws:iam::1…:role/*`."""
    return bool(stmt.not_resources) or any(_matches_all(r, _ANY_ROLE_PROBES) for r in stmt.resources)


def statement_actions(stmt: Statement, catalog: Catalog) -> Expansion:
    if stmt.not_actions or stmt.not_action_unresolved:
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
    """Does the Deny pattern cover the Allow resource for every value of their unresolved parts?
    The Allow's unknown parts may be anything (read as `*`, which only a Deny's `*` covers); a Deny
    pattern with an unknown part may match nothing (a value no ARN has), so it covers only as `*`."""
    if deny_pattern == "*":
        return True
    if has_placeholder(deny_pattern):
        return False
    return _resource_rx(deny_pattern).fullmatch(any_value(allow_resource)) is not None


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
        # an unknown part of the Allow may take a value inside NotResource; one of NotResource may
        # exclude anything: then the Deny does not cover
        return all("*" not in r and "?" not in r and not has_placeholder(r)
                   and not any(has_placeholder(n) or _covers(n, r) for n in deny.not_resources)
                   for r in allow.resources)
    return False


_UNIONS: dict[frozenset, tuple[list, frozenset]] = {}  # ids of the sets -> (the sets, their union)


def _union(sets: list[frozenset]) -> frozenset:
    """The union, one object per distinct list of (cached) expansions when it is large: principals granted the
    same NotAction and a few more actions share it, and so the judge's work on it (`Decider._shared_steps`)."""
    if sum(map(len, sets)) < 1000:
        return frozenset().union(*sets)
    key = frozenset(map(id, sets))
    hit = _UNIONS.get(key)
    if hit is None:
        if len(_UNIONS) >= 64:
            _UNIONS.clear()
        hit = _UNIONS[key] = (sets, frozenset().union(*sets))  # the sets stay alive: their ids stay theirs
    return hit[1]


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
    removed_any: set[str] = set()
    notes: dict[str, set] = {}
    for stmt, actions in allows:
        removed: frozenset[str] = frozenset()
        for deny, denied in denies:
            hit = actions & denied
            if not hit:
                continue
            # a NotAction with an unknown entry may exclude anything (`*`): that Deny may deny nothing
            if not deny.condition and not deny.not_action_unresolved and deny_covers(deny, stmt):
                removed = removed | hit
            else:
                why = ("a conditional Deny" if deny.condition else "a Deny whose NotAction cannot be resolved"
                       if deny.not_action_unresolved else "a Deny on narrower resources")
                where = f" ({deny.location})" if deny.location else ""
                notes.setdefault(f"{why}{where} may restrict it", set()).update(hit)
        kept = actions - removed if removed else actions
        g.allows.append((stmt, kept))
        removed_any |= removed
    sets = [acts for _, acts in g.allows]
    widest = max(sets, key=len, default=frozenset())
    # a NotAction grant holds the rest: share its (cached) set rather than copy ~20,000 actions per principal
    granted = g.actions = (widest if all(s is widest or s <= widest for s in sets) else _union(sets))
    g.denied = frozenset(removed_any - granted)
    g.deny_notes = [(frozenset(acts & granted), note) for note, acts in notes.items() if acts & granted]
    return g
