"""The least-privilege replacement of each principal's statements.

For every principal with unused actions, each Allow statement keeps what is used, what cannot
be judged (unobservable, new, too_recent: shown as kept for that reason), what is allowlisted and any pattern the
catalog does not know; the rest is dropped. Resources and conditions are never touched: only the
statement's `Action` (or `NotAction`, which becomes an explicit `Action`) is rewritten, and a
statement that keeps nothing is removed. The rewrite is minimal: a pattern that grants no dropped
action stays exactly as written, and one that does is replaced by narrower wildcards where the
catalog proves them safe, else by its kept actions. A statement shared by several principals keeps the union
of what each of them keeps. Text edits are made by the `fix_*` modules.
"""
from __future__ import annotations

import datetime as dt
from bisect import bisect_left
from dataclasses import dataclass, field
from os.path import commonprefix
from typing import Callable, Mapping

from ..checks._allowlist import apply_allowlist
from ..config import Config
from ..model import NEW, TOO_RECENT, Finding, Location, Policy, PrincipalResult, Statement
from ..reference.catalog import Catalog, action_names, glob_match

WIDENING_WARNING = ("--compact wrote wildcards beyond the patterns they replace: each grants nothing beyond the kept "
                    "actions in today's catalog ({version}), but such a wildcard widens as AWS adds actions")
KEPT_USED, KEPT_ALLOWLISTED, KEPT_UNKNOWN = "used", "allowlisted", "unknown to the catalog"
NOT_IN_CODE_SOURCES = {"cdk": "synthesized by CDK: change the CDK code",
                       "terraform-plan": "a Terraform plan: change the Terraform code"}


@dataclass(frozen=True)
class StatementFix:
    """The new `Action` list of one statement (empty: remove the statement)."""
    location: Location
    statement: Statement
    principals: tuple[str, ...]
    actions: tuple[str, ...]
    dropped: tuple[str, ...]  # catalog actions no longer granted
    policy: str = ""
    # per original `Action` item: None when it stays exactly as written, else what replaces it (() removes
    # it). Empty when the list is replaced as a whole (a `NotAction`).
    items: tuple[tuple[str, ...] | None, ...] = ()

    @property
    def removes_statement(self) -> bool:
        return not self.actions

    @property
    def original_actions(self) -> tuple[str, ...]:
        return self.statement.not_actions or self.statement.actions


@dataclass(frozen=True)
class Problem:
    """A part of the fix that has to be made by hand."""
    location: Location | None
    message: str
    principal: str | None = None

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


@dataclass(frozen=True)
class PrincipalPlan:
    principal: str
    dropped: tuple[str, ...]
    kept: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)  # reason -> actions


@dataclass(frozen=True)
class Remediation:
    principals: tuple[PrincipalPlan, ...] = ()
    statements: tuple[StatementFix, ...] = ()
    problems: tuple[Problem, ...] = ()
    compact: bool = False
    wildcards: bool = False  # --compact wrote a wildcard that reaches beyond the pattern it replaces
    narrowings: tuple = ()  # fix.resources.ResourceFix: Resource "*" -> the used resources (issue 23)

    def for_file(self, file: str) -> list[StatementFix]:
        return [s for s in self.statements if s.location.file == file]

    def narrowings_for(self, file: str) -> list:
        return [n for n in self.narrowings if n.location.file == file]

    @property
    def files(self) -> list[str]:
        return sorted({s.location.file for s in self.statements} | {n.location.file for n in self.narrowings})


# -- what each principal keeps ---------------------------------------------------------

def allowlisted(results, config: Config, today: dt.date | None = None) -> dict[str, frozenset]:
    """principal id -> unused actions the allowlist keeps, decided by the pipeline's own allowlist."""
    findings = [Finding("unused-actions", "low", r.principal.id, tuple(r.actions("unused")), None, "")
                for r in results if r.actions("unused")]
    _, suppressed = apply_allowlist(findings, results, config, today or dt.date.today())
    out: dict[str, set] = {}
    for f in suppressed:
        out.setdefault(f.principal, set()).update(f.actions)
    return {k: frozenset(v) for k, v in out.items()}


