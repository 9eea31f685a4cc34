"""Pairing principals found in code with baselines: by ARN, by the config's mapping, by name, by logical id."""
from __future__ import annotations

import re

from ..model import Baseline, Principal
from ..reference.catalog import glob_match
from .baseline_format import merge

# a permission set is provisioned as roles `AWSReservedSSO_<name>_<hash>` (iamgate/sources/sso.py)
_KIND_IN_ARN = {"role": ":role/", "user": ":user/", "group": ":group/", "permission-set": ":role/"}


def _arn_name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


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
        self.matched: set[str] = set()

    def _by_name(self, name: str, kind: str) -> list[Baseline]:
        marker = _KIND_IN_ARN.get(kind, ":role/")
        return [b for b in self.by_name.get(name, ()) if marker in b.principal_arn]

    def find(self, p: Principal) -> tuple[Baseline | None, str]:
        """The baseline and how it was matched."""
        for key in (p.id, *(p.aliases), p.location.file if p.location else None, p.name):
            target = self.mapping.get(key) if key else None
            if target:
                if target.startswith("arn:"):
                    return self._hit(self.by_arn.get(target), f"config mapping {key} -> {target}")
                hits = self._by_name(target, p.kind if p.kind != "policy" else "role")
                return self._hit(hits[0] if len(hits) == 1 else None, f"config mapping {key} -> {target}")
        if p.arn and p.arn in self.by_arn:
            return self._hit(self.by_arn[p.arn], "ARN")
        if p.name and not p.name_is_prefix:
            hits = self._by_name(p.name, p.kind)
            if len(hits) == 1:
                return self._hit(hits[0], "name")
        marker = _KIND_IN_ARN.get(p.kind)
        if marker is None:
            return None, ""
        if p.name and p.name_is_prefix:
            hits = [b for arn, b in self.by_arn.items() if marker in arn and _arn_name(arn).startswith(p.name)]
            if len(hits) == 1:
                return self._hit(hits[0], "name prefix")
        if not p.name and p.name_pattern:
            hits = [b for name, bs in self.by_name.items() if glob_match(p.name_pattern, name)
                    for b in bs if marker in b.principal_arn]
            if len(hits) == 1:
                return self._hit(hits[0], f"name pattern {p.name_pattern}")
        if not p.name:
            exact = self._by_name(p.id, p.kind)
            if len(exact) == 1:
                return self._hit(exact[0], "logical id")
            # CloudFormation-generated names: <stack>-<LogicalId, maybe truncated>-<random suffix>
            rx = re.compile(r"^.+-" + re.escape(p.id[:20]) + r"[A-Za-z0-9]*-[A-Za-z0-9]{8,13}$")
            gen = [b for arn, b in self.by_arn.items() if marker in arn and rx.match(_arn_name(arn))]
            if len(gen) == 1:
                return self._hit(gen[0], "logical id in a generated name")
        return None, ""

    def _hit(self, b: Baseline | None, how: str) -> tuple[Baseline | None, str]:
        if b is None:
            return None, ""
        self.matched.add(b.principal_arn)
        return b, how

    def unmatched(self) -> list[str]:
        return sorted(set(self.by_arn) - self.matched)
