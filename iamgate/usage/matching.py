"""Pairing principals found in code with baselines: every deployment of each principal (issue 21).

A principal's code is deployed many times (accounts, environments, CDK stages); each deployment's
baseline judges it. A resolved name matches that name in every account; a name with unknown parts
(`worker-${Env}`, `var.env`, a `name_prefix`) matches every baseline that fits its known text, one per
account; a principal never matches a baseline of another kind. Named deployments (the config's
`deployments:`) and CDK stages are resolutions of the principal for one deployment, each matched in its
own account. A baseline that fits two principals equally well is named in the report, never shared silently.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from ..model import Baseline, Deployment, Principal
from ..reference.catalog import glob_match
from .baseline_format import merge

# a permission set is provisioned as roles `AWSReservedSSO_<name>_<hash>` (iamgate/sources/sso.py)
_KIND_IN_ARN = {"role": ":role/", "user": ":user/", "group": ":group/", "permission-set": ":role/"}
# How sure a way of matching is: a baseline that fits two principals goes to the surer match.
EXACT, NAMED, FITS = 3, 2, 1


def _arn_name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def _account(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 and parts[4] else None


@dataclass(frozen=True)
class Candidate:
    baseline: Baseline
    how: str
    strength: int


@dataclass(frozen=True)
class Resolution:
    """The principal as resolved for one named deployment or CDK stage, to be matched in its account."""
    name: str
    account: str | None
    principal: Principal


@dataclass(frozen=True)
class Shared:
    """A baseline that fits more than one principal of the code."""
    arn: str
    principals: tuple[str, ...]  # the principals judged with it
    others: tuple[str, ...] = ()  # principals it also fits, less surely (not judged with it)
    how: Mapping[str, str] = field(default_factory=dict, hash=False)  # principal id -> how it fits

    def text(self) -> str:
        named = self.principals + self.others
        fits = ", ".join(f"{pid} ({self.how.get(pid, '')})" for pid in named[:5])
        fits += f" and {len(named) - 5} more" if len(named) > 5 else ""
        if len(self.principals) > 1:
            return f"baseline {self.arn} fits {fits}: it judges each of them; map the right one under `principals:`"
        return f"baseline {self.arn} fits {fits}: it judges only {self.principals[0]}, the surer match"


@dataclass(frozen=True)
class Ambiguous:
    """A principal that fits several baselines in one account: none of them is taken."""
    principal: str
    account: str | None
    arns: tuple[str, ...]
    deployment: str | None = None

    def text(self) -> str:
        where = f"account {self.account}" if self.account else "the baselines"
        return (f"{self.principal} fits {len(self.arns)} baselines in {where}: {', '.join(self.arns)}; none is "
                "taken: name the deployments under `deployments:` or map it under `principals:`")


@dataclass(frozen=True)
class Matching:
    deployments: Mapping[str, tuple[Deployment, ...]]  # principal id -> its deployments
    unmatched: tuple[str, ...] = ()  # baseline ARNs no principal fits
    shared: tuple[Shared, ...] = ()
    ambiguous: tuple[Ambiguous, ...] = ()

    def matched_by(self) -> dict[str, str]:
        """Principal id -> how its baselines were matched, in one line."""
        out = {}
        for pid, deps in self.deployments.items():
            hows = [f"{d.name}: {d.matched_by}" if len(deps) > 1 else d.matched_by for d in deps if d.baseline]
            if hows:
                out[pid] = "; ".join(hows)
        return out


class Matcher:
    def __init__(self, baselines: list[Baseline], mapping: dict | None = None):
        grouped: dict[str, list[Baseline]] = {}
        for b in baselines:
            grouped.setdefault(b.principal_arn, []).append(b)
        self.by_arn = {arn: merge(bs) for arn, bs in grouped.items()}
        self.by_name: dict[str, list[Baseline]] = {}
        for arn, b in self.by_arn.items():
            self.by_name.setdefault(_arn_name(arn), []).append(b)
        self.mapping = mapping or {}
        self.ambiguous: list[Ambiguous] = []

    def _by_name(self, name: str, kind: str) -> list[Baseline]:
        marker = _KIND_IN_ARN.get(kind, ":role/")
        return [b for b in self.by_name.get(name, ()) if marker in b.principal_arn]

    def candidates(self, p: Principal) -> list[Candidate]:
        """Every baseline the principal fits, by the surest way it fits any: one per account for the
        ways that read only part of a name (ambiguity in an account is recorded in `self.ambiguous`)."""
        for key in (p.id, *(p.aliases), p.location.file if p.location else None, p.name):
            target = self.mapping.get(key) if key else None
            if target:
                how = f"config mapping {key} -> {target}"
                if target.startswith("arn:"):
                    return [Candidate(b, how, EXACT) for b in (self.by_arn.get(target),) if b is not None]
                kind = p.kind if p.kind != "policy" else "role"
                return [Candidate(b, how, EXACT) for b in self._by_name(target, kind)]
        if p.arn and p.arn in self.by_arn:
            return [Candidate(self.by_arn[p.arn], "ARN", EXACT)]
        if p.name and not p.name_is_prefix:
            hits = self._by_name(p.name, p.kind)
            if hits:
                return [Candidate(b, "name", NAMED) for b in hits]
        marker = _KIND_IN_ARN.get(p.kind)
        if marker is None:
            return []
        if p.arn and "${" in p.arn:  # `arn:aws:iam::${AWS::AccountId}:role/worker`: every account
            pattern = re.sub(r"\$\{[^{}]*\}", "*", p.arn)
            if "$" not in pattern and "{" not in pattern:
                hits = [b for arn, b in self.by_arn.items() if glob_match(pattern, arn)]
                if hits:
                    return self._per_account(p, hits, f"ARN pattern {pattern}")
        if p.name and p.name_is_prefix:
            return self._per_account(p, [b for arn, b in self.by_arn.items()
                                         if marker in arn and _arn_name(arn).startswith(p.name)], "name prefix")
        if not p.name and p.name_pattern:
            return self._per_account(p, [b for name, bs in self.by_name.items() if glob_match(p.name_pattern, name)
                                         for b in bs if marker in b.principal_arn], f"name pattern {p.name_pattern}")
        if not p.name:
            exact = self._by_name(p.id, p.kind)
            if exact:
                return self._per_account(p, exact, "logical id")
            # CloudFormation-generated names: <stack>-<LogicalId, maybe truncated>-<random suffix>
            rx = re.compile(r"^.+-" + re.escape(p.id[:20]) + r"[A-Za-z0-9]*-[A-Za-z0-9]{8,13}$")
            return self._per_account(p, [b for arn, b in self.by_arn.items()
                                         if marker in arn and rx.match(_arn_name(arn))],
                                     "logical id in a generated name")
        return []

    def _per_account(self, p: Principal, hits: list[Baseline], how: str) -> list[Candidate]:
        """At most one baseline per account and deployment: several that fit in one account are ambiguous."""
        groups: dict[tuple, list[Baseline]] = {}
        for b in hits:
            groups.setdefault((b.account, b.deployment), []).append(b)
        out = []
        for (account, deployment), bs in groups.items():
            if len(bs) == 1:
                out.append(Candidate(bs[0], how, FITS))
            else:
                self.ambiguous.append(Ambiguous(p.id, account, tuple(sorted(b.principal_arn for b in bs)), deployment))
        return out

    def find(self, p: Principal) -> tuple[Baseline | None, str]:
        """The one baseline of a principal deployed once, and how it was matched (None: none, or several)."""
        hits = self.candidates(p)
        return (hits[0].baseline, hits[0].how) if len(hits) == 1 else (None, "")

    def match(self, principals: Sequence[Principal],
              resolutions: Mapping[str, Sequence[Resolution]] | None = None) -> Matching:
        """Every principal's deployments. `resolutions`: principal id -> its named deployments (or stages),
        each matched in its own account; other accounts are matched with the principal as scanned."""
        resolutions = resolutions or {}
        self.ambiguous = []
        # principal id -> [(deployment name, account, candidate or None, resolution or None)]
        found: dict[str, list[tuple[str, str | None, Candidate | None, Principal | None]]] = {}
        for p in principals:
            mine = found.setdefault(p.id, [])
            named = list(resolutions.get(p.id, ()))
            covered = {r.account for r in named if r.account}
            for r in named:
                mine.append((r.name, r.account, self._in_deployment(r), r.principal))
            taken = {c.baseline.principal_arn for _, _, c, _ in mine if c}
            before = len(self.ambiguous)
            candidates = self.candidates(p)
            # an account a named deployment covers is matched only with that deployment's resolution
            self.ambiguous[before:] = [a for a in self.ambiguous[before:] if a.account not in covered]
            for c in candidates:
                arn = c.baseline.principal_arn
                if arn in taken or _account(arn) in covered:
                    continue
                mine.append((c.baseline.deployment or c.baseline.account or arn, c.baseline.account, c, None))
        shared = self._settle(found)
        deployments = {}
        for pid, entries in found.items():
            names: dict[str, int] = {}
            out = []
            for name, account, c, resolved in entries:
                names[name] = names.get(name, 0) + 1
                if names[name] > 1 and c is not None:  # two baselines under one name: tell them apart
                    name = f"{name}/{c.baseline.role_name}"
                out.append(Deployment(name, account or (c.baseline.account if c else None),
                                      c.baseline if c else None, c.how if c else "", resolved))
            deployments[pid] = tuple(out)
        used = {d.baseline.principal_arn for deps in deployments.values() for d in deps if d.baseline}
        vague = {arn for a in self.ambiguous for arn in a.arns}
        unmatched = tuple(sorted(set(self.by_arn) - used - vague))
        ambiguous = tuple(a for a in dict.fromkeys(self.ambiguous) if not set(a.arns) & used)
        return Matching(deployments, unmatched, shared, ambiguous)

    def _in_deployment(self, r: Resolution) -> Candidate | None:
        """The one baseline of a named deployment: in its account, preferring one written for it."""
        hits = [c for c in self.candidates(r.principal) if r.account is None or c.baseline.account == r.account]
        if len(hits) > 1:
            hits = [c for c in hits if c.baseline.deployment == r.name] or hits
        if len(hits) > 1:
            self.ambiguous.append(Ambiguous(r.principal.id, r.account,
                                            tuple(sorted(c.baseline.principal_arn for c in hits)), r.name))
            return None
        return hits[0] if hits else None

    def _settle(self, found: dict) -> tuple[Shared, ...]:
        """A baseline fitting several principals goes to the surest; a tie judges each, and is reported."""
        claims: dict[str, dict[str, Candidate]] = {}
        for pid, entries in found.items():
            for _, _, c, _ in entries:
                if c is not None:
                    claims.setdefault(c.baseline.principal_arn, {})[pid] = c
        shared = []
        for arn, by_pid in claims.items():
            if len(by_pid) < 2:
                continue
            best = max(c.strength for c in by_pid.values())
            keep = tuple(pid for pid, c in by_pid.items() if c.strength == best)
            if all(by_pid[pid].how.startswith("config mapping") for pid in keep) and len(keep) == len(by_pid):
                continue  # the config maps each of them to it: shared on purpose
            others = tuple(pid for pid in by_pid if pid not in keep)
            for pid in others:
                found[pid] = [(n, a, None if c is not None and c.baseline.principal_arn == arn else c, r)
                              for n, a, c, r in found[pid]]
                found[pid] = [e for e in found[pid] if e[2] is not None or e[3] is not None]
            shared.append(Shared(arn, keep, others, {pid: c.how for pid, c in by_pid.items()}))
        return tuple(sorted(shared, key=lambda s: s.arn))