def kept_reasons(r: PrincipalResult, allowed: frozenset) -> dict[str, tuple[str, ...]]:
    """Why each granted action stays: used, unobservable (with its reason), allowlisted, unknown."""
    out: dict[str, tuple[str, ...]] = {}
    if r.actions("used"):
        out[KEPT_USED] = tuple(r.actions("used"))
    for reason, acts in sorted(r.groups.get("unobservable", {}).items()):
        out[f"unobservable ({reason})"] = tuple(sorted(acts))
    # never removed: nothing can have used a new grant yet; a too_recent one was not watched long enough
    for reason, acts in sorted(r.groups.get(NEW, {}).items()):
        out[f"new ({reason})"] = tuple(sorted(acts))
    for reason, acts in sorted(r.groups.get(TOO_RECENT, {}).items()):
        out[f"too recent ({reason})"] = tuple(sorted(acts))
    if allowed:
        out[KEPT_ALLOWLISTED] = tuple(sorted(allowed))
    if r.unknown:
        out[KEPT_UNKNOWN] = tuple(sorted(r.unknown))
    return out


# -- wildcards ---------------------------------------------------------------------------

def _cover(need, catalog: Catalog, blocked, contained, exact: bool) -> tuple[list[str], bool]:
    """Patterns that grant every action of `need`, in AWS's case.

    For each action, the shortest prefix `svc:P*` with no `blocked` catalog action under it, that, unless
    `exact`, `contained(svc, P)` allows, and whose actions share a prefix ending between two words; it is
    written as that longest common prefix (the same actions, the narrowest glob), and as the action
    itself when no such prefix covers more than it. Such prefixes never overlap. Returns (patterns,
    whether a wildcard is not `contained`).
    """
    by_service: dict[str, set[str]] = {}
    for a in need:
        svc, _, name = a.lower().partition(":")
        by_service.setdefault(svc, set()).add(name)
    out: list[str] = []
    widens = False
    for svc in sorted(by_service):
        names = catalog.sorted_names(svc)
        blocked_sum = [0]
        for n in names:
            blocked_sum.append(blocked_sum[-1] + bool(blocked(f"{svc}:{n}")))
        last = None  # the latest wildcard's prefix: the names after it that it covers are done
        for name in sorted(by_service[svc]):
            if last is not None and name.startswith(last):
                continue
            pattern = catalog.canonical(f"{svc}:{name}")

            def under(length: int) -> tuple[int, int]:
                return bisect_left(names, name[:length]), bisect_left(names, name[:length] + "\uffff")

            def ok(length: int) -> bool:  # only turns true as the prefix grows: it covers fewer actions
                lo, hi = under(length)
                return (exact or contained(svc, name[:length])) and blocked_sum[hi] == blocked_sum[lo]

            shortest, longest = 0, len(name) + 1  # the shortest ok prefix, by bisection
            while shortest < longest:
                mid = (shortest + longest) // 2
                shortest, longest = (shortest, mid) if ok(mid) else (mid + 1, longest)
            length = shortest
            while length <= len(name):
                lo, hi = under(length)
                if hi - lo < 2:
                    break  # only the action itself
                stem = commonprefix([names[lo], names[hi - 1]])
                words = [catalog.canonical(f"{svc}:{n}")[len(svc) + 1:] for n in names[lo:hi]]
                if all(len(w) == len(stem) or not w[len(stem)].islower() for w in words):
                    last = stem  # a wildcard ending between words: `Get*`, never `GetObjectA*`
                    pattern = f"{svc}:{words[0][:len(stem)]}*"
                    widens |= not contained(svc, stem)
                    break
                length = len(stem) + 1
            out.append(pattern)
    return out, widens


def compact(actions, catalog: Catalog) -> tuple[list[str], bool]:
    """`svc:Prefix*` patterns, as few as word boundaries allow, that grant exactly `actions` in the current
    catalog (a prefix that covers one action stays a literal name). Returns (patterns, any wildcard)."""
    kept = frozenset(a.lower() for a in actions)
    patterns, _ = _cover(kept, catalog, lambda a: a not in kept, lambda svc, p: False, exact=True)
    return patterns, any(p.endswith("*") for p in patterns)


