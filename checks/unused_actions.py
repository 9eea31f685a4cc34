from __future__ import annotations

from iamgate.judge.risk import assessment
from iamgate.reference.catalog import less
from iamgate.model import Finding

from . import CHECKS, Analysis, Check
from ._ranked import by_place_and_level

TIMED = ("never used in the ", "last used ")  # the judge's unused reasons that state their own period


@CHECKS.register
class UnusedActions(Check):
    name = "unused-actions"
    title = "Granted actions that were never used"
    severity = "medium"
    docs = ("An action is unused when the principal's usage source could have seen it and did not, over at least "
            "`min-observation` since it was granted (else it is too_recent), or saw it only longer than `max-idle` "
            "before the baseline's end; the message states the real period. Severity follows the action's access "
            "level: Permissions management is high, Write medium, Read, List and Tagging low. An unused action "
            "that a risk check reports (an escalation combination it completes, credential or resource exposure, "
            "data exfiltration) is reported there instead, once, at that check's severity.")

    def run(self, analysis: Analysis):
        for r in analysis.results:
            a = assessment(analysis, r)
            if not a.any_unranked():
                continue
            window = ""
            if r.baseline and r.baseline.window_start:
                window = f" between {r.baseline.window_start[:10]} and {(r.baseline.window_end or '?')[:10]}"
            # the real period where the judge knows it (granted inside the window, last used long ago)
            periods: dict[str, frozenset] = {}
            reasons = r.groups.get("unused", {})
            one = len(reasons) == 1  # one reason holds them all: the ranked ones are left out while grouping
            for reason, acts in reasons.items():
                period = reason if reason.startswith(TIMED) else f"never used{window}"
                part = acts if one else less(acts, a.taken)
                periods[period] = periods[period] | part if period in periods else part
            groups = {(loc, sev, period): part for period, acts in periods.items()
                      for (loc, sev), part in by_place_and_level(r, analysis.catalog, acts,
                                                                 a.taken if one else frozenset()).items()}
            for (loc, sev, period), actions in sorted(groups.items(), key=lambda kv: (str(kv[0][0]), *kv[0][1:])):
                n = len(actions)
                yield Finding(self.name, sev, r.principal.id, tuple(actions), loc,
                              f"{n} granted action{'s' if n != 1 else ''} {period}",
                              reason="observable and not observed")
