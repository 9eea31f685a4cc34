"""The shared shape of the checks that report unused actions from a risk list (see iamgate/risk.py)."""
from __future__ import annotations

from typing import ClassVar

from iamgate.judge.risk import assessment
from iamgate.model import Finding

from . import Analysis, Check


class RankedActions(Check):
    reason: ClassVar[str]
    what: ClassVar[str]  # "credential exposure", ...

    def run(self, analysis: Analysis):
        for r in analysis.results:
            actions = assessment(analysis, r).claimed.get(self.name)
            if not actions:
                continue
            for loc, acts in r.by_first_location(actions).items():
                n = len(acts)
                yield Finding(self.name, self.severity, r.principal.id, tuple(acts), loc,
                              f"{n} unused action{'s' if n != 1 else ''} ({self.what})", reason=self.reason)
