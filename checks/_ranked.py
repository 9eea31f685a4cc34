"""The shared shape of the checks that report unused actions from a risk list (see iamgate/risk.py)."""
from __future__ import annotations

from typing import ClassVar

from iamgate.judge.risk import assessment
from iamgate.judge.severity import split_by_access_level
from iamgate.model import Finding

from . import Analysis, Check


class RankedActions(Check):
    reason: ClassVar[str]
    what: ClassVar[str]  # "credential exposure", ...

    def run(self, analysis: Analysis):
        for r in analysis.results:
            a = assessment(analysis, r)
            actions = a.claimed.get(self.name)
            if not actions:
                continue
            # the same risk, whether unused or granted by this change (judged by its risk alone)
            for kind, reason, part in (("unused", self.reason, actions - a.new),
                                       ("new", "new grant" + self.reason.removeprefix("unused"), actions & a.new)):
                for loc, acts in r.by_first_location(part).items():
                    n = len(acts)
                    yield Finding(self.name, self.severity, r.principal.id, tuple(acts), loc,
                                  f"{n} {kind} action{'s' if n != 1 else ''} ({self.what})", reason=reason)


def by_place_and_level(result, catalog, actions, without: frozenset = frozenset()) -> dict:
    """(location, severity by access level) -> the actions, less `without`, first granted there at that level."""
    out: dict = {}
    for loc, acts in result.first_location_sets(actions, without).items():  # sorted per level, not twice
        for sev, part in split_by_access_level(catalog, acts).items():
            out[(loc, sev)] = part
    return out
