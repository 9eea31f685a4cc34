"""Every deployment of every principal (issue 21): named deployments, CDK stages, and baselines matched by name.

A named deployment (`deployments:` in the config) resolves each principal once more, with its CloudFormation
parameters, its Terraform `.tfvars` files and `terraform.workspace` set to its name; a CDK stage is already a
resolution of its own (`Principal.stages`). Each resolution is matched in its account; every other account is
matched with the principal as scanned. The judge then sees one principal with all of its deployments: where a
deployment's grant differs, `Deployment.principal` holds that deployment's resolution and the principal judged
is the union of their grants, so that no deployment's grant goes unjudged.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, Sequence

from ..config import Config, NamedDeployment
from ..model import Deployment, Policy, Principal, ScanError, Statement
from .matching import Matcher, Matching, Resolution

NO_BASELINE = "no baseline in account {account}"


@dataclass(frozen=True)
class Gathered:
    principals: tuple[Principal, ...]  # as judged: the union of each principal's resolutions
    deployments: Mapping[str, tuple[Deployment, ...]] = field(default_factory=dict, hash=False)
    matching: Matching | None = None
    errors: tuple[ScanError, ...] = ()
    # principal id -> ((deployment, (what only some deployments grant, ...)), ...) where the grant differs
    differs: Mapping[str, tuple[tuple[str, tuple[str, ...]], ...]] = field(default_factory=dict, hash=False)

    def missing(self) -> list[tuple[str, Deployment]]:
        """(principal id, named deployment) for every named deployment without a baseline."""
        return [(pid, d) for pid, deps in self.deployments.items() for d in deps if d.baseline is None]


def _grant_key(st: Statement) -> tuple:
    """What a statement grants or denies, wherever it is written (a CDK stage's template is another file)."""
    return (st.effect, st.actions, st.not_actions, st.not_action_unresolved, st.resources, st.not_resources)


def _grants(p: Principal) -> frozenset:
    return frozenset(_grant_key(st) for pol in p.policies for st in pol.statements)


def _allow_key(st: Statement) -> tuple:
    """The actions an Allow grants (its resources do not change which actions are granted)."""
    return (st.actions, st.not_actions, st.not_action_unresolved)


def _allows(p: Principal) -> dict[tuple, Statement]:
    return {_allow_key(st): st for pol in p.policies for st in pol.statements if st.is_allow}


def union(p: Principal, resolved: Sequence[Principal]) -> Principal:
    """The principal with every Allow that a deployment's resolution adds (a parameter-dependent statement)."""
    have = set(_allows(p))
    listed = {a.lower() for key in have if not key[1] for a in key[0]}
    extra: list[Statement] = []
    for r in resolved:
        for pol in r.policies:
            for st in pol.statements:
                key = _allow_key(st)
                if st.is_allow and key not in have and (st.not_actions or not {a.lower() for a in st.actions} <= listed):
                    have.add(key)
                    extra.append(st)
    if not extra:
        return p
    loc = extra[0].location
    return replace(p, policies=p.policies + (Policy("granted in some deployments", tuple(extra), loc),))


def gather(principals: Sequence[Principal], matcher: Matcher, config: Config,
           rescan: Callable[[NamedDeployment], tuple[Sequence[Principal], Sequence[ScanError]]] | None = None,
           known_errors: Sequence[ScanError] = ()) -> Gathered:
    """Each principal's deployments. `rescan(d)`: the principals (ids as in `principals`) and errors of the
    code resolved for named deployment `d`."""
    resolutions: dict[str, list[Resolution]] = {}
    errors: list[ScanError] = []
    seen_errors = set(known_errors)
    for p in principals:
        if p.stages:
            resolutions[p.id] = [Resolution(name, account, sp) for name, account, sp in p.stages]
    for d in config.deployments if rescan is not None else ():
        got, errs = rescan(d)
        for e in errs:
            if e not in seen_errors:
                seen_errors.add(e)
                errors.append(replace(e, message=f"deployment {d.name}: {e.message}"))
        by_id = {q.id: q for q in got}
        for p in principals:
            if not p.stages:
                resolutions.setdefault(p.id, []).append(Resolution(d.name, d.account, by_id.get(p.id, p)))
    matching = matcher.match(principals, resolutions)
    judged, deployments, differs = [], {}, {}
    for p in principals:
        deps = matching.deployments.get(p.id, ())
        resolved = [r.principal for r in resolutions.get(p.id, ())]
        base = resolved[0] if p.stages and resolved else p
        whole = union(base, resolved)
        own = _grants(whole)
        out, allows = [], []
        for dep in deps:
            mine = dep.principal or base
            allows.append(_allows(mine))
            how = dep.matched_by if dep.baseline is not None else NO_BASELINE.format(account=dep.account or "?")
            out.append(replace(dep, principal=None if _grants(mine) == own else mine, matched_by=how))
        judged.append(whole)
        deployments[p.id] = tuple(out)
        common = set.intersection(*(set(a) for a in allows)) if allows else set()
        if any(set(a) != common for a in allows):
            differs[p.id] = tuple((dep.name, tuple(_shown(st) for k, st in a.items() if k not in common))
                                  for dep, a in zip(out, allows))
    return Gathered(tuple(judged), deployments, matching, tuple(errors), differs)


def _shown(st: Statement) -> str:
    what = ("NotAction " if st.not_actions else "") + ", ".join(st.not_actions or st.actions)
    return f"{st.location}: {what}" if st.location else what