def within(pattern: str) -> Callable[[str, str], bool]:
    """`contained(svc, P)` for an Action pattern: does `pattern` grant every action `svc:P…`, whatever AWS
    adds? Only for `*` and `svc:Prefix*` patterns; any other glob is rewritten as a list."""
    pattern = pattern.strip().lower()
    if pattern == "*":
        return lambda svc, p: True
    svc_glob, _, name = pattern.partition(":")
    stem = name[:-1]
    if not name.endswith("*") or any(c in stem for c in "*?"):
        return lambda svc, p: False
    return lambda svc, p: glob_match(svc_glob, svc) and p.startswith(stem)


def _disjoint(svc: str, prefix: str, pattern: str) -> bool:
    """No action `svc:prefix…` can match `pattern`, whatever AWS adds (conservative: False when unsure)."""
    pattern = pattern.strip().lower()
    svc_glob, colon, name = pattern.partition(":")
    if not colon:
        return "*" not in pattern and "?" not in pattern  # no colon: only a literal can never match
    if not glob_match(svc_glob, svc):
        return True  # one colon each: the service parts must match
    if _is_literal(name):
        return not name.startswith(prefix)
    stem = name[:-1]
    if name.endswith("*") and _is_literal(stem):
        return not (stem.startswith(prefix) or prefix.startswith(stem))
    return False


def outside(listed) -> Callable[[str, str], bool]:
    """`contained(svc, P)` for a NotAction statement: no listed pattern can match an action `svc:P…`."""
    relevant: dict[str, list[str]] = {}  # per service, the listed patterns that can match any of its actions

    def contained(svc: str, p: str) -> bool:
        if svc not in relevant:
            relevant[svc] = [pattern for pattern in listed if not _disjoint(svc, "", pattern)]
        return all(_disjoint(svc, p, pattern) for pattern in relevant[svc])
    return contained


# -- the plan --------------------------------------------------------------------------------

def _is_literal(pattern: str) -> bool:
    return "*" not in pattern and "?" not in pattern


def rewrite_items(stmt: Statement, kept: frozenset, dropped: frozenset, catalog: Catalog, use_compact: bool):
    """The statement's new `Action`: (per original item its replacement or None to keep it as written,
    the new list, whether a wildcard may widen as AWS adds actions).

    An item that grants no dropped action stays exactly as written (so does one the catalog does not
    know). Another item is replaced by the kept actions it grants that neither an item kept as written
    nor an earlier replacement grants: as narrower wildcards where the catalog proves them free of
    dropped actions and they stay inside the item's own glob, else one by one. A `NotAction` is replaced
    as a whole (no items). With `use_compact`, wildcards need only grant exactly kept actions today,
    even outside the item.
    """
    def cover(need, contained):
        blocked = (lambda a: a not in kept) if use_compact else (lambda a: a in dropped)
        return _cover(need, catalog, blocked, contained, exact=use_compact)

    if stmt.not_actions:
        patterns, widens = cover(kept, outside(stmt.not_actions))
        return (), patterns, widens
    grants = [catalog.expand(p).actions for p in stmt.actions]
    done = set().union(*(acts for acts in grants if not acts & dropped))
    items: list[tuple[str, ...] | None] = []
    new: list[str] = []
    widens = False
    for pattern, acts in zip(stmt.actions, grants):
        if not acts & dropped:
            items.append(None)
            new.append(pattern)
            continue
        patterns, w = cover((acts & kept) - done, within(pattern))
        done |= catalog.expand_all(patterns).actions & kept
        items.append(tuple(patterns))
        new += patterns
        widens |= w
    return tuple(items), new, widens


