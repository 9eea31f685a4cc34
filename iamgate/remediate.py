"""The least-privilege replacement of each principal's statements.

For every principal with unused actions, each Allow statement keeps what is used, what cannot
be judged (unobservable, shown as kept for that reason), what is allowlisted and any pattern the
catalog does not know; the rest is dropped. Resources and conditions are never touched: only the
statement's `Action` (or `NotAction`, which becomes an explicit `Action`) is rewritten, and a
statement that keeps nothing is removed. A statement shared by several principals keeps the union
of what each of them keeps. Text edits are made by the `fix_*` modules.
"""
from __future__ import annotations

import datetime as dt
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Mapping

from .catalog import Catalog
from .config import Config
from .model import Finding, Location, Policy, PrincipalResult, Statement

WIDENING_WARNING = ("--compact wrote wildcards: each grants nothing beyond the kept actions in today's catalog "
                    "({version}), but a wildcard widens as AWS adds actions")
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
    wildcards: bool = False  # --compact wrote at least one wildcard

    def for_file(self, file: str) -> list[StatementFix]:
        return [s for s in self.statements if s.location.file == file]

    @property
    def files(self) -> list[str]:
        return sorted({s.location.file for s in self.statements})


# -- what each principal keeps ---------------------------------------------------------

def allowlisted(results, config: Config, today: dt.date | None = None) -> dict[str, frozenset]:
    """principal id -> unused actions the allowlist keeps, decided by the pipeline's own allowlist."""
    from .pipeline import apply_allowlist
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
    if allowed:
        out[KEPT_ALLOWLISTED] = tuple(sorted(allowed))
    if r.unknown:
        out[KEPT_UNKNOWN] = tuple(sorted(r.unknown))
    return out


# -- compact wildcards ---------------------------------------------------------------------

def compact(actions, catalog: Catalog) -> tuple[list[str], bool]:
    """The fewest `svc:Prefix*` patterns that grant exactly `actions` in the current catalog.

    For each action, the shortest prefix whose every catalog action is kept; such prefixes never
    overlap. A prefix that covers one action stays a literal name. Returns (patterns, any wildcard).
    """
    by_service: dict[str, set[str]] = {}
    for a in actions:
        svc, _, name = a.lower().partition(":")
        by_service.setdefault(svc, set()).add(name)
    out: list[str] = []
    wild = False
    for svc in sorted(by_service):
        names = catalog._sorted.get(svc, [])
        kept = by_service[svc]
        if not names:
            out.extend(catalog.canonical(f"{svc}:{n}") for n in sorted(kept))
            continue
        prefix_sum = [0]
        for n in names:
            prefix_sum.append(prefix_sum[-1] + (n in kept))
        done: set[str] = set()
        for name in sorted(kept):
            canonical = catalog.canonical(f"{svc}:{name}")
            for length in range(0, len(name) + 1):
                p = name[:length]
                lo = bisect_left(names, p)
                hi = bisect_left(names, p + "\uffff")
                if prefix_sum[hi] - prefix_sum[lo] == hi - lo:  # every action under p is kept
                    if hi - lo == 1:
                        pattern = canonical
                    else:
                        pattern = canonical[:len(svc) + 1 + length] + "*"
                        wild = True
                    break
            else:  # every prefix also covers a longer name that is not kept
                pattern = canonical
            if pattern not in done:
                done.add(pattern)
                out.append(pattern)
    return out, wild


# -- the plan --------------------------------------------------------------------------------

def _is_literal(pattern: str) -> bool:
    return "*" not in pattern and "?" not in pattern


def new_action_list(stmt: Statement, kept: frozenset, dropped: frozenset, catalog: Catalog,
                    use_compact: bool) -> tuple[list[str], bool]:
    """The statement's new `Action` items: kept literals as written, in order; the rest explicit."""
    unknown = [p for p in stmt.actions if not catalog.expand(p).actions] if not stmt.not_actions else []
    if use_compact:
        patterns, wild = compact(kept, catalog)
        return unknown + patterns, wild
    items: list[str] = []
    emitted: set[str] = set()
    if not stmt.not_actions:
        for p in stmt.actions:
            acts = catalog.expand(p).actions
            if not acts:
                items.append(p)
            elif _is_literal(p):
                a = p.strip().lower()
                if a in kept and a not in emitted:
                    items.append(p)
                    emitted.add(a)
            else:
                extra = sorted(acts & kept - emitted)
                items.extend(catalog.canonical(a) for a in extra)
                emitted.update(extra)
    rest = sorted(kept - emitted)
    items.extend(catalog.canonical(a) for a in rest)
    return items, False


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
        items, wild = new_action_list(st, kept, dropped, catalog, compact_wildcards)
        wild_any |= wild
        fixes.append(StatementFix(loc, st, pids, tuple(items), tuple(catalog.canonical(a) for a in catalog.sort(dropped)),
                                  policy.name if policy else ""))
    fixes, emptied = _keep_policies_valid(fixes, policy_of, shares)
    problems.extend(emptied)
    fixes.sort(key=lambda f: (f.location.file, f.location.line or 0))
    return Remediation(tuple(principals), tuple(fixes), tuple(problems), compact_wildcards, wild_any)


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