def plan(results, catalog: Catalog, config: Config | None = None, compact_wildcards: bool = False,
         today: dt.date | None = None) -> Remediation:
    config = config or Config()
    allowed = allowlisted(results, config, today)
    drop: dict[str, frozenset] = {}
    principals: list[PrincipalPlan] = []
    problems: list[Problem] = []
    for r in results:
        d = frozenset(r.actions("unused")) - allowed.get(r.principal.id, frozenset())
        if not d:
            continue
        drop[r.principal.id] = d
        principals.append(PrincipalPlan(r.principal.id, tuple(catalog.sort(d)),
                                        kept_reasons(r, allowed.get(r.principal.id, frozenset()))))
        why = NOT_IN_CODE_SOURCES.get(r.principal.source)
        if why:
            problems.append(Problem(r.principal.location, f"{r.principal.id}: not fixed: {why}", r.principal.id))
    # every principal's share of each Allow statement, by the statement's place in the code
    shares: dict[Location, list[tuple[str, Statement, frozenset, frozenset]]] = {}
    policy_of: dict[Location, Policy] = {}
    for r in results:
        if NOT_IN_CODE_SOURCES.get(r.principal.source):
            continue
        d = drop.get(r.principal.id, frozenset())
        for policy in r.principal.policies:
            for st in policy.statements:
                if st.location is not None:
                    policy_of.setdefault(st.location, policy)
        for st, acts in r.allows:
            if st.location is None:
                continue
            shares.setdefault(st.location, []).append((r.principal.id, st, acts, d))
    fixes: list[StatementFix] = []
    wild_any = False
    reported: set = set()
    for loc, parts in shares.items():
        granted = frozenset().union(*(acts for _, _, acts, _ in parts))
        kept = frozenset().union(*(acts - d for _, _, acts, d in parts))
        dropped = granted - kept
        if not dropped:
            continue
        pids = tuple(dict.fromkeys(pid for pid, _, _, _ in parts))
        stmts = {st for _, st, _, _ in parts}
        policy = policy_of.get(loc)
        if len(stmts) > 1:
            problems.append(Problem(loc, f"{len(stmts)} statements are generated from this line (a policy "
                                         "template or framework default); narrow them by hand", pids[0]))
            continue
        if policy is not None and policy.managed_arn:
            if (policy.managed_arn, pids) not in reported:
                reported.add((policy.managed_arn, pids))
                problems.append(Problem(loc, f"managed policy {policy.managed_arn} grants "
                                             f"{len(dropped)} unused action(s); it cannot be edited here: replace "
                                             "it with an inline policy", pids[0]))
            continue
        st = next(iter(stmts))
        items, actions, wild = rewrite_items(st, kept, dropped, catalog, compact_wildcards)
        wild_any |= wild
        fixes.append(StatementFix(loc, st, pids, tuple(actions), tuple(action_names(catalog.sort(dropped))),
                                  policy.name if policy else "", items))
    fixes, emptied = _keep_policies_valid(fixes, policy_of, shares)
    problems.extend(emptied)
    fixes.sort(key=lambda f: (f.location.file, f.location.line or 0))
    from .resources import narrowings
    kept_at = {loc: frozenset().union(*(acts - d for _, _, acts, d in parts)) for loc, parts in shares.items()}
    narrow, why = narrowings(results, catalog, config, frozenset(f.location for f in fixes if f.removes_statement),
                             lambda loc: kept_at.get(loc, ()))
    problems.extend(why)
    return Remediation(tuple(principals), tuple(fixes), tuple(problems), compact_wildcards, wild_any, tuple(narrow))


def _keep_policies_valid(fixes: list[StatementFix], policy_of, shares) -> tuple[list[StatementFix], list[Problem]]:
    """IAM rejects a policy without statements: a policy whose every Allow would go is left for a person."""
    removed = {f.location for f in fixes if f.removes_statement}
    if not removed:
        return fixes, []
    problems, drop_locs = [], set()
    seen: set[int] = set()
    for loc in removed:
        policy = policy_of.get(loc)
        if policy is None or id(policy) in seen:
            continue
        seen.add(id(policy))
        allow_locs = {s.location for s in policy.statements if s.is_allow}
        if allow_locs and allow_locs <= removed:
            drop_locs |= allow_locs
            pid = shares[loc][0][0]
            problems.append(Problem(policy.location or loc, f"policy {policy.name}: every action it grants is "
                                                            "unused; delete the policy (IAM rejects an empty one)",
                                    pid))
    return [f for f in fixes if f.location not in drop_locs], problems
